//! FHIR reads and searches: the public directory (Practitioner,
//! PractitionerRole, Location, Schedule), availability (Slot), and the
//! caller's own appointments (Appointment).

use super::{bundle, invalid, resources as r, Base, Fhir, FhirError, FhirResult, Params};
use crate::{extract::Caller, problem::ApiError, AppState};
use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use jiff::{SignedDuration, Timestamp};
use medislot_app::{Actor, AppointmentFilter};
use medislot_domain::{AppointmentId, ClinicId, DoctorId, Interval, Mode, UserId};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};
use serde_json::Value;
use std::collections::HashMap;

fn not_found(kind: &str) -> FhirError {
    FhirError(ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no such {kind}")))
}

fn id_of<T: std::str::FromStr>(kind: &str, raw: &str) -> FhirResult<T> {
    raw.parse().map_err(|_| not_found(kind))
}

/// `_id=a,b` keeps those ids; absent keeps all.
fn wanted(p: &Params, id: &str) -> bool {
    p.one("_id").is_none_or(|ids| ids.split(',').any(|i| i == id))
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// `specialty=cardiology` or `specialty=system|cardiology`.
fn has_specialty(p: &Params, d: &DoctorRecord) -> bool {
    p.one("specialty").is_none_or(|s| {
        let code = s.rsplit('|').next().unwrap_or(s);
        d.specialties.iter().any(|x| x.eq_ignore_ascii_case(code))
    })
}

/// A reference parameter (`Practitioner/x` or `x`) as an id of that type.
pub(super) fn reference<T: std::str::FromStr>(p: &Params, param: &str, kind: &str) -> FhirResult<Option<T>> {
    p.one(param)
        .map(|v| {
            r::reference_id(kind, v)
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| invalid(param, format!("must reference a {kind} (`{kind}/id`)")))
        })
        .transpose()
}

pub async fn practitioners(State(s): State<AppState>, base: Base, p: Params) -> FhirResult {
    p.only(&["_id", "name", "specialty"])?;
    let (count, offset) = p.paging()?;
    // The directory has one row per doctor.
    let items = s
        .app
        .directory()
        .await?
        .iter()
        .filter(|(d, _)| wanted(&p, &d.id.to_string()) && has_specialty(&p, d))
        .filter(|(d, _)| p.one("name").is_none_or(|n| contains_ci(&d.name, n)))
        .map(|(d, _)| r::practitioner(d))
        .collect();
    Ok(Fhir::ok(bundle(&base, "Practitioner", &p, items, count, offset)))
}

pub async fn practitioner(State(s): State<AppState>, Path(id): Path<String>) -> FhirResult {
    let d = s.app.doctor(None, id_of::<DoctorId>("Practitioner", &id)?).await.map_err(|_| not_found("Practitioner"))?;
    Ok(Fhir { version: Some(d.version.to_string()), ..Fhir::ok(r::practitioner(&d)) })
}

pub async fn practitioner_roles(State(s): State<AppState>, base: Base, p: Params) -> FhirResult {
    p.only(&["_id", "practitioner", "location", "specialty"])?;
    let (count, offset) = p.paging()?;
    let practitioner: Option<DoctorId> = reference(&p, "practitioner", "Practitioner")?;
    let location: Option<ClinicId> = reference(&p, "location", "Location")?;
    let items = s
        .app
        .directory()
        .await?
        .iter()
        .filter(|(d, c)| {
            wanted(&p, &d.id.to_string())
                && has_specialty(&p, d)
                && practitioner.is_none_or(|x| x == d.id)
                && location.is_none_or(|x| x == c.id)
        })
        .map(|(d, c)| r::practitioner_role(d, c))
        .collect();
    Ok(Fhir::ok(bundle(&base, "PractitionerRole", &p, items, count, offset)))
}

pub async fn practitioner_role(State(s): State<AppState>, Path(id): Path<String>) -> FhirResult {
    let d = s.app.doctor(None, id_of("PractitionerRole", &id)?).await.map_err(|_| not_found("PractitionerRole"))?;
    let c = s.app.clinic(d.clinic_id).await?;
    Ok(Fhir { version: Some(d.version.to_string()), ..Fhir::ok(r::practitioner_role(&d, &c)) })
}

pub async fn locations(State(s): State<AppState>, base: Base, p: Params) -> FhirResult {
    p.only(&["_id", "name"])?;
    let (count, offset) = p.paging()?;
    let mut seen = std::collections::HashSet::new();
    let items = s
        .app
        .directory()
        .await?
        .iter()
        .filter(|(_, c)| seen.insert(c.id) && wanted(&p, &c.id.to_string()))
        .filter(|(_, c)| p.one("name").is_none_or(|n| contains_ci(&c.name, n)))
        .map(|(_, c)| r::location(c))
        .collect();
    Ok(Fhir::ok(bundle(&base, "Location", &p, items, count, offset)))
}

pub async fn location(State(s): State<AppState>, Path(id): Path<String>) -> FhirResult {
    let c = s.app.clinic(id_of("Location", &id)?).await.map_err(|_| not_found("Location"))?;
    Ok(Fhir::ok(r::location(&c)))
}

/// Every Schedule: one per verified doctor and mode they offer.
fn all_schedules(dir: &[(DoctorRecord, ClinicRecord)]) -> impl Iterator<Item = (&DoctorRecord, &ClinicRecord, Mode)> {
    dir.iter().flat_map(|(d, c)| d.modes.iter().map(move |m| (d, c, *m)))
}

pub async fn schedules(State(s): State<AppState>, base: Base, p: Params) -> FhirResult {
    p.only(&["_id", "actor", "specialty", "service-type"])?;
    let (count, offset) = p.paging()?;
    let actor = p.one("actor");
    let (by_doctor, by_clinic) = match actor {
        None => (None, None),
        Some(a) if a.starts_with("Location/") => (None, reference::<ClinicId>(&p, "actor", "Location")?),
        Some(_) => (reference::<DoctorId>(&p, "actor", "Practitioner")?, None),
    };
    let service = p.one("service-type").map(|t| t.rsplit('|').next().unwrap_or(t).to_string());
    let now = s.app.now();
    let dir = s.app.directory().await?;
    let items = all_schedules(&dir)
        .filter(|(d, c, m)| {
            wanted(&p, &r::schedule_id(d.id, *m))
                && has_specialty(&p, d)
                && by_doctor.is_none_or(|x| x == d.id)
                && by_clinic.is_none_or(|x| x == c.id)
                && service.as_deref().is_none_or(|t| r::schedule_id(d.id, *m).ends_with(&format!(".{t}")))
        })
        .map(|(d, c, m)| r::schedule(d, c, m, now))
        .collect();
    Ok(Fhir::ok(bundle(&base, "Schedule", &p, items, count, offset)))
}

/// The doctor (verified) and clinic behind a Schedule id, if it exists.
async fn schedule_parts(s: &AppState, id: &str) -> FhirResult<(DoctorRecord, ClinicRecord, Mode)> {
    let (doctor, mode) = r::parse_schedule_id(id).ok_or_else(|| not_found("Schedule"))?;
    let d = s.app.doctor(None, doctor).await.map_err(|_| not_found("Schedule"))?;
    if !d.modes.contains(&mode) {
        return Err(not_found("Schedule"));
    }
    let c = s.app.clinic(d.clinic_id).await?;
    Ok((d, c, mode))
}

pub async fn schedule(State(s): State<AppState>, Path(id): Path<String>) -> FhirResult {
    let (d, c, mode) = schedule_parts(&s, &id).await?;
    let now = s.app.now();
    Ok(Fhir { version: Some(r::schedule_version(&d, now)), ..Fhir::ok(r::schedule(&d, &c, mode, now)) })
}

/// A date search parameter with FHIR prefixes (`ge`, `gt`, `le`, `lt`, `eq`;
/// none means `eq`) narrowing a `[from, to)` window. A date is the whole
/// period it names (UTC): a day (`2026-12-01`), a month (`2026-12`) or a year.
pub fn narrow(window: &mut (Option<Timestamp>, Option<Timestamp>), param: &str, raw: &str) -> FhirResult<()> {
    let (prefix, value) = match raw.get(..2) {
        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &raw[2..]),
        _ => ("eq", raw),
    };
    let bad = || invalid(param, "must be a date or instant with an optional ge, gt, le, lt or eq prefix");
    let in_range = |t| medislot_domain::instant::check(param, t).map_err(|e| invalid(param, e.0[0].message.clone()));
    let (start, end) = if value.contains('T') {
        let t = medislot_domain::instant::parse(param, value).map_err(|e| invalid(param, e.0[0].message.clone()))?;
        (t, t + SignedDuration::from_secs(1))
    } else {
        let (first, period) = partial_date(value).ok_or_else(bad)?;
        let zoned =
            |d: jiff::civil::Date| d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|_| bad());
        let next = first.checked_add(period).map_err(|_| bad())?;
        (in_range(zoned(first)?)?, in_range(zoned(next)?)?)
    };
    let (lo, hi) = match prefix {
        "ge" => (Some(start), None),
        "gt" => (Some(end), None),
        "lt" => (None, Some(start)),
        "le" => (None, Some(end)),
        _ => (Some(start), Some(end)),
    };
    if let Some(lo) = lo {
        window.0 = Some(window.0.map_or(lo, |w| w.max(lo)));
    }
    if let Some(hi) = hi {
        window.1 = Some(window.1.map_or(hi, |w| w.min(hi)));
    }
    Ok(())
}

/// A FHIR date of any precision: its first day and the length of the period.
fn partial_date(value: &str) -> Option<(jiff::civil::Date, jiff::Span)> {
    let parts: Vec<&str> = value.split('-').collect();
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<i16>().ok()).flatten()
    };
    match parts[..] {
        [y] => Some((jiff::civil::Date::new(number(y, 4)?, 1, 1).ok()?, jiff::Span::new().years(1))),
        [y, m] => Some((
            jiff::civil::Date::new(number(y, 4)?, i8::try_from(number(m, 2)?).ok()?, 1).ok()?,
            jiff::Span::new().months(1),
        )),
        [_, _, _] => Some((value.parse().ok()?, jiff::Span::new().days(1))),
        _ => None,
    }
}

/// Slots of one Schedule: free ones computed from the schedule, busy and
/// busy-tentative ones from the appointments occupying it (no patient data).
pub async fn slots(State(s): State<AppState>, base: Base, p: Params) -> FhirResult {
    p.only(&["schedule", "start", "status"])?;
    let (count, offset) = p.paging()?;
    let schedule = p.one("schedule").ok_or_else(|| invalid("schedule", "is required: Slot?schedule=Schedule/{id}"))?;
    let id = r::reference_id("Schedule", schedule).ok_or_else(|| invalid("schedule", "must reference a Schedule"))?;
    let (d, _, mode) = schedule_parts(&s, id).await?;
    let statuses: Vec<&str> = p.all("status").flat_map(|v| v.split(',')).collect();
    if let Some(bad) = statuses.iter().find(|x| !matches!(**x, "free" | "busy" | "busy-tentative")) {
        return Err(invalid("status", format!("`{bad}` is not one of free, busy, busy-tentative")));
    }
    let mut window = (None, None);
    for v in p.all("start") {
        narrow(&mut window, "start", v)?;
    }
    let now = s.app.now();
    let from = window.0.unwrap_or(now);
    let to = window.1.unwrap_or(from + SignedDuration::from_hours(24 * 7));
    if to <= from {
        return Err(invalid("start", "the window is empty"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(24 * 92) {
        return Err(invalid("start", "the window may span at most 92 days"));
    }
    let want = |st: &str| statuses.is_empty() || statuses.contains(&st);
    let mut items: Vec<(Timestamp, Value)> = vec![];
    if want("free") {
        // Those of each visit type patients may book online (their service
        // type says which), or the schedule's own for a doctor without any.
        let visits: Vec<Option<&str>> = if d.visit_types.is_empty() {
            vec![None]
        } else {
            d.visit_types
                .iter()
                .filter(|v| v.bookable_by != medislot_domain::BookableBy::Staff)
                .map(|v| Some(v.code.as_str()))
                .collect()
        };
        for visit in visits {
            let list = s.app.slots(None, d.id, Some(from), Some(to), Some(mode.as_str()), visit).await?;
            items.extend(list.slots.iter().map(|v| (v.start, r::free_slot(v, &d))));
        }
    }
    if want("busy") || want("busy-tentative") {
        let occupied = s.app.occupied(&d, Interval { start: from, end: to }).await?;
        items.extend(
            occupied
                .iter()
                .filter(|a| a.mode == mode && a.start >= from && want(r::slot_status(a.status)))
                .map(|a| (a.start, r::busy_slot(a, &d))),
        );
    }
    items.sort_by_key(|(t, _)| *t);
    Ok(Fhir::ok(bundle(&base, "Slot", &p, items.into_iter().map(|(_, v)| v).collect(), count, offset)))
}

pub async fn slot(State(s): State<AppState>, Path(id): Path<String>) -> FhirResult {
    let fhir = r::parse_slot_id(&id).ok_or_else(|| not_found("Slot"))?;
    let d = s.app.doctor(None, fhir.doctor).await.map_err(|_| not_found("Slot"))?;
    let sid = fhir.resolve(&d).ok_or_else(|| not_found("Slot"))?;
    let at = Interval { start: sid.start, end: sid.start + SignedDuration::from_secs(1) };
    // A visit type's slot is free for that visit; the schedule's own, for the default.
    let visit =
        sid.visit.as_deref().or_else(|| medislot_domain::default_visit(&d.visit_types).map(|v| v.code.as_str()));
    let free = s.app.slots(None, d.id, Some(at.start), Some(at.end), None, visit).await?;
    if let Some(v) = free.slots.iter().find(|v| v.start == sid.start && v.visit_type == sid.visit) {
        return Ok(Fhir::ok(r::free_slot(v, &d)));
    }
    // Busy now, used by an appointment that took place, or one an appointment
    // was cancelled from that is not free now (past, or off the schedule).
    match s.app.occupant(&d, sid.start).await? {
        Some(a) => {
            let mut v = r::busy_slot(&a, &d);
            if v["status"] == "free" {
                v["status"] = "busy-unavailable".into();
            }
            Ok(Fhir::ok(v))
        }
        None => Err(not_found("Slot")),
    }
}

/// Who these appointments' references name: doctors with their clinics, and
/// patients' names; and the video links the caller may be shown.
pub struct Parties {
    doctors: HashMap<DoctorId, (DoctorRecord, ClinicRecord)>,
    patients: HashMap<UserId, String>,
    videos: HashMap<AppointmentId, String>,
}

async fn parties(s: &AppState, actor: Option<&Actor>, items: &[AppointmentRecord]) -> FhirResult<Parties> {
    let doctors = s.app.doctors_with_clinics(items.iter().map(|a| a.doctor_id).collect::<Vec<DoctorId>>()).await?;
    if items.iter().any(|a| !doctors.contains_key(&a.doctor_id)) {
        return Err(not_found("Practitioner"));
    }
    let mut patients = HashMap::new();
    for a in items {
        if let std::collections::hash_map::Entry::Vacant(e) = patients.entry(a.patient_id) {
            if let Some(u) = s.app.store().user_by_id(a.patient_id).await.map_err(medislot_app::AppError::from)? {
                e.insert(u.name);
            }
        }
    }
    let videos = match actor {
        Some(actor) => s.app.video_links(actor, items, &doctors).await?,
        None => HashMap::new(),
    };
    Ok(Parties { doctors, patients, videos })
}

pub fn appointment_resource(a: &AppointmentRecord, parties: &Parties) -> Value {
    let (d, c) = &parties.doctors[&a.doctor_id];
    let video = parties.videos.get(&a.id).map(String::as_str);
    r::appointment(a, d, c, parties.patients.get(&a.patient_id).map(String::as_str), video)
}

pub async fn appointment_response(
    s: &AppState,
    actor: Option<&Actor>,
    status: StatusCode,
    a: &AppointmentRecord,
) -> FhirResult {
    let p = parties(s, actor, std::slice::from_ref(a)).await?;
    Ok(Fhir { status, body: appointment_resource(a, &p), version: Some(a.version.to_string()) })
}

fn caller(c: Result<Caller, ApiError>) -> FhirResult<Option<Actor>> {
    Ok(c?.0)
}

/// The caller's appointments (a patient's own, a doctor's agenda…), as the JSON API scopes them.
pub async fn appointments(State(s): State<AppState>, c: Result<Caller, ApiError>, base: Base, p: Params) -> FhirResult {
    let actor = caller(c)?;
    p.only(&["_id", "patient", "practitioner", "status", "date"])?;
    let (count, offset) = p.paging()?;
    let doctor_id: Option<DoctorId> = reference(&p, "practitioner", "Practitioner")?;
    let patient: Option<String> = p
        .one("patient")
        .map(|v| {
            r::reference_id("Patient", v)
                .map(str::to_string)
                .ok_or_else(|| invalid("patient", "must reference a Patient"))
        })
        .transpose()?;
    let statuses: Vec<&str> = p.all("status").flat_map(|v| v.split(',')).collect();
    let mut window = (None, None);
    for v in p.all("date") {
        narrow(&mut window, "date", v)?;
    }
    let mut all = vec![];
    for page in 1.. {
        let f = AppointmentFilter { status: None, doctor_id, from: window.0, to: window.1, page, per_page: 200 };
        let (items, total) = s.app.appointments(actor.as_ref(), f).await?;
        let done = items.is_empty() || (u64::from(page) * 200) >= total || page >= 50;
        all.extend(items);
        if done {
            break;
        }
    }
    all.retain(|a| {
        wanted(&p, &a.id.to_string())
            && patient.as_deref().is_none_or(|x| x == a.patient_id.to_string())
            && (statuses.is_empty() || statuses.contains(&r::appointment_status(a.status)))
    });
    let parties = parties(&s, actor.as_ref(), &all).await?;
    let items = all.iter().map(|a| appointment_resource(a, &parties)).collect();
    Ok(Fhir::ok(bundle(&base, "Appointment", &p, items, count, offset)))
}

pub async fn appointment(State(s): State<AppState>, c: Result<Caller, ApiError>, Path(id): Path<String>) -> FhirResult {
    let actor = caller(c)?;
    let id: AppointmentId = id_of("Appointment", &id)?;
    let a = s.app.appointment(actor.as_ref(), id).await?;
    appointment_response(&s, actor.as_ref(), StatusCode::OK, &a).await
}
