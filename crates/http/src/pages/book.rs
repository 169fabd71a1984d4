//! Booking: the slot page (where search results and deep links lead), the
//! hold with its countdown, confirmation; when the slot was just taken, the
//! nearest free ones instead of an error.

use super::{local, mode_text, urlencode, when, Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use jiff::SignedDuration;
use maud::{html, Markup};
use medislot_app::{AppError, BookRequest, SlotView};
use medislot_domain::{AppointmentId, AppointmentStatus, Mode, SlotId};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};
use std::collections::HashMap;

/// The doctor, clinic and time of a slot, as a card.
pub fn slot_card(
    d: &DoctorRecord,
    c: &ClinicRecord,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    mode: Mode,
    visit: Option<&str>,
) -> Markup {
    html! {
        div.card {
            p { strong { (d.name) } " — " (super::search::specialties_text(&d.specialties)) }
            @if let Some(name) = visit { p.visit { (name) } }
            p { (when(start, c)) " · " span.length { (end.duration_since(start).as_mins()) " minutes" } }
            p { @if mode == Mode::Online { "Online (video)" } @else { (c.name) ", " (c.address_line()) } }
        }
    }
}

/// Free slots offered instead of one just taken.
pub fn alternatives(alts: &[SlotView], c: &ClinicRecord) -> Markup {
    html! {
        @if alts.is_empty() {
            p { "No other free slot soon with this doctor." }
        } @else {
            ul { @for a in alts { li { a href={ "/book/" (a.slot_id) } { (local(a.start, c)) } " — " (mode_text(a.mode)) } } }
        }
    }
}

/// The slot behind a link: doctor, clinic, and the slot if it is still free.
async fn lookup(s: &AppState, raw: &str) -> Option<(DoctorRecord, ClinicRecord, SlotId, Option<SlotView>)> {
    let id = SlotId::parse("slot_id", raw).ok()?;
    let doctor = s.app.doctor(None, id.doctor).await.ok()?;
    let clinic = s.app.clinic(doctor.clinic_id).await.ok()?;
    let list = s
        .app
        .slots(
            None,
            doctor.id,
            Some(id.start),
            Some(id.start + SignedDuration::from_secs(1)),
            None,
            id.visit.as_deref(),
        )
        .await
        .ok()?;
    let slot = list.slots.into_iter().find(|v| v.start == id.start);
    Some((doctor, clinic, id, slot))
}

async fn taken_page(s: &AppState, w: &Web, d: &DoctorRecord, c: &ClinicRecord) -> Response {
    let alts: Vec<SlotView> = s
        .app
        .slots(None, d.id, None, None, None, None)
        .await
        .map(|l| l.slots)
        .unwrap_or_default()
        .into_iter()
        .take(5)
        .collect();
    w.render(
        StatusCode::CONFLICT,
        "Slot taken",
        html! {
            h1 { "This slot was just taken — here are the nearest free ones" }
            p { "with " (d.name) " at " (c.name) }
            (alternatives(&alts, c))
            p { a href={ "/doctors/" (d.id) } { "See the whole week" } }
        },
    )
}

pub async fn page_for(s: &AppState, w: &Web, raw: &str, error: Option<&str>) -> Response {
    let Some((d, c, _, slot)) = lookup(s, raw).await else {
        return w.render(
            StatusCode::NOT_FOUND,
            "Link not valid",
            html! { h1 { "This booking link is not valid" } p { "It may be mistyped, or the doctor no longer takes bookings." } p { a href="/" { "Find another appointment" } } },
        );
    };
    let Some(slot) = slot else { return taken_page(s, w, &d, &c).await };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let body = html! {
        h1 { "Book an appointment" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        (slot_card(&d, &c, slot.start, slot.end, slot.mode, super::visits::of(&d, slot.visit_type.as_deref()).map(|v| v.name.as_str())))
        @match &w.me {
            Some(_) if w.patient().is_some() => {
                form method="post" {
                    (w.csrf_field())
                    input type="hidden" name="action" value="hold";
                    p.muted { "We keep this slot for you for " (s.app.config().hold_ttl.as_mins()) " minutes while you confirm." }
                    button type="submit" { "Hold this slot" }
                }
            }
            Some(_) => { p.notice { "You are signed in with an account that cannot book (not a patient)." } }
            None => {
                h2 { "Sign in to book" }
                form method="post" {
                    (w.csrf_field())
                    input type="hidden" name="action" value="login";
                    label for="email" { "E-mail" }
                    input #email name="email" type="email" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
                p { "No account yet? " a href={ "/register?next=" (urlencode(&format!("/book/{raw}"))) } { "Create one" } }
            }
        }
    };
    w.render(status, "Book an appointment", body)
}

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Path(slot_id): Path<String>) -> Response {
    let w = Web::new(&s, &headers).await;
    page_for(&s, &w, &slot_id, None).await
}

/// Sign in (and come back here), or hold the slot and go confirm it.
pub async fn submit(
    State(s): State<AppState>,
    crate::throttle::ClientAddr(client): crate::throttle::ClientAddr,
    headers: HeaderMap,
    Path(slot_id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if !w.csrf_ok() {
        return page_for(&s, &w, &slot_id, Some("Your form expired. Please try again.")).await;
    }
    match form.get("action") {
        Some("login") => {
            let back = format!("/book/{}", urlencode(&slot_id));
            match super::auth::sign_in(&s, client, &form.text("email"), &form.text("password"), &back).await {
                Ok(resp) => resp,
                Err((_, msg)) => page_for(&s, &w, &slot_id, Some(msg)).await,
            }
        }
        Some("hold") => {
            let Some(me) = w.patient() else { return page_for(&s, &w, &slot_id, Some("Please sign in first.")).await };
            if let Ok(Some(home)) = s.app.home_of_slot(&slot_id).await {
                if home != s.app.config().region {
                    return book_remote(&s, &w, me, &slot_id).await;
                }
            }
            match s.app.hold(Some(me), &slot_id, None).await {
                Ok(a) => Redirect::to(&format!("/holds/{}", a.id)).into_response(),
                Err(AppError::SlotTaken { .. }) => page_for(&s, &w, &slot_id, None).await,
                Err(AppError::Invalid(e)) => {
                    let msg = e.0.first().map(|f| f.message.clone()).unwrap_or_default();
                    page_for(&s, &w, &slot_id, Some(&msg)).await
                }
                Err(e @ AppError::TooManyHolds(_)) => page_for(&s, &w, &slot_id, Some(&e.to_string())).await,
                Err(e) => w.problem(&e),
            }
        }
        _ => page_for(&s, &w, &slot_id, Some("Unknown action.")).await,
    }
}

/// A doctor homed in another region: no hold, the booking goes to their home
/// region at once (booked, or pending under the `available` policy). A second
/// click books nothing twice: the key is the patient's and the slot's.
async fn book_remote(s: &AppState, w: &Web, me: &medislot_app::Actor, slot_id: &str) -> Response {
    let key = format!("web-{}-{slot_id}", me.id());
    let req =
        medislot_app::BookRequest { slot_id: slot_id.to_string(), mode: None, reason: String::new(), intake: None };
    match s.app.book(Some(me), req, Some(&key)).await {
        Ok(out) => Redirect::to(&format!("/appointments/{}", out.appointment.id)).into_response(),
        Err(AppError::SlotTaken { .. }) => page_for(s, w, slot_id, None).await,
        Err(AppError::Invalid(e)) => {
            let msg = e.0.first().map(|f| f.message.clone()).unwrap_or_default();
            page_for(s, w, slot_id, Some(&msg)).await
        }
        Err(e) => w.problem(&e),
    }
}

/// An appointment of the signed-in person, with its doctor and clinic.
pub async fn load(
    s: &AppState,
    w: &Web,
    raw: &str,
) -> Result<(AppointmentRecord, DoctorRecord, ClinicRecord), AppError> {
    let id: AppointmentId = raw.parse().map_err(|_| AppError::NotFound("appointment"))?;
    let a = s.app.appointment(w.me.as_ref(), id).await?;
    let d = s.app.store().doctor(a.doctor_id).await?.ok_or(AppError::NotFound("doctor"))?;
    let c = s.app.clinic(d.clinic_id).await?;
    Ok((a, d, c))
}

/// The hold to confirm, with the visit type's questions; when it comes back
/// refused, what was answered and each wrong answer's error by its field.
fn hold_body(
    w: &Web,
    a: &AppointmentRecord,
    d: &DoctorRecord,
    c: &ClinicRecord,
    error: Option<&str>,
    back: Option<(&Form, &HashMap<String, String>)>,
) -> Markup {
    let expires = a.hold_expires_at.map(|t| t.as_millisecond()).unwrap_or_default();
    let visit = super::visits::of(d, a.visit.as_ref().map(|v| v.code.as_str()));
    let none = HashMap::new();
    let (form, errors) = back.map_or((None, &none), |(f, e)| (Some(f), e));
    html! {
        h1 { "Confirm your appointment" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        (slot_card(d, c, a.start, a.end, a.mode, a.visit.as_ref().map(|v| v.name.as_str())))
        p.muted.rules { (super::clinic_rules::cutoff_text(&super::rules_of(a, d, c))) }
        @if let Some(rule) = super::clinic_rules::noshow_text(&c.rules) { p.muted.rules { (rule) } }
        p.notice #hold-notice data-again={ "/appointments/" (a.id) } {
            "This slot is held for you for " span #countdown data-expires=(expires) { "a few minutes" } "."
        }
        form #confirm-form method="post" {
            (w.csrf_field())
            input type="hidden" name="key" value=(uuid::Uuid::new_v4());
            (super::visits::questions(visit, form, errors))
            label for="reason" { "Reason for the visit (optional)" }
            textarea #reason name="reason" rows="2" maxlength="500" { (form.map(|f| f.text("reason")).unwrap_or_default()) }
            button type="submit" { "Confirm booking" }
        }
    }
}

pub async fn hold_page(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to(&format!("/login?next=/holds/{}", urlencode(&id))).into_response();
    }
    match load(&s, &w, &id).await {
        Ok((a, d, c)) if a.status == AppointmentStatus::Held => {
            w.ok("Confirm your appointment", hold_body(&w, &a, &d, &c, None, None))
        }
        Ok((a, _, _)) => Redirect::to(&format!("/appointments/{}", a.id)).into_response(),
        Err(e) => w.problem(&e),
    }
}

/// Confirms the hold: books its slot (the store turns the caller's own hold into the booking).
pub async fn confirm(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let (a, d, c) = match load(&s, &w, &id).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    if !w.csrf_ok() {
        return w.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Confirm",
            hold_body(&w, &a, &d, &c, Some("Your form expired. Please try again."), None),
        );
    }
    let req = BookRequest {
        slot_id: SlotId::of_visit(a.doctor_id, a.start, a.visit.as_ref().map(|v| v.code.as_str())).encode(),
        mode: Some(a.mode.as_str().into()),
        reason: form.text("reason"),
        intake: super::visits::answers(super::visits::of(&d, a.visit.as_ref().map(|v| v.code.as_str())), &form),
    };
    match s.app.book(w.me.as_ref(), req, form.get("key")).await {
        Ok(out) => Redirect::to(&format!("/appointments/{}", out.appointment.id)).into_response(),
        Err(AppError::SlotTaken { .. }) => taken_page(&s, &w, &d, &c).await,
        Err(AppError::Invalid(e)) => {
            let errors = super::field_errors(&e.0);
            let msg = if e.0.iter().all(|f| f.field.starts_with("intake.")) {
                "Please check your answers below.".to_string()
            } else {
                e.0.first().map(|f| format!("{}: {}", f.field, f.message)).unwrap_or_default()
            };
            let body = hold_body(&w, &a, &d, &c, Some(&msg), Some((&form, &errors)));
            w.render(StatusCode::UNPROCESSABLE_ENTITY, "Confirm", body)
        }
        Err(e) => w.problem(&e),
    }
}

/// The appointment as its patient sees it after booking or changing it.
pub async fn confirmation(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to(&format!("/login?next=/appointments/{}", urlencode(&id))).into_response();
    }
    let (a, d, c) = match load(&s, &w, &id).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    let expired =
        a.status == medislot_domain::AppointmentStatus::Cancelled && a.cancel_reason.as_deref() == Some("hold expired");
    if expired {
        return hold_ran_out(&s, &w, &a, &d, &c).await;
    }
    if a.status == medislot_domain::AppointmentStatus::Held {
        return Redirect::to(&format!("/holds/{}", a.id)).into_response();
    }
    let moved = q.contains_key("moved") && a.status == medislot_domain::AppointmentStatus::Booked;
    let video = match s.app.video_link_for(w.me.as_ref(), &a, &d).await {
        Ok(v) => v,
        Err(e) => return w.problem(&e),
    };
    let body = html! {
        @let request = a.status == medislot_domain::AppointmentStatus::Pending && a.awaiting_clinic;
        h1 {
            @if moved { "Your appointment is moved" }
            @else if request { "Your request is sent to the clinic" }
            @else { "Your appointment is " (a.status.as_str()) }
        }
        (slot_card(&d, &c, a.start, a.end, a.mode, None))
        (super::visits::booked(a.visit.as_ref()))
        @if a.status == medislot_domain::AppointmentStatus::Booked && a.start > s.app.now() {
            @if super::rules_of(&a, &d, &c).changes_closed(a.start, s.app.now()) {
                p.muted { "It is too close to its time to cancel or move it online: " (super::clinic_rules::call_the_clinic(&c)) }
            } @else {
                p.muted { (super::clinic_rules::cutoff_text(&super::rules_of(&a, &d, &c))) }
            }
        }
        @if let Some(url) = &video {
            p.video {
                a href=(url) target="_blank" rel="noopener noreferrer" { "Join the video consultation" }
                " — the link is yours alone; it opens in your browser at the time of the appointment."
            }
        }
        @if let Some(r) = &a.cancel_reason { p { "Reason: " (r) } }
        @if request {
            p.notice role="status" {
                "After missed appointments, " (c.name) " confirms your bookings itself. The time is kept for you \
                 until it answers; you will be told either way."
            }
        } @else if a.status == medislot_domain::AppointmentStatus::Pending {
            p.notice role="status" {
                "The clinic's region cannot be reached right now. We have kept your request and will confirm \
                 your slot as soon as it answers; you will be notified either way."
            }
        }
        @if a.status == medislot_domain::AppointmentStatus::Conflict {
            p.notice role="status" { "This slot was taken before the clinic's region could confirm it: it is not booked." }
        }
        p.muted { "Reference: " code { (a.id) } }
        @if a.status.is_active() {
            p { a href={ "/appointments/" (a.id) "/calendar.ics" } download { "Add to calendar (.ics)" } }
        }
        p { a href="/appointments" { "All my appointments" } }
    };
    w.ok("Your appointment", body)
}

/// A hold that ran out before it was confirmed: the time again if it is still
/// free, and the doctor's nearest free times.
async fn hold_ran_out(s: &AppState, w: &Web, a: &AppointmentRecord, d: &DoctorRecord, c: &ClinicRecord) -> Response {
    let free: Vec<SlotView> = s
        .app
        .slots(None, d.id, None, None, Some(a.mode.as_str()), a.visit.as_ref().map(|v| v.code.as_str()))
        .await
        .map(|l| l.slots)
        .unwrap_or_default();
    let same = free.iter().find(|v| v.start == a.start);
    let others: Vec<SlotView> = free.iter().filter(|v| v.start != a.start).take(5).cloned().collect();
    // Not free: too close to its time now to be booked online, or taken.
    let notice = d.schedule.min_notice_minutes;
    let too_late = a.start < s.app.now() + SignedDuration::from_mins(notice);
    let body = html! {
        h1 { "Your hold on this time ran out" }
        (slot_card(d, c, a.start, a.end, a.mode, a.visit.as_ref().map(|v| v.name.as_str())))
        @if let Some(v) = same {
            p { "It is still free: " a href={ "/book/" (v.slot_id) } { "hold it again" } "." }
        } @else if too_late {
            p { "It is too close to its time now to be booked online (" (notice) " minutes' notice are needed)." }
        } @else {
            p { "Someone else has booked it since." }
        }
        h2 { "The nearest free times with " (d.name) }
        (alternatives(&others, c))
        p { a href={ "/doctors/" (d.id) } { "See the whole week" } }
    };
    w.ok("Your hold ran out", body)
}

/// The appointment as an iCalendar file for the visitor's calendar app.
pub async fn calendar_file(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let w = Web::new(&s, &headers).await;
    let id = id.trim_end_matches(".ics").to_string();
    match load(&s, &w, &id).await {
        Ok((a, d, c)) => {
            let video = match s.app.video_link_for(w.me.as_ref(), &a, &d).await {
                Ok(v) => v,
                Err(e) => return w.problem(&e),
            };
            let ics = medislot_app::calendar::appointment_ics(&a, &d, &c, video.as_deref(), s.app.now());
            (
                [
                    (axum::http::header::CONTENT_TYPE, "text/calendar; charset=utf-8".to_string()),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"appointment-{}.ics\"", a.id),
                    ),
                ],
                ics,
            )
                .into_response()
        }
        Err(e) => w.problem(&e),
    }
}
