//! What patients do besides searching (pages::search): a doctor's week,
//! their appointments, rescheduling and cancelling.

use super::search::{languages_text, specialties_text};
use super::{book, local, mode_text, urlencode, when, Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use jiff::{SignedDuration, Timestamp};
use maud::{html, Markup};
use medislot_app::{AppError, AppointmentFilter};
use medislot_domain::{AppointmentStatus, DoctorId};
use std::collections::{BTreeMap, HashMap};

/// A doctor's week of free slots, day by day in the clinic's time zone.
pub async fn doctor_week(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    let Ok(id) = id.parse::<DoctorId>() else { return w.problem(&AppError::NotFound("doctor")) };
    let week: i64 = q.get("week").and_then(|v| v.parse().ok()).unwrap_or(0).clamp(0, 12);
    let d = match s.app.doctor(w.me.as_ref(), id).await {
        Ok(d) => d,
        Err(e) => return w.problem(&e),
    };
    let c = match s.app.clinic(d.clinic_id).await {
        Ok(c) => c,
        Err(e) => return w.problem(&e),
    };
    // The visit type chosen (an unknown one: the default, as in the API).
    let chosen = super::visits::of(&d, q.get("visit_type").map(String::as_str))
        .filter(|v| v.bookable_by != medislot_domain::BookableBy::Staff)
        .or_else(|| medislot_domain::default_visit(&d.visit_types));
    let code = chosen.map(|v| v.code.as_str());
    let days = match week_of(&s, &w, &d, &c, week, None, code).await {
        Ok(days) => days,
        Err(e) => return w.problem(&e),
    };
    // A doctor homed in another region: slots come from this region's copy.
    let stale = match s.app.replica_as_of(&c.region).await {
        Ok(Some(as_of)) if s.app.now().duration_since(as_of) > jiff::SignedDuration::from_secs(5) => Some(format!(
            "This clinic is in region {}; availability shown is as of {} and may change.",
            c.region,
            as_of.strftime("%H:%M:%S UTC")
        )),
        _ => None,
    };
    let body = html! {
        h1 { (d.name) }
        p { (specialties_text(&d.specialties)) " · " (c.name) ", " (c.address_line()) }
        p.muted { "Speaks " (languages_text(&d.languages)) ". Times are " strong { (c.time_zone.as_str()) } " time." }
        p #yourzone.notice hidden data-zone=(c.time_zone.as_str()) {}
        @if !d.bio.is_empty() { p { (d.bio) } }
        @if let Some(note) = &stale { p.notice role="status" { (note) } }
        @if w.patient().is_some() {
            form.inline method="post" action={ "/doctors/" (d.id) "/waitlist" } {
                (w.csrf_field())
                button type="submit" { "Tell me when an earlier slot frees up" }
            }
        }
        (super::visits::picker(&d, chosen, |v| format!("/doctors/{}?visit_type={}", d.id, v.code)))
        @let kind = code.map(|c| format!("&visit_type={c}")).unwrap_or_default();
        nav aria-label="Weeks" {
            @if week > 0 { a href={ "/doctors/" (d.id) "?week=" (week - 1) (kind) } { "← Previous week" } " " }
            a href={ "/doctors/" (d.id) "?week=" (week + 1) (kind) } { "Next week →" }
        }
        @if let Some(v) = chosen { p.muted { (v.name) ": " (v.duration_minutes) " minutes." } }
        (week_grid(&days, &c, "Book", |slot| format!("/book/{}", slot.slot_id)))
    };
    w.ok(&d.name, body)
}

/// A week of a doctor's free slots (`week` weeks from this one), day by day in
/// the clinic's zone; of one mode only when `mode` is given.
async fn week_of(
    s: &AppState,
    w: &Web,
    d: &medislot_store::DoctorRecord,
    c: &medislot_store::ClinicRecord,
    week: i64,
    mode: Option<medislot_domain::Mode>,
    visit: Option<&str>,
) -> Result<BTreeMap<jiff::civil::Date, Vec<medislot_app::SlotView>>, AppError> {
    let tz = c.time_zone.tz();
    let today = s.app.now().to_zoned(tz.clone()).date();
    let first = today.checked_add(jiff::Span::new().days(7 * week)).unwrap_or(today);
    let start = first.to_zoned(tz.clone()).map(|z| z.timestamp()).unwrap_or_else(|_| s.app.now());
    let end = first
        .checked_add(jiff::Span::new().days(7))
        .ok()
        .and_then(|d| d.to_zoned(tz.clone()).ok())
        .map(|z| z.timestamp())
        .unwrap_or(start + SignedDuration::from_hours(24 * 7));
    let slots = s
        .app
        .slots(w.me.as_ref(), d.id, Some(start.max(s.app.now())), Some(end), mode.map(|m| m.as_str()), visit)
        .await?
        .slots;
    let mut days: BTreeMap<jiff::civil::Date, Vec<_>> = BTreeMap::new();
    for i in 0..7 {
        if let Ok(day) = first.checked_add(jiff::Span::new().days(i)) {
            days.insert(day, vec![]);
        }
    }
    for slot in slots {
        days.entry(slot.start.to_zoned(tz.clone()).date()).or_default().push(slot);
    }
    Ok(days)
}

/// A week of slots as a grid of days, each time a link (`verb` names what it does).
fn week_grid(
    days: &BTreeMap<jiff::civil::Date, Vec<medislot_app::SlotView>>,
    c: &medislot_store::ClinicRecord,
    verb: &str,
    href: impl Fn(&medislot_app::SlotView) -> String,
) -> Markup {
    let tz = c.time_zone.tz();
    html! {
        div.days {
            @for (day, list) in days {
                section aria-label=(day.strftime("%A %-d %B").to_string()) {
                    h2 { (day.strftime("%a %-d %b").to_string()) }
                    @if list.is_empty() { p.muted { "—" } }
                    ul {
                        @for slot in list {
                            li {
                                a.slotlink href=(href(slot)) data-utc=(slot.start.to_string()) aria-label={ (verb) " " (local(slot.start, c)) ", " (mode_text(slot.mode)) } {
                                    (slot.start.to_zoned(tz.clone()).strftime("%H:%M").to_string())
                                }
                                @if slot.mode == medislot_domain::Mode::Online { " online" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Past and cancelled appointments shown per page of "My appointments".
const PAST_PER_PAGE: usize = 20;

/// The signed-in patient's appointments: the next one first and prominent,
/// the rest of the upcoming ones, then past and cancelled ones apart, newest
/// first and paged (`?page=N`).
pub async fn mine(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to("/login?next=/appointments").into_response();
    }
    let f = AppointmentFilter {
        status: None,
        doctor_id: None,
        from: Some(s.app.now() - SignedDuration::from_hours(24 * 30)),
        to: None,
        page: 1,
        per_page: 100,
    };
    let items = match s.app.appointments(w.me.as_ref(), f).await {
        Ok((items, _)) => items,
        Err(e) => return w.problem(&e),
    };
    let parties = match s.app.doctors_with_clinics(items.iter().map(|a| a.doctor_id).collect::<Vec<DoctorId>>()).await {
        Ok(p) => p,
        Err(e) => return w.problem(&e),
    };
    let now = s.app.now();
    let (mut upcoming, mut past): (Vec<_>, Vec<_>) = items
        .into_iter()
        .filter_map(|a| parties.get(&a.doctor_id).map(|(d, c)| (a, d.clone(), c.clone())))
        .partition(|(a, _, _)| a.status.is_active() && a.end > now);
    upcoming.sort_by_key(|(a, _, _)| a.start);
    past.sort_by_key(|(a, _, _)| std::cmp::Reverse(a.start));
    let pages = past.len().div_ceil(PAST_PER_PAGE).max(1);
    let page = q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages);
    let shown: Vec<_> = past.iter().skip((page - 1) * PAST_PER_PAGE).take(PAST_PER_PAGE).collect();
    let body = html! {
        h1 { "My appointments" }
        @if upcoming.is_empty() { p { "Nothing coming up. " a href="/" { "Find a doctor" } } }
        @if let Some((a, d, c)) = upcoming.first() {
            section.next aria-labelledby="next-heading" {
                h2 #next-heading { "Your next appointment" }
                (appointment_card(a, d, c, now, true))
            }
        }
        @if upcoming.len() > 1 {
            section aria-labelledby="upcoming-heading" {
                h2 #upcoming-heading { "Also coming up" }
                @for (a, d, c) in upcoming.iter().skip(1) { (appointment_card(a, d, c, now, false)) }
            }
        }
        @if !past.is_empty() {
            section.past aria-labelledby="past-heading" {
                h2 #past-heading { "Past and cancelled" }
                @for (a, d, c) in &shown { (appointment_card(a, d, c, now, false)) }
                @if pages > 1 {
                    nav.pages aria-label="Past and cancelled appointments, by page" {
                        @if page > 1 { a href={ "/appointments?page=" (page - 1) } rel="prev" { "Newer" } " " }
                        span { "Page " (page) " of " (pages) }
                        @if page < pages { " " a href={ "/appointments?page=" (page + 1) } rel="next" { "Older" } }
                    }
                }
            }
        }
    };
    w.ok("My appointments", body)
}

/// One appointment of "My appointments"; the next one also says where to go.
fn appointment_card(
    a: &medislot_store::AppointmentRecord,
    d: &medislot_store::DoctorRecord,
    c: &medislot_store::ClinicRecord,
    now: Timestamp,
    next: bool,
) -> Markup {
    html! {
        div.card data-appointment=(a.id) {
            p { strong { (d.name) } " — " (when(a.start, c)) }
            p {
                "Status: "
                @if a.status == AppointmentStatus::Pending && a.awaiting_clinic {
                    strong.status { "requested" } " (waiting for the clinic to confirm)"
                } @else {
                    strong.status { (a.status.as_str()) }
                }
                " · " (mode_text(a.mode)) " · " (c.name)
                @if let Some(v) = &a.visit { " · " (v.name) }
            }
            @if next {
                @match a.mode {
                    medislot_domain::Mode::InPerson => p.where { "At " (c.name) ", " (c.address_line()) },
                    medislot_domain::Mode::Online => p.where {
                        "Online: join from " a href={ "/appointments/" (a.id) } { "the appointment's page" } " at its time."
                    },
                }
            }
            @if a.status == AppointmentStatus::Booked && a.start > now && super::rules_of(a, d, c).changes_closed(a.start, now) {
                p.muted { "Too close to its time to change online: " (super::clinic_rules::call_the_clinic(c)) }
            } @else if a.status == AppointmentStatus::Booked && a.start > now {
                p.actions {
                    a href={ "/appointments/" (a.id) "/reschedule" } { "Reschedule" }
                    " · "
                    a.danger href={ "/appointments/" (a.id) "/cancel" } { "Cancel…" }
                }
            }
            @if a.status == AppointmentStatus::Held {
                a href={ "/holds/" (a.id) } { "Confirm this held slot" }
            }
        }
    }
}

/// Rescheduling: a week picker of the appointment's own mode (a move keeps the
/// visit's mode, so times of the other one are not offered), then "move from …
/// to …?" for the time picked.
async fn reschedule_body(
    s: &AppState,
    w: &Web,
    id: &str,
    q: &HashMap<String, String>,
    error: Option<&str>,
) -> Result<Markup, AppError> {
    let (a, d, c) = book::load(s, w, id).await?;
    if let Some(picked) = q.get("slot_id").filter(|_| error.is_none()) {
        let to = medislot_domain::SlotId::parse("slot_id", picked).map_err(AppError::from)?;
        let end = to.start + a.end.duration_since(a.start);
        return Ok(html! {
            h1 { "Move your appointment?" }
            p { "From: " (when(a.start, &c)) }
            p { "To: " strong { (when(to.start, &c)) } }
            (book::slot_card(&d, &c, to.start, end, a.mode, a.visit.as_ref().map(|v| v.name.as_str())))
            form method="post" {
                (w.csrf_field())
                input type="hidden" name="version" value=(a.version);
                input type="hidden" name="slot_id" value=(picked);
                button type="submit" { "Yes, move it" }
                " "
                a href="/appointments" { "No, keep the current time" }
            }
        });
    }
    let week: i64 = q.get("week").and_then(|v| v.parse().ok()).unwrap_or(0).clamp(0, 12);
    let days = week_of(s, w, &d, &c, week, Some(a.mode), a.visit.as_ref().map(|v| v.code.as_str())).await?;
    let base = format!("/appointments/{}/reschedule", a.id);
    Ok(html! {
        h1 { "Reschedule" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { "Now: " (when(a.start, &c)) " with " (d.name) " · " (mode_text(a.mode)) }
        h2 { "Pick a new time" }
        p.muted { "Showing " (mode_text(a.mode)) " times: a move keeps the kind of visit." }
        nav aria-label="Weeks" {
            @if week > 0 { a href={ (base) "?week=" (week - 1) } { "← Previous week" } " " }
            a href={ (base) "?week=" (week + 1) } { "Next week →" }
        }
        (week_grid(&days, &c, "Move to", |slot| format!("{base}?slot_id={}", slot.slot_id)))
    })
}

pub async fn reschedule_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to(&format!("/login?next=/appointments/{}/reschedule", urlencode(&id))).into_response();
    }
    match reschedule_body(&s, &w, &id, &q, None).await {
        Ok(body) => w.ok("Reschedule", body),
        // A mangled link: the picker again, saying so.
        Err(AppError::Invalid(_)) => {
            match reschedule_body(
                &s,
                &w,
                &id,
                &HashMap::new(),
                Some("That link is not one of the times; pick one below."),
            )
            .await
            {
                Ok(body) => w.render(StatusCode::UNPROCESSABLE_ENTITY, "Reschedule", body),
                Err(e) => w.problem(&e),
            }
        }
        Err(e) => w.problem(&e),
    }
}

/// Moves the appointment (atomically; If-Match with the version the page showed).
pub async fn reschedule(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let again = |msg: &'static str| {
        let (s, w, id) = (&s, &w, &id);
        async move {
            match reschedule_body(s, w, id, &HashMap::new(), Some(msg)).await {
                Ok(body) => w.render(StatusCode::CONFLICT, "Reschedule", body),
                Err(e) => w.problem(&e),
            }
        }
    };
    if !w.csrf_ok() {
        return again("Your form expired. Please try again.").await;
    }
    let Ok(aid) = id.parse() else { return w.problem(&AppError::NotFound("appointment")) };
    let version = form.get("version").and_then(|v| v.parse().ok());
    match s.app.reschedule(w.me.as_ref(), aid, &form.text("slot_id"), version).await {
        Ok(a) => Redirect::to(&format!("/appointments/{}?moved=1", a.id)).into_response(),
        Err(AppError::SlotTaken { .. }) => again("That time was just taken — pick another one.").await,
        Err(AppError::PreconditionFailed { .. }) => {
            again("This appointment changed meanwhile; here is how it is now.").await
        }
        Err(AppError::Invalid(_)) => again("Pick one of the times below.").await,
        Err(e) => w.problem(&e),
    }
}

/// Asks once before cancelling: what is cancelled, an optional reason, and a way back.
pub async fn cancel_page(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to(&format!("/login?next=/appointments/{}/cancel", urlencode(&id))).into_response();
    }
    let (a, d, c) = match book::load(&s, &w, &id).await {
        Ok(x) => x,
        Err(e) => return w.problem(&e),
    };
    let now = s.app.now();
    if a.status != AppointmentStatus::Booked
        || a.start <= now
        || super::rules_of(&a, &d, &c).changes_closed(a.start, now)
    {
        return Redirect::to(&format!("/appointments/{}", a.id)).into_response();
    }
    let body = html! {
        h1 { "Cancel this appointment?" }
        p { (d.name) " — " (when(a.start, &c)) " · " (mode_text(a.mode)) " · " (c.name) }
        form method="post" action={ "/appointments/" (a.id) "/cancel" } {
            (w.csrf_field())
            input type="hidden" name="version" value=(a.version);
            label for="reason" { "Reason for cancelling (optional)" }
            input #reason name="reason" maxlength="500";
            button.danger type="submit" { "Yes, cancel it" }
            " "
            a href="/appointments" { "No, keep it" }
        }
    };
    w.ok("Cancel this appointment?", body)
}

pub async fn cancel(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if !w.csrf_ok() {
        return w.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not cancelled",
            html! { h1 { "Not cancelled" } p.error { "Your form expired. " a href="/appointments" { "Try again" } } },
        );
    }
    let Ok(aid) = id.parse() else { return w.problem(&AppError::NotFound("appointment")) };
    let version = form.get("version").and_then(|v| v.parse().ok());
    match s.app.cancel(w.me.as_ref(), aid, form.get("reason").map(str::to_string), version).await {
        Ok(a) => Redirect::to(&format!("/appointments/{}", a.id)).into_response(),
        Err(e) => w.problem(&e),
    }
}
