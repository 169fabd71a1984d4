//! What doctors, clinic admins and platform admins do: a doctor's profile
//! (and the wait for verification), the schedule editor and time off, the
//! agenda (day or week) with its actions, clinics and their doctors, and the
//! verification queue.

use super::{error_for, field_errors, local, mode_text, Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use jiff::{civil::Date, SignedDuration};
use maud::{html, Markup};
use medislot_app::{AppError, AppointmentFilter, ClinicInput, DoctorInput, Mark, TimeOffInput, Verification};
use medislot_domain::{
    people::COMMON_SPECIALTIES,
    schedule::{RangeInput, ScheduleInput},
    AppointmentStatus, DoctorId, Membership, Role, VerificationState,
};
use medislot_store::{ClinicRecord, DoctorRecord};
use std::collections::HashMap;

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const ROWS_PER_DAY: usize = 3;

pub(super) fn signed_in(w: &Web, next: &str) -> Option<Response> {
    w.me.is_none().then(|| Redirect::to(&format!("/login?next={next}")).into_response())
}

// ---------------------------------------------------------------- doctor

fn profile_form(w: &Web, clinics: &[ClinicRecord], form: &Form, errors: &HashMap<String, String>) -> Markup {
    let checked = |name: &str, v: &str| form.0.get(name).is_some_and(|x| x.split(',').any(|p| p == v));
    html! {
        h1 { "Your doctor profile" }
        p { "Patients will find you once a platform admin has verified your licence." }
        form method="post" action="/doctor/profile" novalidate {
            (w.csrf_field())
            label for="clinic_id" { "Clinic" }
            select #clinic_id name="clinic_id" {
                @for c in clinics { option value=(c.id) selected[form.get("clinic_id") == Some(&c.id.to_string())] { (c.name) " — " (c.address_line()) } }
            }
            (error_for(errors, "clinic_id"))
            label for="name" { "Name as patients see it" }
            input #name name="name" value=(form.text("name")) placeholder="Dr Jane Doe";
            (error_for(errors, "name"))
            label for="specialty" { "Specialty" }
            input #specialty name="specialty" list="specialties" value=(form.text("specialty"));
            datalist #specialties { @for s in COMMON_SPECIALTIES { option value=(s) {} } }
            (error_for(errors, "specialties"))
            label for="languages" { "Languages (comma-separated codes, e.g. en, fr)" }
            input #languages name="languages" value=(form.text("languages"));
            (error_for(errors, "languages"))
            fieldset {
                legend { "Consultations" }
                label.check { input type="checkbox" name="modes" value="in_person" checked[checked("modes", "in_person") || form.0.is_empty()]; " in person" }
                label.check { input type="checkbox" name="modes" value="online" checked[checked("modes", "online")]; " online (video)" }
            }
            (error_for(errors, "modes"))
            label for="licence_number" { "Licence number" }
            input #licence_number name="licence_number" value=(form.text("licence_number"));
            (error_for(errors, "licence_number"))
            label for="bio" { "About you (optional)" }
            textarea #bio name="bio" rows="3" { (form.text("bio")) }
            (error_for(errors, "bio"))
            button type="submit" { "Send for verification" }
        }
    }
}

/// Form fields that repeat (checkboxes) arrive as several pairs: join them.
fn parse_multi(body: &[u8]) -> Form {
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(body).into_owned() {
        map.entry(k)
            .and_modify(|e| {
                e.push(',');
            })
            .or_default()
            .push_str(&v);
    }
    Form(map)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_lowercase()).filter(|x| !x.is_empty()).collect()
}

/// A doctor's home: the profile form, the wait for verification, or the agenda.
pub async fn doctor_home(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/doctor") {
        return r;
    }
    match s.app.my_doctor_profile(w.me.as_ref()).await {
        Ok(None) => match s.app.clinics().await {
            Ok(clinics) => {
                w.ok("Your doctor profile", profile_form(&w, &clinics, &Form(HashMap::new()), &HashMap::new()))
            }
            Err(e) => w.problem(&e),
        },
        Ok(Some(d)) if d.verification == VerificationState::Verified => Redirect::to("/doctor/agenda").into_response(),
        Ok(Some(d)) if d.membership == Membership::Invited => {
            let clinic = s.app.clinics().await.unwrap_or_default().into_iter().find(|c| c.id == d.clinic_id);
            let body = html! {
                h1 { "An invitation" }
                p.notice role="status" {
                    (clinic.map_or_else(|| "A clinic".to_string(), |c| c.name)) " invited you to join it with the profile “" (d.name) "”."
                }
                form method="post" action={ "/membership/" (d.id) } {
                    (w.csrf_field())
                    button name="decision" value="accept" { "Accept the invitation" } " "
                    button.secondary name="decision" value="decline" { "Decline" }
                }
            };
            w.ok("An invitation", body)
        }
        Ok(Some(d)) => {
            let body = html! {
                h1 { (d.name) }
                @if d.membership == Membership::Requested {
                    p.notice role="status" { "Waiting for verification. Your clinic accepts you first, then a platform admin checks your licence number (" (d.licence_number) "); you can prepare your schedule meanwhile." }
                } @else if d.membership == Membership::Declined {
                    p.notice role="status" { "The clinic declined your request to join it." }
                } @else {
                @match d.verification {
                    VerificationState::Rejected | VerificationState::Suspended => {
                        p.notice role="status" { "Your profile was " (d.verification.as_str()) ": " (d.verification_reason.clone().unwrap_or_default()) }
                    }
                    _ => { p.notice role="status" { "Waiting for verification. A platform admin checks your licence number (" (d.licence_number) "); you can prepare your schedule meanwhile." } }
                }
                }
                p { a href="/doctor/schedule" { "Prepare your schedule" } }
            };
            w.ok("Waiting for verification", body)
        }
        Err(e) => w.problem(&e),
    }
}

/// A clinic admin answers a doctor's request to join, or a doctor a clinic's invitation.
pub async fn decide_membership(
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
    let Ok(doctor) = id.parse::<DoctorId>() else { return w.problem(&AppError::NotFound("doctor")) };
    match s.app.decide_membership(w.me.as_ref(), doctor, &form.text("decision")).await {
        Ok(_) if w.me.as_ref().is_some_and(|m| m.role() == Role::Doctor) => Redirect::to("/doctor").into_response(),
        Ok(_) => Redirect::to("/clinic").into_response(),
        Err(e) => w.problem(&e),
    }
}

pub async fn create_profile(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_multi(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let clinics = match s.app.clinics().await {
        Ok(c) => c,
        Err(e) => return w.problem(&e),
    };
    let again = |errors: HashMap<String, String>| {
        w.render(StatusCode::UNPROCESSABLE_ENTITY, "Your doctor profile", profile_form(&w, &clinics, &form, &errors))
    };
    if !w.csrf_ok() {
        return again(HashMap::from([("name".into(), "Your form expired. Please try again.".into())]));
    }
    let Some(clinic_id) = form.get("clinic_id").and_then(|c| c.parse().ok()) else {
        return again(HashMap::from([("clinic_id".into(), "Pick your clinic.".into())]));
    };
    let input = DoctorInput {
        clinic_id,
        user_id: None,
        name: form.text("name"),
        specialties: split_list(&form.text("specialty")),
        languages: split_list(&form.text("languages")),
        modes: split_list(&form.text("modes")),
        licence_number: form.text("licence_number"),
        bio: form.text("bio"),
    };
    match s.app.create_doctor(w.me.as_ref(), input).await {
        Ok(_) => Redirect::to("/doctor").into_response(),
        Err(AppError::Invalid(e)) => {
            let errors = field_errors(&e.0)
                .into_iter()
                .map(|(k, v)| (k.split('[').next().unwrap_or(&k).to_string(), v))
                .collect();
            again(errors)
        }
        Err(e) => w.problem(&e),
    }
}

/// The doctor whose schedule and agenda the caller runs: their own, or `?doctor=` for clinic admins.
pub(super) async fn managed_doctor(
    s: &AppState,
    w: &Web,
    q: &HashMap<String, String>,
) -> Result<DoctorRecord, AppError> {
    match q.get("doctor").and_then(|d| d.parse::<DoctorId>().ok()) {
        Some(id) => s.app.doctor(w.me.as_ref(), id).await,
        None => s.app.my_doctor_profile(w.me.as_ref()).await?.ok_or(AppError::NotFound("doctor profile")),
    }
}

async fn managed_doctor_and_clinic(
    s: &AppState,
    w: &Web,
    q: &HashMap<String, String>,
) -> Result<(DoctorRecord, ClinicRecord), AppError> {
    let d = managed_doctor(s, w, q).await?;
    let c = s.app.clinic(d.clinic_id).await?;
    Ok((d, c))
}

fn schedule_form(
    w: &Web,
    d: &DoctorRecord,
    c: &ClinicRecord,
    form: Option<&Form>,
    errors: &HashMap<String, String>,
) -> Markup {
    // Existing ranges per weekday, or what was just submitted.
    let mut rows: HashMap<String, (String, String, String, String, String)> = HashMap::new();
    for (day, name) in WEEKDAYS.iter().enumerate() {
        let existing: Vec<_> =
            d.schedule.weekly.iter().filter(|r| format!("{:?}", r.weekday).to_lowercase() == *name).collect();
        for n in 0..ROWS_PER_DAY {
            let key = format!("{day}_{n}");
            let v = match form {
                Some(f) => (
                    f.text(&format!("start_{key}")),
                    f.text(&format!("end_{key}")),
                    f.text(&format!("mode_{key}")),
                    f.text(&format!("slot_{key}")),
                    f.text(&format!("buffer_{key}")),
                ),
                None => existing.get(n).map_or_else(Default::default, |r| {
                    (
                        r.range.start.strftime("%H:%M").to_string(),
                        r.range.end.strftime("%H:%M").to_string(),
                        r.range.mode.as_str().to_string(),
                        r.range.slot_minutes.to_string(),
                        r.range.buffer_minutes.to_string(),
                    )
                }),
            };
            rows.insert(key, v);
        }
    }
    let horizon = form.map_or(d.schedule.horizon_days.to_string(), |f| f.text("horizon_days"));
    let notice = form.map_or(d.schedule.min_notice_minutes.to_string(), |f| f.text("min_notice_minutes"));
    let doctor_q = format!("?doctor={}", d.id);
    html! {
        h1 { "Schedule of " (d.name) }
        p { "Weekly hours in " strong { (c.time_zone.as_str()) } " time. Leave a row empty for no hours. Existing appointments are never moved or cancelled by a change." }
        @if let Some(e) = errors.get("form") { p.error role="alert" { (e) } }
        form method="post" action={ "/doctor/schedule" (doctor_q) } {
            (w.csrf_field())
            @for (day, name) in WEEKDAYS.iter().enumerate() {
                fieldset {
                    legend { (name[..1].to_uppercase()) (name[1..]) }
                    @for n in 0..ROWS_PER_DAY {
                        @let key = format!("{day}_{n}");
                        @let (start, end, mode, slot, buffer) = rows[&key].clone();
                        div.grid {
                            div { label for={ "start_" (key) } { "From" } input id={ "start_" (key) } name={ "start_" (key) } type="time" value=(start); }
                            div { label for={ "end_" (key) } { "Until" } input id={ "end_" (key) } name={ "end_" (key) } type="time" value=(end); }
                            div {
                                label for={ "mode_" (key) } { "Mode" }
                                select id={ "mode_" (key) } name={ "mode_" (key) } {
                                    option value="in_person" selected[mode != "online"] { "in person" }
                                    option value="online" selected[mode == "online"] { "online" }
                                }
                            }
                            div { label for={ "slot_" (key) } { "Slot (min)" } input id={ "slot_" (key) } name={ "slot_" (key) } type="number" min="5" max="480" value=(if slot.is_empty() { "30".to_string() } else { slot }); }
                            div { label for={ "buffer_" (key) } { "Buffer (min)" } input id={ "buffer_" (key) } name={ "buffer_" (key) } type="number" min="0" max="120" value=(if buffer.is_empty() { "0".to_string() } else { buffer }); }
                        }
                        (error_for(errors, &key))
                    }
                }
            }
            div.grid {
                div { label for="horizon_days" { "Bookable up to (days ahead)" } input #horizon_days name="horizon_days" type="number" min="1" max="365" value=(horizon); (error_for(errors, "horizon_days")) }
                div { label for="min_notice_minutes" { "Minimum notice (minutes)" } input #min_notice_minutes name="min_notice_minutes" type="number" min="0" value=(notice); (error_for(errors, "min_notice_minutes")) }
            }
            button type="submit" { "Save schedule" }
        }
    }
}

/// The schedule page again, 422, with what was refused next to its field.
async fn schedule_refused(
    s: &AppState,
    w: &Web,
    d: &DoctorRecord,
    c: &ClinicRecord,
    form: Option<&Form>,
    errors: &HashMap<String, String>,
) -> Response {
    match schedule_and_time_off(s, w, d, c, form, errors).await {
        Ok(body) => w.render(StatusCode::UNPROCESSABLE_ENTITY, "Schedule", body),
        Err(e) => w.problem(&e),
    }
}

/// The schedule form, then the doctor's time off: each upcoming one with a
/// way to remove it, and the form to add one.
async fn schedule_and_time_off(
    s: &AppState,
    w: &Web,
    d: &DoctorRecord,
    c: &ClinicRecord,
    form: Option<&Form>,
    errors: &HashMap<String, String>,
) -> Result<Markup, AppError> {
    let time_off = s.app.time_off(w.me.as_ref(), d.id).await?;
    let doctor_q = format!("?doctor={}", d.id);
    Ok(html! {
        (schedule_form(w, d, c, form, errors))
        p { a href={ "/doctor/visit-types" (doctor_q) } { "Visit types: what patients book you for, how long, and their questions" } }
        p { a href={ "/doctor/video-room" (doctor_q) } { "Video consultations: a room per appointment, or your own" } }
        h2 #time-off { "Time off" }
        @if time_off.is_empty() { p.muted { "None coming up." } }
        ul.plain {
            @for t in &time_off {
                li.card data-time-off=(t.id) {
                    (local(t.interval.start, c)) " – " (local(t.interval.end, c))
                    @if !t.reason.is_empty() { " · " (t.reason) }
                    form.inline method="post" action={ "/doctor/time-off/" (t.id) "/remove" (doctor_q) } {
                        (w.csrf_field())
                        " " button.secondary type="submit" { "Remove" }
                    }
                }
            }
        }
        form method="post" action={ "/doctor/time-off" (doctor_q) } {
            (w.csrf_field())
            div.grid {
                div { label for="off_start" { "From (" (c.time_zone.as_str()) ")" } input #off_start name="start" type="datetime-local"; (error_for(errors, "start")) }
                div { label for="off_end" { "Until" } input #off_end name="end" type="datetime-local"; (error_for(errors, "end")) }
            }
            label for="off_reason" { "Reason (optional, not shown to patients)" }
            input #off_reason name="reason" maxlength="500";
            button.secondary type="submit" { "Add time off" }
        }
    })
}

pub async fn schedule_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/doctor/schedule") {
        return r;
    }
    let (d, c) = match managed_doctor_and_clinic(&s, &w, &q).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    let notice = match q.get("notice").map(String::as_str) {
        Some("time-off-added") => {
            // What the new time off overlaps stays booked: say so, and which.
            let added = q.get("off").and_then(|id| id.parse::<uuid::Uuid>().ok());
            let t = match s.app.time_off(w.me.as_ref(), d.id).await {
                Ok(list) => list.into_iter().find(|t| Some(t.id) == added),
                Err(e) => return w.problem(&e),
            };
            let overlapped = match &t {
                Some(t) => match s.app.occupied(&d, t.interval).await {
                    Ok(list) => list,
                    Err(e) => return w.problem(&e),
                },
                None => vec![],
            };
            html! {
                p.ok role="status" { "Time off added: no new bookings then." }
                @if !overlapped.is_empty() {
                    div.notice role="alert" {
                        p {
                            @if overlapped.len() == 1 { "It overlaps 1 appointment, which stays booked:" }
                            @else { "It overlaps " (overlapped.len()) " appointments, which stay booked:" }
                        }
                        ul { @for a in &overlapped { li { (local(a.start, &c)) " · " (mode_text(a.mode)) " · " (a.status.as_str()) } } }
                        p { "Move or cancel them from " a href={ "/doctor/agenda?doctor=" (d.id) } { "the agenda" } "." }
                    }
                }
            }
        }
        Some("time-off-removed") => {
            html! { p.ok role="status" { "Time off removed: those hours are bookable again." } }
        }
        _ => html! {},
    };
    match schedule_and_time_off(&s, &w, &d, &c, None, &HashMap::new()).await {
        Ok(body) => w.ok("Schedule", html! { (notice) (body) }),
        Err(e) => w.problem(&e),
    }
}

/// The query string of the schedule page for the same doctor (clinic admins name one).
fn schedule_url(q: &HashMap<String, String>, notice: &str) -> String {
    let doctor = q.get("doctor").map(|d| format!("doctor={}&", super::urlencode(d))).unwrap_or_default();
    format!("/doctor/schedule?{doctor}notice={notice}")
}

pub async fn save_schedule(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let (d, c) = match managed_doctor_and_clinic(&s, &w, &q).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    if !w.csrf_ok() {
        let errors = HashMap::from([("form".into(), "Your form expired. Please try again.".into())]);
        return schedule_refused(&s, &w, &d, &c, Some(&form), &errors).await;
    }
    let mut weekly = vec![];
    let mut keys = vec![];
    for (day, name) in WEEKDAYS.iter().enumerate() {
        for n in 0..ROWS_PER_DAY {
            let key = format!("{day}_{n}");
            let (start, end) = (form.text(&format!("start_{key}")), form.text(&format!("end_{key}")));
            if start.is_empty() && end.is_empty() {
                continue;
            }
            weekly.push(RangeInput {
                weekday: Some((*name).into()),
                date: None,
                start,
                end,
                mode: form.get(&format!("mode_{key}")).unwrap_or("in_person").into(),
                slot_minutes: form.text(&format!("slot_{key}")).parse().unwrap_or(0),
                buffer_minutes: form.text(&format!("buffer_{key}")).parse().unwrap_or(0),
            });
            keys.push(key);
        }
    }
    // Dated extra hours are kept as they are (the API edits them).
    let extra = d
        .schedule
        .extra
        .iter()
        .map(|x| RangeInput {
            weekday: None,
            date: Some(x.date.to_string()),
            start: x.range.start.strftime("%H:%M").to_string(),
            end: x.range.end.strftime("%H:%M").to_string(),
            mode: x.range.mode.as_str().into(),
            slot_minutes: x.range.slot_minutes,
            buffer_minutes: x.range.buffer_minutes,
        })
        .collect();
    let input = ScheduleInput {
        weekly,
        extra,
        horizon_days: form.text("horizon_days").parse().ok(),
        min_notice_minutes: form.text("min_notice_minutes").parse().ok(),
    };
    match s.app.put_schedule(w.me.as_ref(), d.id, input).await {
        Ok(d) => match schedule_and_time_off(&s, &w, &d, &c, None, &HashMap::new()).await {
            Ok(body) => w.ok("Schedule", html! { p.ok role="status" { "Schedule saved." } (body) }),
            Err(e) => w.problem(&e),
        },
        Err(AppError::Invalid(e)) => {
            // `weekly[3].end` is the fourth filled row: show it there.
            let mut errors = HashMap::new();
            for f in e.0 {
                let row = f
                    .field
                    .strip_prefix("weekly[")
                    .and_then(|r| r.split(']').next())
                    .and_then(|i| i.parse::<usize>().ok());
                match row.and_then(|i| keys.get(i)) {
                    Some(key) => errors.insert(key.clone(), f.message),
                    None => errors.insert(f.field.clone(), f.message),
                };
            }
            schedule_refused(&s, &w, &d, &c, Some(&form), &errors).await
        }
        Err(e) => w.problem(&e),
    }
}

pub async fn add_time_off(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let (d, c) = match managed_doctor_and_clinic(&s, &w, &q).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    let tz = c.time_zone.tz();
    let at = |field: &str| -> Result<medislot_domain::instant::Instant, String> {
        let raw = form.text(field);
        let dt: jiff::civil::DateTime = raw.parse().map_err(|_| "must be a date and time".to_string())?;
        let t = dt.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(|e| e.to_string())?;
        medislot_domain::instant::check(field, t)
            .map(medislot_domain::instant::Instant)
            .map_err(|e| e.0[0].message.clone())
    };
    let mut errors = HashMap::new();
    if !w.csrf_ok() {
        errors.insert("form".into(), "Your form expired. Please try again.".into());
    }
    let (start, end) = (at("start"), at("end"));
    if let Err(e) = &start {
        errors.insert("start".into(), e.clone());
    }
    if let Err(e) = &end {
        errors.insert("end".into(), e.clone());
    }
    if let (true, Ok(start), Ok(end)) = (errors.is_empty(), start, end) {
        match s.app.add_time_off(w.me.as_ref(), d.id, TimeOffInput { start, end, reason: form.text("reason") }).await {
            // Post, redirect, get: reloading the page never posts again nor hits a POST-only URL.
            Ok(t) => {
                return Redirect::to(&format!("{}&off={}", schedule_url(&q, "time-off-added"), t.id)).into_response()
            }
            Err(AppError::Invalid(e)) => errors.extend(field_errors(&e.0)),
            Err(e) => return w.problem(&e),
        }
    }
    schedule_refused(&s, &w, &d, &c, None, &errors).await
}

/// Removes one time off, then back to the schedule saying so.
pub async fn remove_time_off(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let (d, c) = match managed_doctor_and_clinic(&s, &w, &q).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    if !w.csrf_ok() {
        let errors = HashMap::from([("form".into(), "Your form expired. Please try again.".into())]);
        return schedule_refused(&s, &w, &d, &c, None, &errors).await;
    }
    let Ok(time_off) = id.parse::<uuid::Uuid>() else { return w.problem(&AppError::NotFound("time off")) };
    match s.app.remove_time_off(w.me.as_ref(), d.id, time_off).await {
        Ok(()) => Redirect::to(&schedule_url(&q, "time-off-removed")).into_response(),
        Err(e) => w.problem(&e),
    }
}

// ---------------------------------------------------------------- agenda

/// The agenda: a day or a week of appointments with patient names and actions.
/// A doctor sees theirs; a clinic admin their clinics' (optionally one doctor's).
pub async fn agenda(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/doctor/agenda") {
        return r;
    }
    let me = w.me.clone().expect("signed in");
    let doctor_filter = match me.role() {
        Role::Doctor => match s.app.my_doctor_profile(w.me.as_ref()).await {
            Ok(Some(d)) => Some(d),
            Ok(None) => return Redirect::to("/doctor").into_response(),
            Err(e) => return w.problem(&e),
        },
        _ => match q.get("doctor").and_then(|d| d.parse::<DoctorId>().ok()) {
            Some(id) => match s.app.doctor(w.me.as_ref(), id).await {
                Ok(d) => Some(d),
                Err(e) => return w.problem(&e),
            },
            None => None,
        },
    };
    let week = q.get("view").is_some_and(|v| v == "week");
    // Days are taken in the doctor's clinic zone, or UTC for a multi-clinic view.
    let zone = match &doctor_filter {
        Some(d) => s.app.clinic(d.clinic_id).await.map(|c| c.time_zone.tz()).unwrap_or(jiff::tz::TimeZone::UTC),
        None => jiff::tz::TimeZone::UTC,
    };
    let today = s.app.now().to_zoned(zone.clone()).date();
    let day: Date = q.get("date").and_then(|d| d.parse().ok()).unwrap_or(today);
    let days = if week { 7 } else { 1 };
    let from = day.to_zoned(zone.clone()).map(|z| z.timestamp()).unwrap_or_else(|_| s.app.now());
    let to = day
        .checked_add(jiff::Span::new().days(days))
        .ok()
        .and_then(|d| d.to_zoned(zone.clone()).ok())
        .map(|z| z.timestamp())
        .unwrap_or(from + SignedDuration::from_hours(24 * days));
    let f = AppointmentFilter {
        status: None,
        doctor_id: doctor_filter.as_ref().map(|d| d.id),
        from: Some(from),
        to: Some(to),
        page: 1,
        per_page: 200,
    };
    let items = match s.app.appointments(w.me.as_ref(), f).await {
        Ok((items, _)) => items,
        Err(e) => return w.problem(&e),
    };
    let parties = match s.app.doctors_with_clinics(items.iter().map(|a| a.doctor_id).collect::<Vec<DoctorId>>()).await {
        Ok(p) => p,
        Err(e) => return w.problem(&e),
    };
    let videos = match s.app.video_links(&me, &items, &parties).await {
        Ok(v) => v,
        Err(e) => return w.problem(&e),
    };
    let mut rows = vec![];
    for a in items.into_iter().filter(|a| a.status != AppointmentStatus::Held) {
        let Some((d, c)) = parties.get(&a.doctor_id) else { continue };
        let patient = s.app.store().user_by_id(a.patient_id).await.ok().flatten().map(|u| u.name).unwrap_or_default();
        rows.push((a, patient, d.clone(), c.clone()));
    }
    let now = s.app.now();
    let arrival_window = s.app.config().arrival_window;
    let nav = |d: Date| {
        let mut link = format!("/doctor/agenda?date={d}");
        if week {
            link.push_str("&view=week");
        }
        if let (Some(doc), true) = (&doctor_filter, me.role() != Role::Doctor) {
            link.push_str(&format!("&doctor={}", doc.id));
        }
        link
    };
    let step = jiff::Span::new().days(days);
    let title = match &doctor_filter {
        Some(d) => format!("Agenda of {}", d.name),
        None => "Agenda of your clinics".into(),
    };
    let body = html! {
        h1 { (title) }
        p {
            (if week { format!("Week from {}", day.strftime("%A %-d %B %Y")) } else { day.strftime("%A %-d %B %Y").to_string() })
        }
        nav aria-label="Agenda" {
            @if let Ok(prev) = day.checked_sub(step) { a href=(nav(prev)) { "← Previous" } " · " }
            a href=(nav(today)) { "Today" } " · "
            @if let Ok(next) = day.checked_add(step) { a href=(nav(next)) { "Next →" } } " · "
            @if week { a href=(nav(day).replace("&view=week", "")) { "Day view" } } @else { a href={ (nav(day)) "&view=week" } { "Week view" } }
            @if me.role() == Role::Doctor { " · " a href="/doctor/schedule" { "Edit schedule" } }
        }
        @if rows.is_empty() { p.muted { "No appointments." } }
        @for (a, patient, d, c) in &rows {
            div.card data-appointment=(a.id) {
                p { strong { (local(a.start, c)) } " — " (patient) }
                p { (d.name) " · " (mode_text(a.mode)) " · status " strong { (a.status.as_str()) } @if !a.reason.is_empty() { " · “" (a.reason) "”" } }
                (super::visits::booked(a.visit.as_ref()))
                @if let Some(url) = videos.get(&a.id) {
                    p.video { a href=(url) target="_blank" rel="noopener noreferrer" { "Join the video consultation" } }
                }
                @if a.status == AppointmentStatus::Pending && a.awaiting_clinic {
                    p.notice { "A request: the patient missed appointments here, so the booking waits for you." }
                    form.inline method="post" action={ "/agenda/" (a.id) } {
                        (w.csrf_field())
                        input type="hidden" name="version" value=(a.version);
                        button name="action" value="accept" { "Accept the request" }
                    }
                    form method="post" action={ "/agenda/" (a.id) } {
                        (w.csrf_field())
                        input type="hidden" name="version" value=(a.version);
                        label for={ "decline-" (a.id) } { "Reason to give the patient (optional)" }
                        input id={ "decline-" (a.id) } name="reason" maxlength="500";
                        button.danger name="action" value="decline" { "Decline the request" }
                    }
                }
                @if matches!(a.status, AppointmentStatus::Booked | AppointmentStatus::Arrived) {
                    form.inline method="post" action={ "/agenda/" (a.id) } {
                        (w.csrf_field())
                        input type="hidden" name="version" value=(a.version);
                        @if a.status == AppointmentStatus::Booked && now >= a.start - arrival_window { button.secondary name="action" value="arrived" { "Arrived" } " " }
                        @if a.start <= now {
                            button.secondary name="action" value="fulfilled" { "Fulfilled" } " "
                            @if a.status == AppointmentStatus::Booked { button.secondary name="action" value="noshow" { "No-show" } " " }
                        }
                    }
                    form method="post" action={ "/agenda/" (a.id) } {
                        (w.csrf_field())
                        input type="hidden" name="version" value=(a.version);
                        label for={ "why-" (a.id) } { "Reason to give the patient" }
                        input id={ "why-" (a.id) } name="reason" required maxlength="500";
                        button.danger name="action" value="cancel" { "Cancel appointment" }
                    }
                }
            }
        }
    };
    w.ok("Agenda", body)
}

/// Arrived, fulfilled, no-show, cancel with a reason, accept or decline a
/// request; then back to the agenda.
pub async fn agenda_action(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if !w.csrf_ok() {
        return w.problem(&AppError::Conflict("your form expired; go back and try again"));
    }
    let Ok(id) = id.parse() else { return w.problem(&AppError::NotFound("appointment")) };
    let version = form.get("version").and_then(|v| v.parse().ok());
    let done = match form.get("action") {
        Some("arrived") => s.app.mark(w.me.as_ref(), id, Mark::Arrived, version).await,
        Some("fulfilled") => s.app.mark(w.me.as_ref(), id, Mark::Fulfilled, version).await,
        Some("noshow") => s.app.mark(w.me.as_ref(), id, Mark::Noshow, version).await,
        Some("cancel") if form.get("reason").is_none() => {
            return w.problem(&AppError::Conflict("give the patient a reason for cancelling"));
        }
        Some("cancel") => s.app.cancel(w.me.as_ref(), id, form.get("reason").map(str::to_string), version).await,
        Some("accept") => s.app.answer_request(w.me.as_ref(), id, true, None, version).await,
        Some("decline") => {
            s.app.answer_request(w.me.as_ref(), id, false, form.get("reason").map(str::to_string), version).await
        }
        _ => return w.problem(&AppError::Conflict("unknown action")),
    };
    match done {
        Ok(_) => {
            let back = headers
                .get("referer")
                .and_then(|r| r.to_str().ok())
                .and_then(|r| r.find("/doctor/agenda").map(|i| r[i..].to_string()));
            Redirect::to(&back.unwrap_or_else(|| "/doctor/agenda".into())).into_response()
        }
        Err(e) => w.problem(&e),
    }
}

// ---------------------------------------------------------------- clinics

fn clinic_form(w: &Web, form: &Form, errors: &HashMap<String, String>) -> Markup {
    html! {
        h2 { "Add a clinic" }
        form method="post" action="/clinic" novalidate {
            (w.csrf_field())
            label for="cname" { "Name" } input #cname name="name" value=(form.text("name")); (error_for(errors, "name"))
            label for="address" { "Street address" } input #address name="address" autocomplete="street-address" value=(form.text("address")); (error_for(errors, "address"))
            div.grid {
                div { label for="postal_code" { "Postal code" } input #postal_code name="postal_code" autocomplete="postal-code" value=(form.text("postal_code")); (error_for(errors, "postal_code")) }
                div { label for="city" { "City" } input #city name="city" autocomplete="address-level2" value=(form.text("city")); (error_for(errors, "city")) }
            }
            div.grid {
                div { label for="district" { "State or region" } input #district name="district" autocomplete="address-level1" value=(form.text("district")); (error_for(errors, "district")) }
                div { label for="country" { "Country (two letters, e.g. FR)" } input #country name="country" autocomplete="country" maxlength="2" value=(form.text("country")); (error_for(errors, "country")) }
            }
            label for="phone" { "Phone (international, e.g. +33 1 42 34 56 78)" } input #phone name="phone" type="tel" autocomplete="tel" value=(form.text("phone")); (error_for(errors, "phone"))
            div.grid {
                div { label for="latitude" { "Latitude" } input #latitude name="latitude" inputmode="decimal" value=(form.text("latitude")); (error_for(errors, "latitude")) }
                div { label for="longitude" { "Longitude" } input #longitude name="longitude" inputmode="decimal" value=(form.text("longitude")); (error_for(errors, "longitude")) }
            }
            label for="time_zone" { "Time zone (IANA, e.g. Europe/Paris)" } input #time_zone name="time_zone" value=(form.text("time_zone")); (error_for(errors, "time_zone"))
            label for="policy" { "When another region cannot reach yours" }
            select #policy name="policy" {
                option value="strict" { "strict: refuse remote bookings until it can" }
                option value="available" selected[form.get("policy") == Some("available")] { "available: accept them as pending, confirm later" }
            }
            (super::clinic_rules::cutoff_field(form.get("cancel_cutoff_hours"), errors))
            button type="submit" { "Create clinic" }
        }
    }
}

async fn clinics_page(
    s: &AppState,
    w: &Web,
    form: &Form,
    errors: &HashMap<String, String>,
    status: StatusCode,
) -> Response {
    let clinics = match s.app.my_clinics(w.me.as_ref()).await {
        Ok(c) => c,
        Err(e) => return w.problem(&e),
    };
    let mut sections = vec![];
    for c in &clinics {
        let doctors = s.app.clinic_doctors(w.me.as_ref(), c.id).await.unwrap_or_default();
        sections.push((c, doctors));
    }
    let body = html! {
        h1 { "Your clinics" }
        p { a href="/doctor/agenda" { "Agenda of all your clinics" } }
        @for (c, doctors) in &sections {
            section.card {
                h2 { (c.name) }
                p { (c.address_line()) @if let Some(phone) = &c.phone { " · " (phone) } " · " (c.time_zone.as_str()) " · policy " (c.policy.as_str()) }
                p { (super::clinic_rules::cutoff_text(&c.rules)) " " a href={ "/clinic/" (c.id) "/rules" } { "Change" } }
                p { a href={ "/clinic/" (c.id) "/appointments.csv" } download { "Download its appointments (CSV)" } }
                @if doctors.is_empty() { p.muted { "No doctors yet: doctors pick this clinic when they create their profile." } }
                ul {
                    @for d in doctors {
                        li {
                            strong { (d.name) } " — " (d.specialties.join(", ")) " · " (d.verification.as_str()) " · "
                            @if d.membership == Membership::Requested {
                                "asks to join this clinic (licence " (d.licence_number) ") "
                                form.inline method="post" action={ "/membership/" (d.id) } {
                                    (w.csrf_field())
                                    button.secondary name="decision" value="accept" { "Accept" } " "
                                    button.danger name="decision" value="decline" { "Decline" }
                                }
                            } @else if d.membership == Membership::Invited {
                                "invited, waiting for the doctor's answer"
                            } @else {
                                a href={ "/doctor/agenda?doctor=" (d.id) } { "agenda" } " · "
                                a href={ "/doctor/schedule?doctor=" (d.id) } { "schedule" }
                            }
                        }
                    }
                }
            }
        }
        (clinic_form(w, form, errors))
    };
    w.render(status, "Your clinics", body)
}

pub async fn clinics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/clinic") {
        return r;
    }
    clinics_page(&s, &w, &Form(HashMap::new()), &HashMap::new(), StatusCode::OK).await
}

pub async fn create_clinic(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if !w.csrf_ok() {
        let errors = HashMap::from([("name".into(), "Your form expired. Please try again.".into())]);
        return clinics_page(&s, &w, &form, &errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let mut errors = HashMap::new();
    let mut number = |k: &str| match form.text(k).trim().parse::<f64>() {
        Ok(v) => v,
        Err(_) => {
            errors.insert(k.to_string(), "must be a number".to_string());
            f64::NAN
        }
    };
    let (latitude, longitude) = (number("latitude"), number("longitude"));
    let cutoff = super::clinic_rules::hours(&form, &mut errors);
    if !errors.is_empty() {
        return clinics_page(&s, &w, &form, &errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let input = ClinicInput {
        name: form.text("name"),
        address: form.text("address"),
        city: form.get("city").map(str::to_string),
        district: form.get("district").map(str::to_string),
        postal_code: form.get("postal_code").map(str::to_string),
        country: form.get("country").map(str::to_string),
        phone: form.get("phone").map(str::to_string),
        latitude,
        longitude,
        time_zone: form.text("time_zone"),
        region: None,
        policy: form.get("policy").map(str::to_string),
        cancel_cutoff_hours: cutoff,
    };
    match s.app.create_clinic(w.me.as_ref(), input).await {
        Ok(_) => Redirect::to("/clinic").into_response(),
        Err(AppError::Invalid(e)) => {
            clinics_page(&s, &w, &form, &field_errors(&e.0), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => w.problem(&e),
    }
}

// ---------------------------------------------------------------- admin

async fn queue_page(s: &AppState, w: &Web, notice: Option<Markup>, errors: &HashMap<String, String>) -> Response {
    let queue = match s.app.verification_queue(w.me.as_ref()).await {
        Ok(q) => q,
        Err(e) => return w.problem(&e),
    };
    // A licence number another active profile holds is flagged for the admin.
    let mut shared = HashMap::new();
    for (d, _) in &queue {
        if let Ok(Some(other)) = s.app.licence_holder(&d.licence_number, d.id).await {
            shared.insert(d.id, other);
        }
    }
    let body = html! {
        h1 { "Doctors waiting for verification" }
        @if let Some(n) = notice { (n) }
        @if queue.is_empty() { p.muted { "Nobody is waiting." } }
        @for (d, c) in &queue {
            section.card data-doctor=(d.id) {
                h2 { (d.name) }
                p { (d.specialties.join(", ")) " · " (c.name) " · licence " strong { (d.licence_number) } }
                @if let Some(reason) = &d.verification_reason { p.muted { (reason) } }
                @if let Some(other) = shared.get(&d.id) {
                    p.error role="alert" data-licence-shared=(other.id) {
                        "This licence number is also used by " (other.name) " (" (other.verification.as_str()) ")."
                    }
                }
                form method="post" action={ "/admin/verification/" (d.id) } {
                    (w.csrf_field())
                    label for={ "reason-" (d.id) } { "Reason (needed to reject)" }
                    input id={ "reason-" (d.id) } name="reason" maxlength="500";
                    (error_for(errors, &d.id.to_string()))
                    button name="decision" value="verified" { "Approve" } " "
                    button.danger name="decision" value="rejected" { "Reject" }
                }
            }
        }
    };
    w.ok("Verification queue", body)
}

pub async fn verification_queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/admin/verification") {
        return r;
    }
    let notice = q.get("decided").map(|who| html! { p.ok role="status" { (who) } });
    queue_page(&s, &w, notice, &HashMap::new()).await
}

pub async fn decide(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if !w.csrf_ok() {
        return queue_page(&s, &w, Some(html! { p.error { "Your form expired. Please try again." } }), &HashMap::new())
            .await;
    }
    let Ok(doctor) = id.parse::<DoctorId>() else { return w.problem(&AppError::NotFound("doctor")) };
    let v = Verification { decision: form.text("decision"), reason: form.get("reason").map(str::to_string) };
    match s.app.verify_doctor(w.me.as_ref(), doctor, v).await {
        Ok(d) => {
            let said = format!("{} is now {}.", d.name, d.verification.as_str());
            Redirect::to(&format!("/admin/verification?decided={}", super::urlencode(&said))).into_response()
        }
        Err(AppError::Invalid(e)) => {
            let msg = e.0.first().map(|f| f.message.clone()).unwrap_or_default();
            queue_page(&s, &w, None, &HashMap::from([(doctor.to_string(), format!("Reason: {msg}"))])).await
        }
        Err(e) => w.problem(&e),
    }
}

// ---------------------------------------------------------------- operations

/// Key figures at a glance for clinic and platform admins: the last 24 hours
/// of bookings (their clinics, or everything), this node's booking attempts by
/// outcome and conflict rate, the outbox, and the region links.
pub async fn operations(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/ops") {
        return r;
    }
    let o = match s.app.operations(w.me.as_ref()).await {
        Ok(o) => o,
        Err(e) => return w.problem(&e),
    };
    let a = &o.activity;
    let attempts = o.node_booked + o.node_slot_taken;
    let conflict_rate = if attempts == 0 { 0.0 } else { o.node_slot_taken as f64 / attempts as f64 * 100.0 };
    let outbox_age = a.outbox_oldest.map(|t| s.app.now().duration_since(t).as_secs().max(0));
    let delivery_age = o.deliveries_oldest.map(|t| s.app.now().duration_since(t).as_secs().max(0));
    let body = html! {
        h1 { "Operations" }
        p.muted { (o.scope) " · last 24 hours · figures as of " (s.app.now().strftime("%H:%M:%S UTC").to_string()) }
        h2 { "Appointments" }
        table {
            tbody {
                tr { th scope="row" { "Booked" } td #ops-booked { (a.booked) } }
                tr { th scope="row" { "Rescheduled" } td { (a.rescheduled) } }
                tr { th scope="row" { "Cancelled" } td { (a.cancelled) } }
                tr { th scope="row" { "Holds taken" } td { (a.held) } }
                tr { th scope="row" { "Holds that ran out" } td { (a.holds_expired) } }
                tr { th scope="row" { "Fulfilled" } td { (a.fulfilled) } }
                tr { th scope="row" { "No-shows" } td { (a.noshows) } }
            }
        }
        h2 { "Booking attempts on this node (since it started)" }
        table {
            tbody {
                tr { th scope="row" { "Succeeded" } td { (o.node_booked) } }
                tr { th scope="row" { "Slot already taken (409)" } td { (o.node_slot_taken) } }
                tr { th scope="row" { "Conflict rate" } td #ops-conflicts { (format!("{conflict_rate:.1} %")) @if conflict_rate > 1.0 { " " strong.error { "above 1%" } } } }
                tr { th scope="row" { "Database unavailable (503)" } td { (o.node_unavailable) } }
            }
        }
        h2 { "Queues" }
        table {
            tbody {
                tr { th scope="row" { "Changes not yet fanned out (outbox)" } td { (a.outbox_pending) } }
                tr { th scope="row" { "Oldest of those" } td { @match outbox_age { Some(secs) => { (secs) " s" } None => { "—" } } } }
                tr { th scope="row" { "Messages waiting to be sent (e-mail, webhooks)" } td #ops-deliveries { (o.deliveries_pending) } }
                tr { th scope="row" { "Oldest of those" } td { @match delivery_age { Some(secs) => { (secs) " s" } None => { "—" } } } }
            }
        }
        h2 { "Regions" }
        p { "This region: " strong { (s.app.config().region) } ". No peer regions are configured: every booking is local." }
        p.muted { "Prometheus metrics for dashboards and alerts: " a href="/metrics" { "/metrics" } "." }
    };
    w.ok("Operations", body)
}
