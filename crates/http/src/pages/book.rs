//! The booking page a slot's deep link opens: the slot in the clinic's time
//! zone (named), sign-in when needed, one button to book; when the slot was
//! just taken, the nearest free ones instead of an error.

use super::{csrf_ok, csrf_token, esc, page, session};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use jiff::{SignedDuration, Timestamp};
use medislot_app::{AppError, BookRequest, SlotView};
use medislot_domain::{AppointmentId, Mode, SlotId};
use medislot_store::{ClinicRecord, DoctorRecord};
use std::collections::HashMap;

/// "Thursday 26 November 2026, 09:30 (Europe/Paris)".
fn local(t: Timestamp, c: &ClinicRecord) -> String {
    let tz = c.time_zone.tz();
    format!("{} ({})", t.to_zoned(tz).strftime("%A %-d %B %Y, %H:%M"), c.time_zone.as_str())
}

fn mode_text(m: Mode) -> &'static str {
    match m {
        Mode::InPerson => "in person",
        Mode::Online => "online (video)",
    }
}

/// The slot behind a link, if it still exists and is free.
async fn lookup(s: &AppState, raw: &str) -> Result<(DoctorRecord, ClinicRecord, Option<SlotView>), Response> {
    let gone = || {
        page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "<h1>This booking link is not valid</h1><p>It may be mistyped, or the doctor no longer takes bookings.</p>",
        )
    };
    let id = SlotId::parse("slot_id", raw).map_err(|_| gone())?;
    let doctor = s.app.doctor(None, id.doctor).await.map_err(|_| gone())?;
    let clinic = s.app.clinic(doctor.clinic_id).await.map_err(|_| gone())?;
    let list = s
        .app
        .slots(None, doctor.id, Some(id.start), Some(id.start + SignedDuration::from_secs(1)), None)
        .await
        .map_err(|_| gone())?;
    let slot = list.slots.into_iter().find(|v| v.start == id.start);
    Ok((doctor, clinic, slot))
}

fn describe(d: &DoctorRecord, c: &ClinicRecord, start: Timestamp, mode: Mode) -> String {
    format!(
        "<div class=\"slot\"><p><strong>{}</strong> — {}</p><p>{}</p><p>{}, {}</p></div>",
        esc(&d.name),
        esc(&d.specialties.join(", ")),
        esc(&local(start, c)),
        esc(&c.name),
        if mode == Mode::Online { "online (video)".to_string() } else { esc(&c.address) },
    )
}

fn alternatives_html(alts: &[SlotView], c: &ClinicRecord) -> String {
    if alts.is_empty() {
        return "<p>No other free slot soon.</p>".into();
    }
    let items: String = alts
        .iter()
        .map(|a| {
            format!(
                "<li><a href=\"/book/{}\">{}</a> — {}</li>",
                esc(&a.slot_id),
                esc(&local(a.start, c)),
                mode_text(a.mode)
            )
        })
        .collect();
    format!("<ul>{items}</ul>")
}

fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub async fn page_for(s: &AppState, headers: &HeaderMap, raw: &str, error: Option<&str>) -> Response {
    let (d, c, slot) = match lookup(s, raw).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(slot) = slot else {
        let alts = s.app.slots(None, d.id, None, None, None).await.map(|l| l.slots).unwrap_or_default();
        let body = format!(
            "<h1>This slot was just taken — here are the nearest free ones</h1><p>with {}</p>{}",
            esc(&d.name),
            alternatives_html(&alts.into_iter().take(5).collect::<Vec<_>>(), &c)
        );
        return page(StatusCode::CONFLICT, "Slot taken", &body);
    };
    let (csrf, set) = csrf_token(headers);
    let me = session(s, headers).await;
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    let form = match &me {
        Some(actor) if actor.role() == medislot_domain::Role::Patient => format!(
            r#"<form method="post"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="book">
<input type="hidden" name="key" value="{key}">
<label for="reason">Reason for the visit (optional)</label><textarea id="reason" name="reason" rows="2" maxlength="500"></textarea>
<button type="submit">Book this appointment</button></form>"#,
            key = uuid::Uuid::new_v4()
        ),
        Some(_) => "<p>You are signed in with an account that cannot book (not a patient).</p>".into(),
        None => format!(
            r#"<h2>Sign in to book</h2><form method="post"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="login">
<label for="email">E-mail</label><input id="email" name="email" type="email" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>"#
        ),
    };
    let body = format!("<h1>Book an appointment</h1>{error}{}{form}", describe(&d, &c, slot.start, slot.mode));
    with_cookie(
        page(
            if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY },
            "Book an appointment",
            &body,
        ),
        set,
    )
}

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Path(slot_id): Path<String>) -> Response {
    page_for(&s, &headers, &slot_id, None).await
}

pub async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slot_id): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if !csrf_ok(&headers, form.get("csrf").map(String::as_str)) {
        return page_for(&s, &headers, &slot_id, Some("Your form expired. Please try again.")).await;
    }
    match form.get("action").map(String::as_str) {
        Some("login") => {
            let (email, password) =
                (form.get("email").cloned().unwrap_or_default(), form.get("password").cloned().unwrap_or_default());
            match crate::routes::accounts::rate_limited_login(&s, &email, &password).await {
                Ok((_, cookie)) => with_cookie(
                    Redirect::to(&format!("/book/{}", urlencode(&slot_id))).into_response(),
                    HeaderValue::from_str(&cookie).ok(),
                ),
                Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                    page_for(&s, &headers, &slot_id, Some("Too many attempts. Wait a minute and try again.")).await
                }
                Err(_) => page_for(&s, &headers, &slot_id, Some("Wrong e-mail or password.")).await,
            }
        }
        Some("book") => {
            let Some(me) = session(&s, &headers).await else {
                return page_for(&s, &headers, &slot_id, Some("Please sign in first.")).await;
            };
            let req = BookRequest {
                slot_id: slot_id.clone(),
                mode: None,
                reason: form.get("reason").cloned().unwrap_or_default(),
            };
            match s.app.book(Some(&me), req, form.get("key").map(String::as_str)).await {
                Ok(out) => Redirect::to(&format!("/appointments/{}", out.appointment.id)).into_response(),
                // Taken meanwhile: the page says so and lists the nearest free slots.
                Err(AppError::SlotTaken { .. }) => page_for(&s, &headers, &slot_id, None).await,
                Err(AppError::Invalid(e)) => {
                    let msg = e.0.first().map(|f| format!("{}: {}", f.field, f.message)).unwrap_or_default();
                    page_for(&s, &headers, &slot_id, Some(&msg)).await
                }
                Err(e) => page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again",
                    &format!(
                        "<h1>Something went wrong</h1><p>{}</p><p><a href=\"/book/{}\">Try again</a></p>",
                        esc(&e.to_string()),
                        esc(&slot_id)
                    ),
                ),
            }
        }
        _ => page_for(&s, &headers, &slot_id, Some("Unknown action.")).await,
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The confirmation a patient sees after booking.
pub async fn confirmation(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let not_found = || page(StatusCode::NOT_FOUND, "Not found", "<h1>No such appointment</h1>");
    let Some(me) = session(&s, &headers).await else {
        return page(StatusCode::UNAUTHORIZED, "Sign in", "<h1>Please sign in to see your appointment</h1>");
    };
    let Ok(id) = id.parse::<AppointmentId>() else { return not_found() };
    let Ok(a) = s.app.appointment(Some(&me), id).await else { return not_found() };
    let Ok(Some(d)) = s.app.store().doctor(a.doctor_id).await else { return not_found() };
    let Ok(c) = s.app.clinic(d.clinic_id).await else { return not_found() };
    let body = format!(
        "<h1>Your appointment is {}</h1>{}<p>Reference: <code>{}</code></p>",
        esc(a.status.as_str()),
        describe(&d, &c, a.start, a.mode),
        a.id
    );
    page(StatusCode::OK, "Your appointment", &body)
}
