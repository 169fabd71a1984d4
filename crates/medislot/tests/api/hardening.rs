//! What an attacker tries first: instants at the time library's limits, bodies
//! too large everywhere, unknown URLs, redirects after sign-in, reloads of
//! form posts. Every answer is an answer in the caller's format — never a
//! panic, a dropped connection or another site.

use crate::helpers::*;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A slot id whose start is `secs` (valid base64, a real doctor, an absurd time).
fn slot_id_at(doctor: &str, secs: i64) -> String {
    let mut bytes = [0u8; 24];
    bytes[..16].copy_from_slice(uuid::Uuid::parse_str(doctor).unwrap().as_bytes());
    bytes[16..].copy_from_slice(&secs.to_be_bytes());
    format!("slot_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn content_type(h: &reqwest::header::HeaderMap) -> String {
    h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

#[tokio::test]
async fn instants_at_the_time_librarys_limits_are_refused_cleanly_on_every_route() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "limits").await;
    let p = register(&srv, &http, "p-limits@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    let (_, a) = p.post("/appointments", json!({"slot_id": slots[2]["slot_id"]})).await;
    let id = a["id"].as_str().unwrap();

    for secs in [253_402_207_200i64, 253_402_300_799, -377_705_116_800, i64::MAX, 7_258_118_400] {
        let slot = slot_id_at(&w.doctor_id, secs);
        for (path, body) in [
            ("/holds".to_string(), json!({"slot_id": slot})),
            ("/appointments".to_string(), json!({"slot_id": slot})),
            (format!("/appointments/{id}/reschedule"), json!({"slot_id": slot})),
        ] {
            let (s, e, h) = p.send(Method::POST, &path, Some(body), &[("If-Match", "*")]).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} at {secs}: {e}");
            assert!(content_type(&h).starts_with("application/problem+json"));
            assert_eq!(e["errors"][0]["field"], "slot_id", "{e}");
        }
        // FHIR: the Slot read, $hold and $book answer OperationOutcomes.
        let r = http.get(format!("{}/fhir/Slot/{}.{secs}", srv.url, w.doctor_id)).send().await.unwrap();
        assert!(r.status().is_client_error(), "Slot at {secs}: {}", r.status());
        assert!(content_type(r.headers()).starts_with("application/fhir+json"));
        for op in ["$hold", "$book"] {
            let body = json!({"resourceType": "Parameters", "parameter": [{"name": "appt-resource", "resource":
                {"resourceType": "Appointment", "status": "proposed", "slot": [{"reference": format!("Slot/{}.{secs}", w.doctor_id)}]}}]});
            let r = http
                .post(format!("{}/fhir/Appointment/{op}", srv.url))
                .bearer_auth(&p.token)
                .header("content-type", "application/fhir+json")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_client_error(), "{op} at {secs}: {}", r.status());
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["resourceType"], "OperationOutcome");
        }
        // The booking page of such a slot is an HTML page, not a 500.
        let r = http.get(format!("{}/book/{slot}", srv.url)).send().await.unwrap();
        assert!(r.status().is_client_error(), "/book at {secs}: {}", r.status());
        assert!(content_type(r.headers()).starts_with("text/html"));
    }

    // Query instants: far years and offsets RFC 3339 does not have.
    for (param, value) in [
        ("from", "9999-12-31"),
        ("from", "2026-01-01T00:00:00+24:00"),
        ("to", "2026-01-01T00:00:00-25:59"),
        ("from", "1900-01-01T00:00:00Z"),
    ] {
        let (s, e) = p.get(&format!("/doctors/{}/slots?{param}={}", w.doctor_id, urlencode(value))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{param}={value}: {e}");
        assert_eq!(e["errors"][0]["field"], param, "{e}");
    }
    let (s, e) = w
        .doctor
        .post(
            &format!("/doctors/{}/time-off", w.doctor_id),
            json!({"start": "2026-12-26T00:00:00+24:00", "end": "2027-01-02T00:00:00Z"}),
        )
        .await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("start")), "{e}");
    let r = http
        .get(format!("{}/fhir/Slot?schedule=Schedule/{}.in-person&start=ge9999-12-31T00:00:00Z", srv.url, w.doctor_id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The server is still there.
    assert_eq!(http.get(format!("{}/healthz", srv.url)).send().await.unwrap().status(), 200);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn every_error_is_in_the_format_its_caller_reads() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "formats").await;
    let p = register(&srv, &http, "p-formats@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    let (_, a) = p.post("/appointments", json!({"slot_id": slots[2]["slot_id"]})).await;
    let id = a["id"].as_str().unwrap();
    let big = "x".repeat(300 * 1024);

    // 413 on the API is problem+json, on FHIR an OperationOutcome.
    let r = http
        .post(srv.api(&format!("/appointments/{id}/cancel")))
        .bearer_auth(&p.token)
        .header("if-match", "*")
        .header("content-type", "application/json")
        .body(format!("{{\"reason\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(content_type(r.headers()).starts_with("application/problem+json"), "{:?}", r.headers());
    for op in ["$hold", "$book", "$find"] {
        let r = http
            .post(format!("{}/fhir/Appointment/{op}", srv.url))
            .bearer_auth(&p.token)
            .header("content-type", "application/fhir+json")
            .body(format!("{{\"resourceType\":\"Parameters\",\"x\":\"{big}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{op}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["resourceType"], "OperationOutcome", "{op}: {v}");
    }
    // Unknown URLs: a page for a browser, problem+json under the API, OperationOutcome under FHIR.
    let r = http.get(format!("{}/no/such/page", srv.url)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(content_type(r.headers()).starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("Back to the start"));
    // Every page names the site's icon, and the address browsers try anyway answers it.
    assert!(page.contains(r#"<link rel="icon" href="/favicon.svg""#), "{page}");
    for icon in ["/favicon.svg", "/favicon.ico"] {
        let r = http.get(format!("{}{icon}", srv.url)).send().await.unwrap();
        assert_eq!((r.status().as_u16(), content_type(r.headers())), (200, "image/svg+xml".to_string()), "{icon}");
        assert!(r.text().await.unwrap().starts_with("<svg"));
    }
    let r = http.get(srv.api("/no/such/route")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), content_type(r.headers()).starts_with("application/problem+json")), (404, true));
    let r = http.get(format!("{}/fhir/NoSuchType", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["resourceType"], "OperationOutcome");
    // A wrong method on a page: an HTML page with Allow.
    let r = http.delete(format!("{}/login", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    assert!(content_type(r.headers()).starts_with("text/html"));
    // Every 401 says how to authenticate, on the API and on FHIR.
    for url in [srv.api("/appointments"), format!("{}/fhir/Appointment", srv.url)] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{url}");
        assert!(r.headers().get("www-authenticate").is_some(), "{url}");
    }
    // Reloading what a form posted to goes back to the form's page.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, page) in [
        ("/doctor/time-off".to_string(), "/doctor/schedule".to_string()),
        (format!("/admin/verification/{}", w.doctor_id), "/admin/verification".to_string()),
        (format!("/doctors/{}/waitlist", w.doctor_id), format!("/doctors/{}", w.doctor_id)),
    ] {
        let r = no_redirects.get(format!("{}{path}", srv.url)).send().await.unwrap();
        assert!(r.status().is_redirection(), "{path}: {}", r.status());
        assert_eq!(r.headers()["location"].to_str().unwrap(), page);
    }
}

/// Signs in through the page with `next`, and returns where the answer sends the browser.
async fn sign_in_then(srv: &TestServer, email: &str, next: &str) -> (u16, String) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{}/login", srv.url)).send().await.unwrap();
    let csrf = set_cookie(&page, "medislot_csrf").expect("a CSRF cookie");
    let body = format!("csrf={csrf}&email={}&password={}", email.replace('@', "%40"), PASSWORD.replace(' ', "+"));
    let r = http
        .post(format!("{}/login?next={next}", srv.url))
        .header("cookie", format!("medislot_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default())
}

#[tokio::test]
async fn sign_in_never_sends_the_browser_to_another_site() {
    let srv = TestServer::start().await;
    let http = client();
    register(&srv, &http, "p-next@example.org", "patient").await;
    for next in [
        "%2F%09%2Fevil.example",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "https%3A%2F%2Fevil.example",
        "%2Fa%0D%0ASet-Cookie%3A+x%3Dy",
        "%2F%0A%2Fevil.example",
    ] {
        let (status, location) = sign_in_then(&srv, "p-next@example.org", next).await;
        assert_eq!((status, location.as_str()), (303, "/"), "next={next}");
    }
    let (status, location) = sign_in_then(&srv, "p-next@example.org", "%2Fappointments").await;
    assert_eq!((status, location.as_str()), (303, "/appointments"));
}

/// Reads until the server closes the connection (or `within` passes): what it said, and whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_connections_are_capped() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start_with(&[
        "--header-read-timeout-ms",
        "700",
        "--idle-timeout-ms",
        "1500",
        "--body-read-timeout-ms",
        "700",
        "--max-connections",
        "40",
    ]);
    let addr = srv.url.trim_start_matches("http://").to_string();
    // 30 clients send half a request line and stop (slowloris).
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(s);
    }
    // Beyond the cap, a connection is answered 503 at once.
    let mut more = Vec::new();
    for _ in 0..15 {
        more.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut refused = 0;
    for s in &mut more {
        let (said, closed) = read_until_closed(s, Duration::from_millis(500)).await;
        if said.starts_with("HTTP/1.1 503") && closed {
            refused += 1;
        }
    }
    assert!(refused >= 5, "connections beyond the cap of 40 are refused: {refused} of 15");
    // The slow ones are closed once the header read timeout passes.
    for s in &mut slow {
        let (_, closed) = read_until_closed(s, Duration::from_secs(3)).await;
        assert!(closed, "a half-sent request is cut off");
    }
    // A body that never finishes arriving is cut off too.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    assert!(closed, "a body that stalls is cut off");
    // An idle keep-alive connection is closed after the idle timeout; a live one is served.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (said, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    assert!(said.starts_with("HTTP/1.1 200") && closed, "served, then closed when idle: {said:?}");
    assert_eq!(client().get(format!("{}/healthz", srv.url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn pages_cannot_be_framed_or_sniffed_and_cookies_are_secure_over_https() {
    let srv = TestServer::start_with(&["--public-url", "https://clinic.example"]);
    let http = client();
    let r = http.get(format!("{}/login", srv.url)).send().await.unwrap();
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "no inline code allowed: {csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let cookie = h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>().join("\n");
    assert!(cookie.starts_with("__Host-medislot_csrf=") && cookie.contains("; Secure"), "{cookie}");
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains("<style>"), "no inline script or style");
    // The script and stylesheet are files, cached for long.
    let assets: Vec<&str> = page.split('"').filter(|s| s.starts_with("/static/site-")).collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
    for path in assets {
        let r = http.get(format!("{}{path}", srv.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("max-age"), "{path}");
    }
    // Over plain http (the default), no Secure attribute and no prefix.
    let plain = TestServer::start().await;
    let r = http.get(format!("{}/login", plain.url)).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("medislot_csrf=") && !cookie.contains("Secure"), "{cookie}");
    // API answers to a signed-in caller are not cached either.
    let p = register(&plain, &http, "p-cache@example.org", "patient").await;
    let r = http.get(plain.api("/appointments")).bearer_auth(&p.token).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn look_alike_addresses_are_refused_and_zones_are_stored_as_iana_spells_them() {
    let srv = TestServer::start().await;
    let http = client();
    register(&srv, &http, "patient@example.org", "patient").await;
    for (email, says) in [
        ("p\u{0430}tient@example.org", "alphabets"),
        ("pat\u{200b}ient@example.org", "invisible"),
        ("patient\u{0}@example.org", "invisible"),
    ] {
        let r = http
            .post(srv.api("/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "name": "Look Alike", "role": "patient"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{email:?}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["errors"][0]["field"], "email");
        assert!(e["errors"][0]["message"].as_str().unwrap().contains(says), "{e}");
    }
    // The same address typed in full-width letters is the same account.
    let r = http
        .post(srv.api("/auth/register"))
        .json(&json!({"email": "ＰＡＴＩＥＮＴ@example.org", "password": PASSWORD, "name": "Twin", "role": "patient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let admin = register(&srv, &http, "ca-zones@example.org", "clinic_admin").await;
    for (typed, stored) in [("EUROPE/PARIS", "Europe/Paris"), ("GMT", "GMT"), ("america/new_york", "America/New_York")]
    {
        let (s, c) = admin
            .post(
                "/clinics",
                json!({"name": "Zones", "address": "1 rue X", "latitude": 48.0, "longitude": 2.0, "time_zone": typed}),
            )
            .await;
        assert_eq!((s, c["time_zone"].as_str()), (StatusCode::CREATED, Some(stored)), "{typed}: {c}");
    }
}

#[tokio::test]
async fn what_the_admin_verified_cannot_change_behind_their_back() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "reverify").await;
    async fn in_search(u: &User, id: &str) -> bool {
        let (_, found) = u.get("/doctors?specialty=cardiology").await;
        found["items"].as_array().unwrap().iter().any(|h| h["doctor"]["id"] == id)
    }
    let p = register(&srv, &http, "p-reverify@example.org", "patient").await;
    assert!(in_search(&p, &w.doctor_id).await);
    // A change the admin did not review (the bio) keeps the profile verified.
    let (s, d, _) = w
        .doctor
        .send(Method::PATCH, &format!("/doctors/{}", w.doctor_id), Some(json!({"bio": "Heart doctor."})), &[])
        .await;
    assert_eq!((s, d["verification"].as_str()), (StatusCode::OK, Some("verified")), "{d}");
    // A new licence number sends it back to review and out of search.
    let (s, d, _) = w
        .doctor
        .send(
            Method::PATCH,
            &format!("/doctors/{}", w.doctor_id),
            Some(json!({"licence_number": "LIC-CHANGED-1"})),
            &[],
        )
        .await;
    assert_eq!((s, d["verification"].as_str()), (StatusCode::OK, Some("pending")), "{d}");
    assert!(d["verification_reason"].as_str().unwrap().contains("licence_number"), "{d}");
    assert!(!in_search(&p, &w.doctor_id).await, "unlisted until approved again");
    let (s, _) = w.admin.post(&format!("/doctors/{}/verification", w.doctor_id), json!({"decision": "verified"})).await;
    assert_eq!(s, 200);
    assert!(in_search(&p, &w.doctor_id).await);

    // Two active profiles cannot share a licence number.
    let other = register(&srv, &http, "dr-copycat@example.org", "doctor").await;
    let body = |licence: &str| json!({"clinic_id": w.clinic_id, "name": "Dr Copy", "specialties": ["cardiology"], "modes": ["in_person"], "licence_number": licence});
    let (s, e) = other.post("/doctors", body("LIC-CHANGED-1")).await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::CONFLICT, Some("licence_number")), "{e}");
    let (s, copy) = other.post("/doctors", body("LIC-OWN-2")).await;
    assert_eq!(s, 201, "{copy}");
    let copy_id = copy["id"].as_str().unwrap().to_string();
    let (s, e, _) = other
        .send(Method::PATCH, &format!("/doctors/{copy_id}"), Some(json!({"licence_number": "LIC-CHANGED-1"})), &[])
        .await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::CONFLICT, Some("licence_number")), "{e}");
    // A rejected profile frees its licence; reinstating the rejected one then is
    // flagged in the queue, and the second cannot be verified while the first is.
    let (s, _) = w
        .admin
        .post(
            &format!("/doctors/{}/verification", w.doctor_id),
            json!({"decision": "rejected", "reason": "licence unknown"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, e, _) = other
        .send(Method::PATCH, &format!("/doctors/{copy_id}"), Some(json!({"licence_number": "LIC-CHANGED-1"})), &[])
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, _) = w.admin.post(&format!("/doctors/{}/verification", w.doctor_id), json!({"decision": "verified"})).await;
    assert_eq!(s, 200);
    let (s, e) = w.admin.post(&format!("/doctors/{copy_id}/verification"), json!({"decision": "verified"})).await;
    assert_eq!((s, e["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("decision")), "{e}");
    let page = http
        .get(format!("{}/admin/verification", srv.url))
        .header("cookie", format!("medislot_session={}", w.admin.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("This licence number is also used by"), "the queue flags it");
}

#[tokio::test]
async fn the_webhook_log_says_what_happened_without_mapping_the_network() {
    let srv = TestServer::start_with(&[
        "--webhooks-allow-private",
        "--notify-poll-ms",
        "50",
        "--notify-backoff-ms",
        "200",
        "--reminders",
        "",
    ]);
    let http = client();
    let w = world(&srv, &http, "coarse").await;
    // A closed port on loopback: the connection is refused.
    let path = format!("/clinics/{}/webhooks", w.clinic_id);
    let (s, hook) = w.clinic_admin.post(&path, json!({"url": "http://127.0.0.1:1/hook"})).await;
    assert_eq!(s, 201, "{hook}");
    let p = register(&srv, &http, "p-coarse@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    assert_eq!(p.post("/appointments", json!({"slot_id": slots[3]["slot_id"]})).await.0, 201);
    let log_path = format!("{path}/{}/deliveries", hook["id"].as_str().unwrap());
    let t0 = std::time::Instant::now();
    let error = loop {
        let (_, log) = w.clinic_admin.get(&log_path).await;
        if let Some(e) =
            log.as_array().and_then(|l| l.iter().find_map(|d| d["last_error"].as_str().map(str::to_string)))
        {
            break e;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "no attempt logged: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(error, "connection failed", "coarse outcomes only");
}

#[tokio::test]
async fn expensive_public_reads_are_limited_per_client_and_bulk_files_are_published_artefacts() {
    // Demo data: the node's first publication, at start, already has doctors in it.
    let srv = TestServer::start_with(&["--demo", "--public-reads-per-second", "5"]);
    let http = client();
    let w = world(&srv, &http, "bulk").await;
    // Anonymous searches beyond the client's budget: 429 with Retry-After, in each caller's format.
    let mut codes = vec![];
    for _ in 0..30 {
        codes.push(http.get(srv.api("/doctors?specialty=cardiology")).send().await.unwrap().status().as_u16());
    }
    assert!(codes.contains(&200) && codes.contains(&429), "{codes:?}");
    let r = http.get(format!("{}/fhir/Practitioner", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["resourceType"], "OperationOutcome");
    // A signed-in caller is not counted against the anonymous budget.
    let p = register(&srv, &http, "p-bulk@example.org", "patient").await;
    for _ in 0..15 {
        assert_eq!(p.get("/doctors?specialty=cardiology").await.0, 200);
    }

    // The full Slot file is generated once and served from disk to every reader.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await; // the anonymous budget refills
    let url = format!("{}/fhir/$bulk-publish/Slot.ndjson", srv.url);
    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "public, max-age=60");
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body = first.text().await.unwrap();
    assert!(body.lines().count() > 10, "{body}");
    let on_disk = std::fs::read_dir(srv.data_dir.join("bulk"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("Slot-"))
        .expect("a Slot file published on disk");
    let made = std::fs::metadata(&on_disk).unwrap().modified().unwrap();
    // A change within the minute is not published yet (it is, at most a minute later).
    let slots = free_slots(&p, &w.doctor_id).await;
    assert_eq!(p.post("/appointments", json!({"slot_id": slots[2]["slot_id"]})).await.0, 201);
    for _ in 0..5 {
        let again = http.get(&url).send().await.unwrap();
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(again.text().await.unwrap(), body, "the same artefact");
    }
    assert_eq!(std::fs::metadata(&on_disk).unwrap().modified().unwrap(), made, "not regenerated within the minute");
    let r = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    // What changed is available at once through _since, computed per request.
    let since = http.get(format!("{url}?_since=2000-01-01")).send().await.unwrap();
    assert_eq!(since.headers()["cache-control"], "public, max-age=60", "every bulk answer may be cached");
    let since = since.text().await.unwrap();
    assert!(since.contains("\"busy\""), "the booked slot is busy in the _since answer");
}

#[tokio::test]
async fn joining_a_clinic_needs_the_other_sides_consent() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "consent").await;
    let other_clinic_admin = register(&srv, &http, "ca-other@example.org", "clinic_admin").await;
    let body = |user: Option<&str>| {
        let mut b = json!({"clinic_id": w.clinic_id, "name": "Dr Joiner", "specialties": ["cardiology"], "modes": ["in_person"],
            "licence_number": format!("LIC-{}", uuid::Uuid::new_v4().simple())});
        if let Some(u) = user {
            b["user_id"] = json!(u);
        }
        b
    };
    // A doctor who names a clinic asks to join it: the clinic decides, nobody else.
    let joiner = register(&srv, &http, "dr-joiner@example.org", "doctor").await;
    let (s, d) = joiner.post("/doctors", body(None)).await;
    assert_eq!((s, d["membership"].as_str()), (StatusCode::CREATED, Some("requested")), "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    async fn decide(u: &User, id: &str, decision: &str) -> (StatusCode, serde_json::Value) {
        u.post(&format!("/doctors/{id}/membership"), json!({"decision": decision})).await
    }
    assert_eq!(decide(&joiner, &id, "accept").await.0, StatusCode::FORBIDDEN, "not their own request");
    assert_eq!(decide(&other_clinic_admin, &id, "accept").await.0, StatusCode::NOT_FOUND, "another clinic's admin");
    let (s, e) = w.admin.post(&format!("/doctors/{id}/verification"), json!({"decision": "verified"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, d) = decide(&w.clinic_admin, &id, "accept").await;
    assert_eq!((s, d["membership"].as_str()), (StatusCode::OK, Some("active")), "{d}");
    assert_eq!(decide(&w.clinic_admin, &id, "accept").await.0, StatusCode::CONFLICT, "answered once");

    // A clinic that names a doctor's account invites it: the account is not claimed
    // until the doctor accepts, and the doctor can decline and make their own profile.
    let invited = register(&srv, &http, "dr-invited@example.org", "doctor").await;
    let (s, d) = w.clinic_admin.post("/doctors", body(Some(&invited.id))).await;
    assert_eq!((s, d["membership"].as_str()), (StatusCode::CREATED, Some("invited")), "{d}");
    let invitation = d["id"].as_str().unwrap().to_string();
    let (s, e) = invited.post("/doctors", body(None)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("invited"), "{e}");
    let (s, seen) = invited.get(&format!("/doctors/{invitation}")).await;
    assert_eq!((s, seen["membership"].as_str()), (StatusCode::OK, Some("invited")));
    assert_eq!(
        invited.put(&format!("/doctors/{invitation}/schedule"), json!({"weekly": []})).await.0,
        StatusCode::FORBIDDEN,
        "not theirs to manage before accepting"
    );
    assert_eq!(
        w.clinic_admin.post(&format!("/doctors/{invitation}/membership"), json!({"decision": "accept"})).await.0,
        StatusCode::FORBIDDEN,
        "the clinic cannot accept its own invitation"
    );
    let (s, d) = invited.post(&format!("/doctors/{invitation}/membership"), json!({"decision": "decline"})).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let (s, own) = invited.post("/doctors", body(None)).await;
    assert_eq!((s, own["membership"].as_str()), (StatusCode::CREATED, Some("requested")), "{own}");
}

#[tokio::test]
async fn past_its_in_flight_limit_a_node_answers_503_at_once_and_still_answers_health_checks() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start_with(&["--max-in-flight", "2", "--body-read-timeout-ms", "5000"]);
    let addr = srv.url.trim_start_matches("http://").to_string();
    // Two requests whose bodies are still arriving: both are being worked on.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"")
            .await
            .unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = client().get(srv.api("/doctors")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "refused without waiting");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, body, _) = decode(r).await;
    assert_eq!(body["type"], "https://medislot.dev/problems/overloaded", "{body}");
    assert_eq!(client().get(format!("{}/readyz", srv.url)).send().await.unwrap().status(), 200);
    // Once the stalled requests are over, the node serves again.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client().get(srv.api("/doctors")).send().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the node serves again once its requests are over ({status})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
