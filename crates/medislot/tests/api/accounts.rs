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
async fn sigterm_stops_the_server_gracefully() {
    let mut srv = TestServer::start().await;
    let http = client();
    assert_eq!(http.get(format!("{}/healthz", srv.url)).send().await.unwrap().status(), 200);
    let pid = srv.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || srv.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
