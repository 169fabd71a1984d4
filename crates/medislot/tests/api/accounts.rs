//! Accounts, tokens, rate limiting, health and the OpenAPI document.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn register_login_logout_and_rate_limit() {
    let srv = TestServer::start_with(&["--logins-per-minute", "5"]);
    let http = client();
    let r = http
        .post(srv.api("/auth/register"))
        .json(&json!({"email": "Ana@Example.org", "password": PASSWORD, "name": "Ana", "role": "patient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The same e-mail again (case-insensitive) is a conflict naming the field.
    let r = http
        .post(srv.api("/auth/register"))
        .json(&json!({"email": "ana@example.org", "password": PASSWORD, "name": "Ana", "role": "patient"}))
        .send()
        .await
        .unwrap();
    let (s, b, _) = decode(r).await;
    assert_eq!((s.as_u16(), b["errors"][0]["field"].as_str()), (409, Some("email")));
    // Log in: a bearer token, and an HttpOnly SameSite session cookie.
    let r = http
        .post(srv.api("/auth/login"))
        .json(&json!({"email": "ana@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let v: serde_json::Value = r.json().await.unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    let me = http.get(srv.api("/appointments")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    // Log out revokes the token.
    let out = http.post(srv.api("/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(out.status(), 204);
    let me = http.get(srv.api("/appointments")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 401);
    // Wrong password: 401; after 5 attempts a minute: 429 with Retry-After.
    let mut statuses = vec![];
    for _ in 0..7 {
        let r = http
            .post(srv.api("/auth/login"))
            .json(&json!({"email": "ana@example.org", "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let srv = TestServer::start().await;
    let http = client();
    assert_eq!(http.get(format!("{}/healthz", srv.url)).send().await.unwrap().status(), 200);
    let ready: serde_json::Value = http.get(format!("{}/readyz", srv.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["database"], if on_postgres() { "postgres" } else { "sqlite" });
    let doc: serde_json::Value = http.get(srv.api("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/auth/login",
        "/clinics",
        "/doctors",
        "/doctors/{id}/slots",
        "/holds",
        "/appointments",
        "/appointments/{id}/reschedule",
        "/appointments/{id}/cancel",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
}

#[tokio::test]
async fn peer_routes_accept_the_current_and_the_previous_region_secret_only() {
    let (current, previous) = ("current-secret-0123456789", "previous-secret-0123456789");
    let srv = TestServer::start_with(&["--region-secret", current, "--region-secret-previous", previous]);
    let http = client();
    let heartbeat = |secret: Option<&'static str>| {
        let mut req = http.get(format!("{}/internal/v1/heartbeat", srv.url));
        if let Some(s) = secret {
            req = req.header("x-medislot-region-secret", s);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(heartbeat(Some(current)).await, 200);
    assert_eq!(heartbeat(Some(previous)).await, 200, "the previous secret still works during a rotation");
    assert_eq!(heartbeat(Some("current-secret-012345678")).await, 401, "a prefix of the secret is not the secret");
    assert_eq!(heartbeat(Some("another-secret-0123456789")).await, 401);
    assert_eq!(heartbeat(None).await, 401);

    // Without a previous secret, only the current one is accepted.
    let srv2 = TestServer::start_with(&["--region-secret", current]);
    let status = |secret: &'static str| {
        let req = http.get(format!("{}/internal/v1/heartbeat", srv2.url)).header("x-medislot-region-secret", secret);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(current).await, 200);
    assert_eq!(status(previous).await, 401);
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let mut srv = TestServer::start().await;
    let http = client();
    assert_eq!(http.get(format!("{}/healthz", srv.url)).send().await.unwrap().status(), 200);
    let pid = srv.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || srv.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

/// What Prometheus sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let bin = std::env::var("MEDISLOT_TEST_PROMTOOL").expect(
        "MEDISLOT_TEST_PROMTOOL is not set: run scripts/test, which installs Debian's prometheus package for promtool",
    );
    let mut child = std::process::Command::new(bin)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ops/prometheus"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn metrics_answer_in_the_format_asked_for_and_promtool_finds_nothing_to_lint() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "promtool").await;
    let p = register(&srv, &http, "p-promtool@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    assert_eq!(p.post("/holds", json!({"slot_id": slots[0]["slot_id"]})).await.0, 201);
    assert_eq!(p.post("/appointments", json!({"slot_id": slots[1]["slot_id"]})).await.0, 201);
    let get = |accept: Option<&'static str>| {
        let mut r = http.get(format!("{}/metrics", srv.url)).bearer_auth(OPS_TOKEN);
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["vary"], "Accept");
            (r.headers()["content-type"].to_str().unwrap().to_string(), r.text().await.unwrap())
        }
    };
    let (ct, open) = get(Some(PROMETHEUS_ACCEPT)).await;
    assert!(ct.starts_with("application/openmetrics-text; version=1.0.0"), "{ct}");
    assert!(open.ends_with("# EOF\n"));
    for accept in [Some("text/plain;version=0.0.4"), Some("*/*"), None] {
        let (ct, text) = get(accept).await;
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{accept:?}: {ct}");
        assert!(!text.contains("# EOF"), "{accept:?}");
        assert!(text.contains(r#"medislot_bookings_total{outcome="held",region="local"} 1"#), "{text}");
        let (ok, lint) = promtool(&["check", "metrics"], Some(&text));
        assert!(ok && lint.trim().is_empty(), "promtool check metrics ({accept:?}):\n{lint}");
    }
    // The example rules load, and their unit tests (alerts_test.yml) pass.
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], None);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"], None);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn metrics_count_requests_and_bookings_without_ids_and_requests_carry_ids() {
    let srv = TestServer::start_with(&["--internal-listen", "127.0.0.1:0"]);
    let http = client();
    // Operational endpoints are not public: 401 without the ops token on the public address.
    for path in ["/metrics", "/api/v1/regions"] {
        let r = http.get(format!("{}{path}", srv.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = http.get(format!("{}{path}", srv.url)).bearer_auth("not-the-token").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let internal = srv.internal_url.as_ref().expect("an internal address");
        let r = http.get(format!("{internal}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} on the internal address");
    }
    // A method a client invents does not become a metrics label.
    let odd = reqwest::Method::from_bytes(b"FOO1").unwrap();
    let _ = http.request(odd, format!("{}/healthz", srv.url)).send().await.unwrap();
    let w = world(&srv, &http, "metrics").await;
    let p = register(&srv, &http, "p-metrics@example.org", "patient").await;
    let q = register(&srv, &http, "q-metrics@example.org", "patient").await;
    let slot = free_slots(&p, &w.doctor_id).await[0]["slot_id"].clone();
    assert_eq!(p.post("/appointments", json!({"slot_id": slot})).await.0, 201);
    assert_eq!(q.post("/appointments", json!({"slot_id": slot})).await.0, 409);
    let r = http
        .get(format!("{}/metrics", srv.url))
        .bearer_auth(OPS_TOKEN)
        .header("accept", PROMETHEUS_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let id = r.headers().get("x-request-id").expect("every answer carries a request id").to_str().unwrap().to_string();
    assert!(!id.is_empty());
    let text = r.text().await.unwrap();
    assert!(text.contains(r#"medislot_bookings_total{outcome="booked",region="local"} 1"#), "{text}");
    assert!(text.contains(r#"medislot_bookings_total{outcome="slot_taken",region="local"} 1"#), "{text}");
    assert!(
        text.contains(r#"route="/api/v1/appointments""#) && text.contains("medislot_db_pool_connections"),
        "{text}"
    );
    // Labels carry route templates and outcomes, never ids or personal data.
    let uuid = |s: &str| {
        s.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')).any(|w| w.len() == 36 && w.matches('-').count() == 4)
    };
    assert!(!uuid(&text) && !text.contains("example.org"), "no ids or e-mails in metrics");
    assert!(!text.contains("FOO1") && text.contains(r#"method="OTHER""#), "unknown methods share one label");
    // Public doctor records do not expose the doctor's account id.
    let (_, d) = p.get(&format!("/doctors/{}", w.doctor_id)).await;
    assert!(d.get("user_id").is_none() && d["id"] == w.doctor_id.as_str(), "{d}");
    // A caller's own request id is kept.
    let r = http.get(format!("{}/healthz", srv.url)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    // The example alert rules parse and name metrics medislot exports.
    let dir = tempfile::tempdir().unwrap();
    let metrics_file = dir.path().join("metrics.txt");
    std::fs::write(&metrics_file, &text).unwrap();
    let python = std::env::var("MEDISLOT_TEST_PYTHON")
        .expect("MEDISLOT_TEST_PYTHON is not set: run scripts/test, which creates the Python environment");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ops/prometheus");
    let out = std::process::Command::new(python)
        .args([format!("{root}/check_rules.py"), format!("{root}/alerts.yml")])
        .arg(&metrics_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "alert rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn operations_page_shows_admins_their_figures_and_nobody_else() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "ops").await;
    let p = register(&srv, &http, "p-ops@example.org", "patient").await;
    let q = register(&srv, &http, "q-ops@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    for s in &slots[..3] {
        assert_eq!(p.post("/appointments", json!({"slot_id": s["slot_id"]})).await.0, 201);
    }
    assert_eq!(q.post("/appointments", json!({"slot_id": slots[0]["slot_id"]})).await.0, 409);
    let page = |who: &User| {
        let (http, url, token) = (http.clone(), format!("{}/ops", srv.url), who.token.clone());
        async move {
            let r = http.get(url).header("cookie", format!("medislot_session={token}")).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (s, html) = page(&w.admin).await;
    assert_eq!(s, 200);
    assert!(html.contains(r#"<td id="ops-booked">3</td>"#), "{html}");
    assert!(
        html.contains(r#"<td id="ops-conflicts">25.0 %"#) && html.contains("above 1%"),
        "1 conflict in 4 attempts: {html}"
    );
    let (s, html) = page(&w.clinic_admin).await;
    assert_eq!(s, 200);
    assert!(html.contains("Clinic ops") && html.contains(r#"<td id="ops-booked">3</td>"#), "{html}");
    // Another clinic's admin sees none of it; patients and doctors see no figures.
    let other = register(&srv, &http, "ca2-ops@example.org", "clinic_admin").await;
    let (_, html) = page(&other).await;
    assert!(html.contains(r#"<td id="ops-booked">0</td>"#), "{html}");
    assert_eq!(page(&p).await.0, 403);
    assert_eq!(page(&w.doctor).await.0, 403);
}

#[tokio::test]
async fn an_attackers_guesses_never_lock_the_owner_out_and_floods_are_refused_before_hashing() {
    // The test's connections come from 127.0.0.1, a trusted proxy here, so
    // X-Forwarded-For names each client.
    let srv = TestServer::start_with(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--logins-per-minute",
        "5",
        "--client-attempts-per-minute",
        "20",
    ]);
    let http = client();
    register(&srv, &http, "owner@example.org", "patient").await;
    let login = |from: &'static str, email: String, password: &'static str| {
        let req = http
            .post(srv.api("/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}));
        async move {
            let t0 = std::time::Instant::now();
            let r = req.send().await.unwrap();
            (r.status().as_u16(), t0.elapsed())
        }
    };
    // The attacker guesses the owner's password until refused.
    let mut statuses = vec![];
    for _ in 0..8 {
        statuses.push(login("203.0.113.9", "owner@example.org".into(), "wrong password!").await.0);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The owner, from their own address, signs in at once.
    assert_eq!(login("198.51.100.7", "owner@example.org".into(), PASSWORD).await.0, 200);
    // Spraying other accounts from the attacker's address: refused as a whole, fast
    // (no password is hashed for a refused attempt).
    let mut refused = vec![];
    for i in 0..30 {
        let (s, took) = login("203.0.113.9", format!("u{i}@example.org"), "wrong password!").await;
        if s == 429 {
            refused.push(took);
        }
    }
    assert!(refused.len() >= 15, "{} of 30 refused", refused.len());
    // Sign-ups from that address are throttled too.
    let r = http
        .post(srv.api("/auth/register"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "new@example.org", "password": PASSWORD, "name": "New", "role": "patient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Without a trusted proxy, X-Forwarded-For is the client's own claim and changes nothing.
    let srv2 = TestServer::start_with(&["--logins-per-minute", "3"]);
    let mut statuses = vec![];
    for i in 0..5 {
        let r = http
            .post(srv2.api("/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"email": "x@example.org", "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}
