//! The doctor's video consultations page: a room per appointment on the
//! platform's video service, or the doctor's own fixed room.

use super::staff::{managed_doctor, signed_in};
use super::{error_for, field_errors, Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::{html, Markup};
use medislot_app::AppError;
use medislot_store::DoctorRecord;
use std::collections::HashMap;

fn page_url(q: &HashMap<String, String>) -> String {
    match q.get("doctor") {
        Some(d) => format!("/doctor/video-room?doctor={}", super::urlencode(d)),
        None => "/doctor/video-room".into(),
    }
}

fn body(
    w: &Web,
    d: &DoctorRecord,
    q: &HashMap<String, String>,
    typed: Option<&str>,
    errors: &HashMap<String, String>,
) -> Markup {
    let action = page_url(q);
    html! {
        h1 { "Video consultations" }
        @if q.get("notice").is_some_and(|n| n == "saved") { p.ok role="status" { "Saved." } }
        @if let Some(e) = errors.get("form") { p.error role="alert" { (e) } }
        p {
            "Each online appointment of " (d.name) " gets its link when it is booked, shown only to the patient, "
            "the doctor and the clinic's admins."
        }
        @match &d.video_room_url {
            Some(url) => p { "Now: every online appointment meets in your own room, " code { (url) } "." },
            None => p { "Now: a new, unguessable room for each appointment on the platform's video service." },
        }
        form method="post" action=(action) {
            (w.csrf_field())
            input type="hidden" name="version" value=(d.version);
            label for="url" { "Your own room's address (optional)" }
            input #url name="url" type="url" maxlength="2000" placeholder="https://meet.example.org/dr-name"
                value=(typed.or(d.video_room_url.as_deref()).unwrap_or_default())
                aria-describedby="url-help";
            p.muted #url-help { "Leave it empty for a room per appointment." }
            (error_for(errors, "url"))
            button type="submit" { "Save" }
        }
        p { a href={ "/doctor/schedule" @if let Some(id) = q.get("doctor") { "?doctor=" (super::urlencode(id)) } } { "Back to the schedule" } }
    }
}

pub async fn page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/doctor/video-room") {
        return r;
    }
    let d = match managed_doctor(&s, &w, &q).await {
        Ok(d) => d,
        Err(e) => return w.problem(&e),
    };
    match s.app.video_room_of(w.me.as_ref(), d.id).await {
        Ok(d) => w.ok("Video consultations", body(&w, &d, &q, None, &HashMap::new())),
        Err(e) => w.problem(&e),
    }
}

pub async fn save(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    let form = Form::parse(&raw);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let d = match managed_doctor(&s, &w, &q).await.map(|d| d.id) {
        Ok(id) => match s.app.video_room_of(w.me.as_ref(), id).await {
            Ok(d) => d,
            Err(e) => return w.problem(&e),
        },
        Err(e) => return w.problem(&e),
    };
    let typed = form.text("url");
    let mut errors = HashMap::new();
    if !w.csrf_ok() {
        errors.insert("form".to_string(), "Your form expired. Please try again.".to_string());
    } else {
        let url = Some(typed.trim()).filter(|u| !u.is_empty());
        let version = form.text("version").parse().ok();
        match s.app.set_video_room(w.me.as_ref(), d.id, url, version).await {
            Ok(_) => {
                let sep = if q.contains_key("doctor") { '&' } else { '?' };
                return Redirect::to(&format!("{}{sep}notice=saved", page_url(&q))).into_response();
            }
            Err(AppError::Invalid(e)) => errors.extend(field_errors(&e.0)),
            Err(AppError::PreconditionFailed { .. }) => {
                errors.insert("form".into(), "Someone changed this profile meanwhile: here it is as it is now.".into());
            }
            Err(e) => return w.problem(&e),
        }
    }
    let now = s.app.video_room_of(w.me.as_ref(), d.id).await.unwrap_or(d);
    w.render(StatusCode::UNPROCESSABLE_ENTITY, "Video consultations", body(&w, &now, &q, Some(&typed), &errors))
}
