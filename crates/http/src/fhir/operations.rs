//! The scheduling operations (IHE / Argonaut style): `Appointment/$find`
//! proposes appointments over free slots, `$hold` holds one, `$book` books
//! it — or cancels an appointment sent back with status `cancelled`. They
//! run the JSON API's use cases: same checks, same guarantees.

use super::{
    bundle, invalid, resources as r,
    search::{narrow, reference},
    Base, Fhir, FhirResult, Params,
};
use crate::{
    extract::{Caller, IdempotencyKey, IfMatch},
    problem::ApiError,
    AppState,
};
use axum::{body::Bytes, extract::State, http::StatusCode};
use jiff::SignedDuration;
use medislot_app::BookRequest;
use medislot_domain::{AppointmentId, ClinicId, DoctorId, Mode};
use serde_json::{json, Value};

pub async fn find_get(State(s): State<AppState>, base: Base, p: Params) -> FhirResult {
    find(&s, &base, p).await
}

pub async fn find_post(State(s): State<AppState>, base: Base, body: Bytes) -> FhirResult {
    let parameters = parse_body(&body)?;
    find(&s, &base, Params(flatten(&parameters)?)).await
}

/// Free slots matching the criteria, as `proposed` Appointments, soonest first.
async fn find(s: &AppState, base: &Base, p: Params) -> FhirResult {
    p.only(&["start", "end", "specialty", "practitioner", "location", "service-type"])?;
    let (count, offset) = p.paging()?;
    let now = s.app.now();
    let mut window = (None, None);
    if let Some(v) = p.one("start") {
        narrow(&mut window, "start", &format!("ge{}", v.trim_start_matches("ge")))?;
    }
    if let Some(v) = p.one("end") {
        narrow(&mut window, "end", &format!("lt{}", v.trim_start_matches("lt")))?;
    }
    let from = window.0.unwrap_or(now).max(now);
    let to = window.1.unwrap_or(from + SignedDuration::from_hours(24 * 7));
    if to <= from {
        return Err(invalid("end", "must be after start (and after now)"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(24 * 92) {
        return Err(invalid("end", "the window may span at most 92 days"));
    }
    let practitioner: Option<DoctorId> = reference(&p, "practitioner", "Practitioner")?;
    let location: Option<ClinicId> = reference(&p, "location", "Location")?;
    let mode = match p.one("service-type").map(|t| t.rsplit('|').next().unwrap_or(t)) {
        None => None,
        Some("in-person") => Some(Mode::InPerson),
        Some("online") => Some(Mode::Online),
        Some(_) => return Err(invalid("service-type", "must be in-person or online")),
    };
    let specialty = p.one("specialty").map(|v| v.rsplit('|').next().unwrap_or(v).to_lowercase());
    let mut proposals = vec![];
    for (d, c) in s.app.directory().await? {
        if practitioner.is_some_and(|x| x != d.id)
            || location.is_some_and(|x| x != c.id)
            || specialty.as_ref().is_some_and(|sp| !d.specialties.iter().any(|x| x.eq_ignore_ascii_case(sp)))
        {
            continue;
        }
        let list = s.app.slots(None, d.id, Some(from), Some(to), mode.map(Mode::as_str), None).await?;
        proposals.extend(list.slots.iter().map(|v| (v.start, r::proposed(v, &d, &c))));
    }
    proposals.sort_by_key(|(t, _)| *t);
    let items: Vec<Value> = proposals.into_iter().map(|(_, v)| v).collect();
    let mut b = bundle(base, "Appointment/$find", &p, items, count, offset);
    // Proposals have no id yet: each entry gets a fresh urn.
    for e in b["entry"].as_array_mut().into_iter().flatten() {
        e["fullUrl"] = json!(format!("urn:uuid:{}", uuid::Uuid::new_v4()));
    }
    Ok(Fhir::ok(b))
}

fn parse_body(body: &Bytes) -> FhirResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid("body", format!("is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("body", "must be a FHIR resource (a JSON object)"));
    }
    Ok(v)
}

/// A `Parameters` resource's simple values as name/value pairs.
fn flatten(parameters: &Value) -> FhirResult<Vec<(String, String)>> {
    if parameters["resourceType"] != "Parameters" {
        return Err(invalid("resourceType", "must be Parameters"));
    }
    let mut out = vec![];
    for p in parameters["parameter"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().ok_or_else(|| invalid("parameter.name", "is required"))?;
        let value = p
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, _)| k.starts_with("value"))
            .and_then(|(_, v)| v.as_str().or_else(|| v["reference"].as_str()).map(str::to_string))
            .ok_or_else(|| {
                invalid(&format!("parameter[{name}]"), "needs a value (valueString, valueDateTime, valueReference…)")
            })?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// The Appointment in a `$hold`/`$book` body: a Parameters resource with
/// `appt-resource` (Argonaut) or `appointment`, or a bare Appointment.
fn appointment_in(body: &Bytes) -> FhirResult<Value> {
    let v = parse_body(body)?;
    let appt = match v["resourceType"].as_str() {
        Some("Appointment") => v,
        Some("Parameters") => v["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| matches!(p["name"].as_str(), Some("appt-resource" | "appointment")))
            .map(|p| p["resource"].clone())
            .ok_or_else(|| invalid("appt-resource", "is required: the Appointment to hold or book"))?,
        _ => return Err(invalid("resourceType", "must be Parameters or Appointment")),
    };
    if appt["resourceType"] != "Appointment" {
        return Err(invalid("appt-resource", "must be an Appointment"));
    }
    Ok(appt)
}

/// The JSON API's slot id and mode for the Appointment's first slot reference
/// (a visit type's slot named among its doctor's visit types).
async fn slot_of(s: &AppState, appt: &Value) -> FhirResult<(String, Option<String>)> {
    let reference = appt["slot"][0]["reference"]
        .as_str()
        .ok_or_else(|| invalid("Appointment.slot", "is required: a reference to a free Slot"))?;
    let not_ours = || invalid("Appointment.slot", "must reference a Slot of this server (Slot/{id})");
    let fhir = r::reference_id("Slot", reference).and_then(r::parse_slot_id).ok_or_else(not_ours)?;
    let id = match s.app.doctor(None, fhir.doctor).await {
        Ok(d) => fhir
            .resolve(&d)
            .ok_or_else(|| invalid("Appointment.slot", "is of a visit type the doctor no longer offers"))?,
        // An unknown doctor: the booking says so, naming the slot.
        Err(_) => medislot_domain::SlotId::new(fhir.doctor, fhir.start),
    };
    let mode = appt["serviceType"][0]["coding"][0]["code"].as_str().map(|c| match c {
        "in-person" => "in_person".to_string(),
        other => other.to_string(),
    });
    Ok((id.encode(), mode))
}

fn collection(base: &Base, resource: Value) -> Value {
    let full_url = format!("{}/Appointment/{}", base.0, resource["id"].as_str().unwrap_or(""));
    json!({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": full_url, "resource": resource}]})
}

async fn respond(
    s: &AppState,
    caller: &Caller,
    base: &Base,
    status: StatusCode,
    a: &medislot_store::AppointmentRecord,
) -> FhirResult {
    let one = super::search::appointment_response(s, caller.get(), status, a).await?;
    let version = one.version;
    Ok(Fhir { status, body: collection(base, one.body), version })
}

/// Who is asking: the operations that change things need a token, checked before anything else.
fn signed_in(c: Result<Caller, ApiError>) -> FhirResult<Caller> {
    let caller = c?;
    if caller.0.is_none() {
        return Err(medislot_app::AppError::Unauthenticated.into());
    }
    Ok(caller)
}

/// Holds the slot for the caller (a patient) for a few minutes: Appointment `pending`, Slot `busy-tentative`.
pub async fn hold(State(s): State<AppState>, c: Result<Caller, ApiError>, base: Base, body: Bytes) -> FhirResult {
    let caller = signed_in(c)?;
    let appt = appointment_in(&body)?;
    let (slot_id, mode) = slot_of(&s, &appt).await?;
    let a = s.app.hold(caller.get(), &slot_id, mode.as_deref()).await?;
    respond(&s, &caller, &base, StatusCode::OK, &a).await
}

/// Books the slot (confirming the caller's hold on it, if any), honouring
/// `Idempotency-Key`; or, for an Appointment with status `cancelled`, cancels it
/// (`If-Match` or `meta.versionId` guards against overwriting a change not seen).
pub async fn book(
    State(s): State<AppState>,
    c: Result<Caller, ApiError>,
    base: Base,
    key: Result<IdempotencyKey, ApiError>,
    if_match: Result<IfMatch, ApiError>,
    body: Bytes,
) -> FhirResult {
    let caller = signed_in(c)?;
    let appt = appointment_in(&body)?;
    if appt["status"] == "cancelled" {
        let id: AppointmentId = appt["id"]
            .as_str()
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| invalid("Appointment.id", "is required to cancel: the appointment's id"))?;
        let version = match if_match?.0 {
            Some(v) => Some(v),
            None => appt["meta"]["versionId"]
                .as_str()
                .map(|v| {
                    v.parse::<i64>().map_err(|_| invalid("Appointment.meta.versionId", "must be a version number"))
                })
                .transpose()?,
        };
        let reason = appt["cancelationReason"]["text"].as_str().map(str::to_string);
        let a = s.app.cancel(caller.get(), id, reason, version).await?;
        return respond(&s, &caller, &base, StatusCode::OK, &a).await;
    }
    if let Some(st) = appt["status"].as_str().filter(|st| !matches!(*st, "proposed" | "pending" | "booked")) {
        return Err(invalid(
            "Appointment.status",
            format!("`{st}`: $book takes proposed, pending or booked (to book) or cancelled"),
        ));
    }
    let (slot_id, mode) = slot_of(&s, &appt).await?;
    let reason = appt["reasonCode"][0]["text"].as_str().or(appt["description"].as_str()).unwrap_or("").to_string();
    let key = key?.0;
    let out = s.app.book(caller.get(), BookRequest { slot_id, mode, reason, intake: None }, key.as_deref()).await?;
    respond(&s, &caller, &base, StatusCode::OK, &out.appointment).await
}

/// `parameters` helper shared with tests of this module's parsing.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_flatten_to_name_value_pairs() {
        let p = json!({"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDateTime": "2026-12-01T00:00:00Z"},
            {"name": "practitioner", "valueReference": {"reference": "Practitioner/abc"}},
        ]});
        assert_eq!(
            flatten(&p).unwrap(),
            vec![("start".into(), "2026-12-01T00:00:00Z".into()), ("practitioner".into(), "Practitioner/abc".into())]
        );
        assert!(flatten(&json!({"resourceType": "Bundle"})).is_err());
        assert!(flatten(&json!({"resourceType": "Parameters", "parameter": [{"name": "start"}]})).is_err());
    }
}
