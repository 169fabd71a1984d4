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
    };
    w.ok("Your account", body)
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
