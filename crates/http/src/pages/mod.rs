//! Server-rendered pages. For now the booking page a slot's deep link opens
//! (SMART Scheduling Links, FHIR): see the slot, sign in, book it.

mod book;

use crate::{extract::session_cookie, AppState};
use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};
use medislot_app::Actor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/book/{slot_id}", get(book::show).post(book::submit))
        .route("/appointments/{id}", get(book::confirmation))
}

const CSRF_COOKIE: &str = "medislot_csrf";

/// Text made safe to place in HTML, attributes included.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: readable on a phone, labelled, high contrast.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · medislot</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;color:#111;background:#fff;line-height:1.5}}
h1{{font-size:1.5rem}} .slot{{border:1px solid #555;border-radius:.5rem;padding:1rem;margin:1rem 0}}
label{{display:block;margin-top:.75rem;font-weight:600}} input,textarea{{width:100%;padding:.5rem;font-size:1rem;border:1px solid #333;box-sizing:border-box}}
button{{margin-top:1rem;padding:.75rem 1.25rem;font-size:1rem;background:#0b57d0;color:#fff;border:0;border-radius:.25rem}}
button:focus,a:focus,input:focus{{outline:3px solid #f90}} .error{{color:#a00;font-weight:600}} a{{color:#0b57d0}}
</style></head>
<body><main>
{body}
</main></body></html>"#,
        title = esc(title)
    );
    (status, Html(html)).into_response()
}

/// The signed-in person, from the session cookie.
pub async fn session(s: &AppState, headers: &HeaderMap) -> Option<Actor> {
    let token = session_cookie(headers)?;
    s.app.authenticate(&token).await.ok().flatten()
}

/// The CSRF token for forms (double-submit cookie): the one the browser
/// holds, or a fresh one to set.
pub fn csrf_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(t) = cookie(headers, CSRF_COOKIE).filter(|t| t.len() == 32) {
        return (t, None);
    }
    let t = uuid::Uuid::new_v4().simple().to_string();
    let set = HeaderValue::from_str(&format!("{CSRF_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict")).ok();
    (t, set)
}

/// A form's token matches the browser's cookie: the form came from our page.
pub fn csrf_ok(headers: &HeaderMap, form_token: Option<&str>) -> bool {
    matches!((cookie(headers, CSRF_COOKIE), form_token), (Some(c), Some(f)) if c.len() == 32 && c == f)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}
