//! The signed-in person's account page: their data to download; and a
//! clinic's appointments for its admins.

use super::Web;
use crate::routes::privacy;
use crate::AppState;
use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use medislot_app::AppError;
use medislot_domain::ClinicId;

pub async fn page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    let Some(me) = &w.me else { return Redirect::to("/login?next=/account").into_response() };
    let body = html! {
        h1 { "Your account" }
        p { (me.user.name) " · " (me.user.email) }
        h2 { "Your data" }
        p { "Download everything medislot holds about you: your account, your appointments with their history, \
             visits and answers, your notifications and waitlist entries." }
        ul {
            li { a href="/account/export.json" download { "Everything, as JSON" } }
            li { a href="/account/calendar.ics" download { "Your appointments, as a calendar (.ics)" } }
        }
        p.muted { "What is kept and for how long is written down in the privacy notice of the service." }
        @if w.patient().is_some() { (erase_form(&w, None)) }
    };
    w.ok("Your account", body)
}

fn erase_form(w: &Web, error: Option<&str>) -> maud::Markup {
    html! {
        h2 { "Erase your account" }
        p { "Your coming appointments are cancelled and the clinics told. Past appointments stay in the clinics' \
             records, no longer linked to your name or e-mail; everything else about you is deleted. This cannot be undone." }
        form method="post" action="/account/erase" {
            (w.csrf_field())
            label for="erase-password" { "Your password, to confirm" }
            input #erase-password name="password" type="password" autocomplete="current-password" required
                aria-describedby=[error.map(|_| "erase-password-error")];
            @if let Some(e) = error { p.error #erase-password-error role="alert" { (e) } }
            button.danger type="submit" { "Erase my account" }
        }
    }
}

/// Erases the account, ends the session, and says so.
pub async fn erase(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = super::Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if w.me.is_none() {
        return Redirect::to("/login?next=/account").into_response();
    }
    let refused = |w: &Web, msg: &str| {
        let body = html! { h1 { "Your account" } (erase_form(w, Some(msg))) };
        w.render(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "Your account", body)
    };
    if !w.csrf_ok() {
        return refused(&w, "Your form expired. Please try again.");
    }
    match s.app.erase_me(w.me.as_ref(), &form.text("password")).await {
        Ok(()) => {
            let body = html! {
                h1 { "Your account is erased" }
                p { "Thank you for using medislot." }
                p { a href="/" { "Back to the start" } }
            };
            let page = w.render(axum::http::StatusCode::OK, "Account erased", body);
            super::auth::with_cookie(page, &s.cookies.session_cookie("", 0))
        }
        Err(AppError::Invalid(_)) => refused(&w, "That is not your password."),
        Err(e) => w.problem(&e),
    }
}

pub async fn export(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    match privacy::export_file(&s, w.me.as_ref()).await {
        Ok(r) => r,
        Err(e) => w.problem(&e),
    }
}

pub async fn calendar(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    match privacy::calendar_file(&s, w.me.as_ref()).await {
        Ok(r) => r,
        Err(e) => w.problem(&e),
    }
}

pub async fn clinic_csv(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let w = Web::new(&s, &headers).await;
    let Ok(id) = id.parse::<ClinicId>() else { return w.problem(&AppError::NotFound("clinic")) };
    match privacy::clinic_csv_file(&s, w.me.as_ref(), id).await {
        Ok(r) => r,
        Err(e) => w.problem(&e),
    }
}
