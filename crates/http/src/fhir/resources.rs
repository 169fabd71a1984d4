//! The domain, as FHIR R4 resources. Ids: Practitioner and PractitionerRole
//! are the doctor's id, Location the clinic's, Schedule `{doctor}.{mode}`
//! (one per doctor and mode), Slot `{doctor}.{start in Unix seconds}` (it
//! names the same slot as the JSON API's `slot_id`), Appointment its own.

use jiff::Timestamp;
use medislot_app::SlotView;
use medislot_domain::{schedule::Weekday, AppointmentStatus, DoctorId, Mode, SlotId};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};
use serde_json::{json, Value};

const SPECIALTY_SYSTEM: &str = "https://medislot.dev/fhir/specialty";
const LICENCE_SYSTEM: &str = "https://medislot.dev/fhir/licence-number";
const MODE_SYSTEM: &str = "https://medislot.dev/fhir/mode";
const PATIENT_SYSTEM: &str = "https://medislot.dev/fhir/patient";
const CLINIC_SYSTEM: &str = "https://medislot.dev/fhir/clinic";
const TIMEZONE_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/timezone";

fn mode_code(m: Mode) -> &'static str {
    match m {
        Mode::InPerson => "in-person",
        Mode::Online => "online",
    }
}

fn mode_display(m: Mode) -> &'static str {
    match m {
        Mode::InPerson => "In person",
        Mode::Online => "Online (video)",
    }
}

fn day_code(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

pub fn schedule_id(doctor: DoctorId, mode: Mode) -> String {
    format!("{doctor}.{}", mode_code(mode))
}

pub fn parse_schedule_id(id: &str) -> Option<(DoctorId, Mode)> {
    let (doctor, mode) = id.split_once('.')?;
    let mode = match mode {
        "in-person" => Mode::InPerson,
        "online" => Mode::Online,
        _ => return None,
    };
    Some((doctor.parse().ok()?, mode))
}

/// A Slot's id: the doctor and the start, and for a visit type's slot the
/// tag of its code (a FHIR id has no room for the code itself).
pub fn slot_fhir_id(doctor: DoctorId, start: Timestamp, visit: Option<&str>) -> String {
    match visit {
        Some(code) => format!("{doctor}.{}.{}", start.as_second(), medislot_domain::visit_type::tag(code)),
        None => format!("{doctor}.{}", start.as_second()),
    }
}

/// A FHIR Slot id, read: its visit type is known by its tag until the doctor's
/// visit types name it ([`FhirSlot::resolve`]).
pub struct FhirSlot {
    pub doctor: DoctorId,
    pub start: Timestamp,
    tag: Option<String>,
}

impl FhirSlot {
    /// The JSON API's slot id, the tag resolved among the doctor's visit
    /// types; `None` when the doctor has no visit type of that tag (any more).
    pub fn resolve(&self, d: &DoctorRecord) -> Option<SlotId> {
        let code = match &self.tag {
            None => None,
            Some(t) => {
                Some(d.visit_types.iter().find(|v| &medislot_domain::visit_type::tag(&v.code) == t)?.code.as_str())
            }
        };
        Some(SlotId::of_visit(self.doctor, self.start, code))
    }
}

pub fn parse_slot_id(id: &str) -> Option<FhirSlot> {
    let mut parts = id.split('.');
    let doctor = parts.next()?.parse().ok()?;
    let start = Timestamp::from_second(parts.next()?.parse().ok()?).ok()?;
    medislot_domain::instant::check("id", start).ok()?;
    let tag = parts.next().map(str::to_string);
    if parts.next().is_some() || tag.as_ref().is_some_and(|t| t.len() != 8 || !t.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(FhirSlot { doctor, start, tag })
}

/// HL7 v2's appointment reason codes (table 0276), FHIR R4's
/// `appointmentType` binding.
const APPOINTMENT_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";

/// Visit types as codes of the doctor's own: their code and name.
const VISIT_TYPE_SYSTEM: &str = "https://medislot.dev/fhir/visit-type";

/// A visit type as `serviceType`: its code and name.
pub fn visit_service(code: &str, name: &str) -> Value {
    json!({"coding": [{"system": VISIT_TYPE_SYSTEM, "code": code, "display": name}], "text": name})
}

/// A visit type as `appointmentType`: a follow-up for patients already seen,
/// a routine visit otherwise; its name as the text.
pub fn appointment_type(code: &str, name: &str, d: Option<&DoctorRecord>) -> Value {
    let follow_up = d
        .and_then(|d| d.visit_type(code))
        .is_some_and(|v| v.bookable_by == medislot_domain::BookableBy::ExistingPatients);
    let (c, display) = if follow_up {
        ("FOLLOWUP", "A follow up visit from a previous appointment")
    } else {
        ("ROUTINE", "Routine appointment - default if not valued")
    };
    json!({"coding": [{"system": APPOINTMENT_TYPE_SYSTEM, "code": c, "display": display}], "text": name})
}

/// The id part of a reference (`Schedule/abc` or `abc`), if it is of that type.
pub fn reference_id<'a>(kind: &str, reference: &'a str) -> Option<&'a str> {
    match reference.split_once('/') {
        Some((k, id)) if k == kind => Some(id),
        Some(_) => None,
        None => Some(reference),
    }
}

fn instant(t: Timestamp) -> String {
    // FHIR instants: seconds precision with a zone (UTC here).
    t.round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_else(|_| t.to_string())
}

fn service_type(m: Mode) -> Value {
    json!({"coding": [{"system": MODE_SYSTEM, "code": mode_code(m), "display": mode_display(m)}], "text": mode_display(m)})
}

/// HL7's service-type code system (R4), which SMART Scheduling Links' slot
/// finders read a Schedule's service from.
const SERVICE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/service-type";

/// The HL7 service type of a specialty: the code system's own entry for the
/// common ones, "Medical Specialists" for any other a doctor names.
fn hl7_service_type(specialty: &str) -> (&'static str, &'static str) {
    match specialty {
        "general-practice" => ("124", "General Practice/GP (doctor)"),
        "cardiology" => ("165", "Cardiology"),
        "dermatology" => ("168", "Dermatology"),
        "endocrinology" => ("169", "Endocrinology"),
        "neurology" => ("177", "Neurology"),
        "gynecology" => ("186", "Obstetrics & Gynaecology"),
        "pediatrics" => ("200", "Paediatric Medicine"),
        "ophthalmology" => ("217", "Ophthalmology"),
        "orthopedics" => ("218", "Orthopaedic surgery"),
        "ent" => ("219", "Otolaryngology - Head & Neck Surgery"),
        "psychiatry" => ("141", "Psychiatry (requires referral)"),
        "physiotherapy" => ("65", "Physiotherapy"),
        _ => ("383", "Medical Specialists"),
    }
}

/// A Schedule's services: how it is held (in person, online) first, as the
/// facade's searches and `$book` read it, then each specialty's HL7 service type.
fn schedule_services(d: &DoctorRecord, mode: Mode) -> Vec<Value> {
    let mut codes: Vec<(&str, &str)> = d.specialties.iter().map(|s| hl7_service_type(s)).collect();
    codes.dedup();
    std::iter::once(service_type(mode))
        .chain(codes.into_iter().map(|(code, display)| {
            json!({"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": code, "display": display}], "text": display})
        }))
        .collect()
}

fn specialty(s: &str) -> Value {
    json!({"coding": [{"system": SPECIALTY_SYSTEM, "code": s}], "text": s})
}

pub fn practitioner(d: &DoctorRecord) -> Value {
    let mut p = json!({
        "resourceType": "Practitioner",
        "id": d.id.to_string(),
        "meta": {"versionId": d.version.to_string(), "lastUpdated": instant(d.updated_at)},
        "active": true,
        "name": [{"text": d.name}],
        "identifier": [{"system": LICENCE_SYSTEM, "value": d.licence_number}],
        "communication": d.languages.iter().map(|l| json!({"coding": [{"system": "urn:ietf:bcp:47", "code": l}], "text": l})).collect::<Vec<_>>(),
    });
    if d.languages.is_empty() {
        p.as_object_mut().map(|o| o.remove("communication"));
    }
    p
}

pub fn practitioner_role(d: &DoctorRecord, c: &ClinicRecord) -> Value {
    let mut available: Vec<Value> = d
        .schedule
        .weekly
        .iter()
        .map(|w| {
            json!({
                "daysOfWeek": [day_code(w.weekday)],
                "availableStartTime": w.range.start.strftime("%H:%M:%S").to_string(),
                "availableEndTime": w.range.end.strftime("%H:%M:%S").to_string(),
            })
        })
        .collect();
    available.dedup();
    json!({
        "resourceType": "PractitionerRole",
        "id": d.id.to_string(),
        "meta": {"versionId": d.version.to_string(), "lastUpdated": instant(d.updated_at)},
        "active": true,
        "practitioner": {"reference": format!("Practitioner/{}", d.id), "display": d.name},
        "location": [{"reference": format!("Location/{}", c.id), "display": c.name}],
        "specialty": d.specialties.iter().map(|s| specialty(s)).collect::<Vec<_>>(),
        "availableTime": available,
        "availabilityExceptions": format!("Times are {} local time.", c.time_zone.as_str()),
    })
}

pub fn location(c: &ClinicRecord) -> Value {
    json!({
        "resourceType": "Location",
        "id": c.id.to_string(),
        "meta": {"lastUpdated": instant(c.created_at)},
        "extension": [{"url": TIMEZONE_EXTENSION, "valueCode": c.time_zone.as_str()}],
        "status": "active",
        "name": c.name,
        "mode": "instance",
        "identifier": [{"system": CLINIC_SYSTEM, "value": c.id.to_string()}],
        "telecom": c.phone.as_ref().map(|p| json!([{"system": "phone", "value": p, "use": "work"}])),
        "address": {
            "use": "work",
            "type": "physical",
            "text": c.address_line(),
            "line": [c.address],
            "city": c.postal.city,
            // Our `district` is the country's first subdivision (state, province, region).
            "state": c.postal.district,
            "postalCode": c.postal.postal_code,
            "country": c.postal.country,
        },
        "position": {"latitude": c.position.lat, "longitude": c.position.lon},
    })
}

/// The UTC day `now` falls in, as its first instant.
fn day_of(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second().div_euclid(86_400) * 86_400).unwrap_or(now)
}

/// A Schedule's version: the doctor's, and the day (its planning horizon moves daily).
pub fn schedule_version(d: &DoctorRecord, now: Timestamp) -> String {
    format!("{}.{}", d.version, now.as_second().div_euclid(86_400))
}

pub fn schedule(d: &DoctorRecord, c: &ClinicRecord, mode: Mode, now: Timestamp) -> Value {
    let today = day_of(now);
    let horizon_end = today + jiff::SignedDuration::from_hours(24 * d.schedule.horizon_days);
    json!({
        "resourceType": "Schedule",
        "id": schedule_id(d.id, mode),
        "meta": {"versionId": schedule_version(d, now), "lastUpdated": instant(d.updated_at.max(today))},
        "active": true,
        "serviceType": schedule_services(d, mode),
        "specialty": d.specialties.iter().map(|s| specialty(s)).collect::<Vec<_>>(),
        // The Location first: SMART Scheduling Links' slot finders read the first actor as the place.
        "actor": [
            {"reference": format!("Location/{}", c.id), "display": c.name},
            {"reference": format!("Practitioner/{}", d.id), "display": d.name},
        ],
        "planningHorizon": {"start": instant(today), "end": instant(horizon_end)},
        "comment": format!("{} with {} at {} ({} time)", mode_display(mode), d.name, c.name, c.time_zone.as_str()),
    })
}

/// A free slot of `d`'s; a visit type's names it as its service and its type.
pub fn free_slot(s: &SlotView, d: &DoctorRecord) -> Value {
    let mut v = json!({
        "resourceType": "Slot",
        "id": slot_fhir_id(s.doctor_id, s.start, s.visit_type.as_deref()),
        "schedule": {"reference": format!("Schedule/{}", schedule_id(s.doctor_id, s.mode))},
        "status": "free",
        "start": instant(s.start),
        "end": instant(s.end),
    });
    if let Some(visit) = s.visit_type.as_deref().and_then(|c| d.visit_type(c)) {
        v["serviceType"] = json!([visit_service(&visit.code, &visit.name)]);
        v["appointmentType"] = appointment_type(&visit.code, &visit.name, Some(d));
    }
    v
}

/// The slot an appointment occupies, without saying whose it is.
pub fn busy_slot(a: &AppointmentRecord, d: &DoctorRecord) -> Value {
    let mut v = json!({
        "resourceType": "Slot",
        "id": slot_fhir_id(a.doctor_id, a.start, a.visit.as_ref().map(|v| v.code.as_str())),
        "schedule": {"reference": format!("Schedule/{}", schedule_id(a.doctor_id, a.mode))},
        "status": slot_status(a.status),
        "start": instant(a.start),
        "end": instant(a.end),
    });
    if let Some(visit) = &a.visit {
        v["appointmentType"] = appointment_type(&visit.code, &visit.name, Some(d));
    }
    v
}

pub fn slot_status(s: AppointmentStatus) -> &'static str {
    match s {
        AppointmentStatus::Held | AppointmentStatus::Pending => "busy-tentative",
        AppointmentStatus::Cancelled | AppointmentStatus::Conflict => "free",
        _ => "busy",
    }
}

/// FHIR's Appointment.status for ours (DESIGN.md): a hold is `pending`.
pub fn appointment_status(s: AppointmentStatus) -> &'static str {
    match s {
        AppointmentStatus::Held | AppointmentStatus::Pending => "pending",
        AppointmentStatus::Booked => "booked",
        AppointmentStatus::Arrived => "arrived",
        AppointmentStatus::Fulfilled => "fulfilled",
        AppointmentStatus::Noshow => "noshow",
        AppointmentStatus::Cancelled | AppointmentStatus::Conflict => "cancelled",
    }
}

/// FHIR R5's `Appointment.virtualService`, as R4 carries an element of a later
/// version: a cross-version extension, its `address` the video link.
pub const VIRTUAL_SERVICE: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService";

/// The patient is named by identifier and display (a logical reference: this
/// facade serves no Patient resource, so a literal one would not resolve).
/// `video` is the video link, for a caller who may be shown it.
pub fn appointment(
    a: &AppointmentRecord,
    d: &DoctorRecord,
    c: &ClinicRecord,
    patient_name: Option<&str>,
    video: Option<&str>,
) -> Value {
    let tentative = matches!(a.status, AppointmentStatus::Held | AppointmentStatus::Pending);
    let cancelled = matches!(a.status, AppointmentStatus::Cancelled | AppointmentStatus::Conflict);
    let by_patient = a.cancelled_by == Some(a.patient_id);
    let status_of = |is_patient: bool| match () {
        () if tentative => "tentative",
        () if cancelled && is_patient == by_patient => "declined",
        () => "accepted",
    };
    let mut v = json!({
        "resourceType": "Appointment",
        "id": a.id.to_string(),
        "meta": {"versionId": a.version.to_string(), "lastUpdated": instant(a.updated_at)},
        "status": appointment_status(a.status),
        "serviceType": std::iter::once(service_type(a.mode))
            .chain(a.visit.as_ref().map(|v| visit_service(&v.code, &v.name)))
            .collect::<Vec<_>>(),
        "specialty": d.specialties.iter().map(|s| specialty(s)).collect::<Vec<_>>(),
        "start": instant(a.start),
        "end": instant(a.end),
        "minutesDuration": (a.end.as_second() - a.start.as_second()) / 60,
        "slot": [{"reference": format!("Slot/{}", slot_fhir_id(a.doctor_id, a.start, a.visit.as_ref().map(|v| v.code.as_str())))}],
        "created": instant(a.created_at),
        "participant": [
            {"actor": {"type": "Patient", "identifier": {"system": PATIENT_SYSTEM, "value": a.patient_id.to_string()}, "display": patient_name.unwrap_or("")}, "required": "required", "status": status_of(true)},
            {"actor": {"reference": format!("Practitioner/{}", d.id), "display": d.name}, "required": "required", "status": status_of(false)},
            {"actor": {"reference": format!("Location/{}", c.id), "display": c.name}, "required": "required", "status": if tentative { "tentative" } else { "accepted" }},
        ],
    });
    let o = v.as_object_mut().expect("an object");
    if let Some(visit) = &a.visit {
        o.insert("appointmentType".into(), appointment_type(&visit.code, &visit.name, Some(d)));
    }
    if !a.reason.is_empty() {
        o.insert("reasonCode".into(), json!([{"text": a.reason}]));
    }
    if let Some(r) = a.cancel_reason.as_deref().filter(|_| cancelled) {
        o.insert("cancelationReason".into(), json!({"text": r}));
    }
    if let Some(e) = a.hold_expires_at.filter(|_| a.status == AppointmentStatus::Held) {
        o.insert("comment".into(), json!(format!("held until {}", instant(e))));
    }
    if let Some(url) = video {
        o.insert(
            "extension".into(),
            json!([{"url": VIRTUAL_SERVICE, "extension": [{"url": "address", "valueUrl": url}]}]),
        );
    }
    v
}

/// An appointment the caller could book: a free slot, `proposed`.
pub fn proposed(s: &SlotView, d: &DoctorRecord, c: &ClinicRecord) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "proposed",
        "serviceType": std::iter::once(service_type(s.mode))
            .chain(
                s.visit_type
                    .as_deref()
                    .and_then(|c| d.visit_type(c))
                    .map(|v| visit_service(&v.code, &v.name)),
            )
            .collect::<Vec<_>>(),
        "specialty": d.specialties.iter().map(|s| specialty(s)).collect::<Vec<_>>(),
        "start": instant(s.start),
        "end": instant(s.end),
        "minutesDuration": (s.end.as_second() - s.start.as_second()) / 60,
        "slot": [{"reference": format!("Slot/{}", slot_fhir_id(s.doctor_id, s.start, s.visit_type.as_deref()))}],
        "participant": [
            {"actor": {"reference": format!("Practitioner/{}", d.id), "display": d.name}, "required": "required", "status": "needs-action"},
            {"actor": {"reference": format!("Location/{}", c.id), "display": c.name}, "required": "required", "status": "needs-action"},
        ],
    })
}
