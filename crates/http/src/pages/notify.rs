//! The signed-in visitor's notifications, and patients' waiting lists.

use super::{Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use medislot_app::{AppError, WaitlistInput};
use medislot_domain::DoctorId;
use medislot_store::WaitlistStatus;

/// Newest first; opening the page marks them read.
pub async fn notifications(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to("/login?next=/notifications").into_response();
    }
    let list = match s.app.notifications(w.me.as_ref(), 50).await {
        Ok(l) => l,
        Err(e) => return w.problem(&e),
    };
    let waiting = match w.patient() {
        Some(p) => match s.app.my_waitlist(Some(p)).await {
            Ok(l) => l.into_iter().filter(|e| e.status != WaitlistStatus::Booked).collect(),
            Err(e) => return w.problem(&e),
        },
        None => vec![],
    };
    let doctors = match s.app.doctors_with_clinics(waiting.iter().map(|e| e.doctor_id).collect::<Vec<_>>()).await {
        Ok(d) => d,
        Err(e) => return w.problem(&e),
    };
    let body = html! {
        h1 { "Notifications" }
        @if list.is_empty() { p { "Nothing yet." } }
        ul.plain {
            @for n in &list {
                li.card data-notification=(n.id) {
                    p {
                        @if n.read_at.is_none() { span.badge { "New" } " " }
                        strong.title { (n.title) }
                    }
                    p { (n.body) }
                    @if let Some(link) = &n.link { p { a href=(link) { "Open" } } }
                }
            }
        }
        @if !waiting.is_empty() {
            h2 { "Waiting lists" }
            @for e in &waiting {
                div.card data-waitlist=(e.id) {
                    p {
                        strong { (doctors.get(&e.doctor_id).map_or("A doctor", |(d, _)| d.name.as_str())) }
                        " — "
                        @match e.status {
                            WaitlistStatus::Offered => {
                                "a slot is held for you: "
                                @if let Some(a) = e.offered_appointment_id { a href={ "/holds/" (a) } { "confirm it" } }
                            }
                            _ => { "waiting for a free slot" }
                        }
                    }
                    form method="post" action={ "/waitlist/" (e.id) "/leave" } {
                        (w.csrf_field())
                        button type="submit" { "Leave this waiting list" }
                    }
                }
            }
        }
    };
    let page = w.ok("Notifications", body);
    for n in list.iter().filter(|n| n.read_at.is_none()) {
        // Read once shown; a failure here only leaves the badge for next time.
        let _ = s.app.mark_notification_read(w.me.as_ref(), n.id).await;
    }
    page
}

/// "Tell me when a slot frees up" on a doctor's page.
/// A GET of the waitlist form's address goes back to the doctor's page.
pub async fn back_to_doctor(Path(id): Path<String>) -> Response {
    match id.parse::<DoctorId>() {
        Ok(d) => Redirect::to(&format!("/doctors/{d}")).into_response(),
        Err(_) => Redirect::to("/").into_response(),
    }
}

pub async fn join_waitlist(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if w.me.is_none() {
        return Redirect::to(&format!("/login?next=/doctors/{id}")).into_response();
    }
    if !w.csrf_ok() {
        return w.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not saved",
            html! { h1 { "Not saved" } p.error { "Your form expired. " a href={ "/doctors/" (id) } { "Try again" } } },
        );
    }
    let Ok(doctor) = id.parse::<DoctorId>() else { return w.problem(&AppError::NotFound("doctor")) };
    let input = WaitlistInput { mode: form.get("mode").map(str::to_string), ..WaitlistInput::default() };
    match s.app.join_waitlist(w.me.as_ref(), doctor, input).await {
        Ok(_) => Redirect::to("/notifications").into_response(),
        Err(e) => w.problem(&e),
    }
}

pub async fn leave_waitlist(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if !w.csrf_ok() {
        return w.problem(&AppError::Forbidden("your form expired; reload the page and try again"));
    }
    let Ok(entry) = id.parse() else { return w.problem(&AppError::NotFound("waitlist entry")) };
    match s.app.leave_waitlist(w.me.as_ref(), entry).await {
        Ok(()) => Redirect::to("/notifications").into_response(),
        Err(e) => w.problem(&e),
    }
}
