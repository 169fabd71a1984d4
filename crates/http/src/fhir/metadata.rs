//! `GET /fhir/metadata`: the CapabilityStatement, listing exactly what this facade supports.

use super::{Base, Fhir, FhirError, FhirResult};
use crate::problem::ApiError;
use axum::{extract::Path, http::StatusCode};
use serde_json::{json, Value};

fn param(name: &str, kind: &str, doc: &str) -> Value {
    json!({"name": name, "type": kind, "documentation": doc})
}

fn resource(kind: &str, params: Vec<Value>, operations: Vec<Value>) -> Value {
    let mut r = json!({
        "type": kind,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": params,
    });
    if !operations.is_empty() {
        r["operation"] = json!(operations);
    }
    r
}

pub async fn capability_statement(base: Base) -> Fhir {
    let id = || param("_id", "token", "resource id(s), comma-separated");
    let specialty = || param("specialty", "token", "specialty code, e.g. cardiology");
    let op = |name: &str, doc: &str| json!({"name": name, "definition": format!("{}/OperationDefinition/Appointment-{name}", base.0), "documentation": doc});
    Fhir::ok(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "medislot",
        "kind": "instance",
        "software": {"name": "medislot", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "medislot FHIR R4 scheduling facade", "url": base.0},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Searches page with _count (at most 500; 0 for the total alone) and _offset; unsupported parameters are refused with 400.",
            "security": {
                "description": "Directory and Slot reads are public. Appointment reads, searches and the $hold/$book operations need `Authorization: Bearer <token>` from POST /api/v1/auth/login; a patient sees only their own appointments.",
            },
            "operation": [{
                "name": "bulk-publish",
                "definition": "https://github.com/smart-on-fhir/smart-scheduling-links/blob/master/specification.md#bulk-publication-manifest",
                "documentation": "SMART Scheduling Links: GET $bulk-publish returns a manifest of Location, Schedule and Slot NDJSON files (60 days of slots, booking deep links), with _since and conditional requests",
            }],
            "resource": [
                resource("Practitioner", vec![id(), param("name", "string", "part of the name"), specialty()], vec![]),
                resource("PractitionerRole", vec![id(), param("practitioner", "reference", "Practitioner/{id}"), param("location", "reference", "Location/{id}"), specialty()], vec![]),
                resource("Location", vec![id(), param("name", "string", "part of the name")], vec![]),
                resource("Schedule", vec![id(), param("actor", "reference", "Practitioner/{id} or Location/{id}"), specialty(), param("service-type", "token", "in-person or online")], vec![]),
                resource("Slot", vec![
                    param("schedule", "reference", "required: Schedule/{id}"),
                    param("start", "date", "with ge, gt, le, lt or eq; default: the next 7 days, at most 92"),
                    param("status", "token", "free, busy, busy-tentative (comma-separated)"),
                ], vec![]),
                resource("Appointment", vec![
                    id(),
                    param("patient", "reference", "Patient/{id}"),
                    param("practitioner", "reference", "Practitioner/{id}"),
                    param("status", "token", "pending, booked, arrived, fulfilled, noshow, cancelled"),
                    param("date", "date", "the start, with ge, gt, le, lt or eq"),
                ], vec![
                    op("find", "proposed Appointments over free slots: start, end, specialty, practitioner, location, service-type"),
                    op("hold", "hold the slot of the Appointment in parameter appt-resource for a few minutes"),
                    op("book", "book the slot of the Appointment in appt-resource (Idempotency-Key honoured), or cancel an Appointment sent with status cancelled"),
                ]),
            ],
        }],
    }))
}

/// One parameter of an operation: `use` in or out, its cardinality and FHIR type.
fn op_param(name: &str, use_: &str, min: u32, kind: &str, doc: &str) -> Value {
    json!({"name": name, "use": use_, "min": min, "max": "1", "type": kind, "documentation": doc})
}

/// `GET /fhir/OperationDefinition/Appointment-{find,hold,book}`: the
/// definitions the CapabilityStatement points to.
pub async fn operation_definition(base: Base, Path(id): Path<String>) -> FhirResult {
    let out = || op_param("return", "out", 1, "Bundle", "the Appointments, in a Bundle");
    let appt =
        || op_param("appt-resource", "in", 1, "Appointment", "an Appointment naming the slot (`slot[0].reference`)");
    let (code, affects_state, description, parameters) = match id.as_str() {
        "Appointment-find" => (
            "find",
            false,
            "Proposed Appointments over free slots (GET or POST with Parameters)",
            vec![
                op_param("start", "in", 0, "dateTime", "earliest start (default: now)"),
                op_param("end", "in", 0, "dateTime", "latest start (default: 7 days after start)"),
                op_param("specialty", "in", 0, "string", "specialty code, e.g. cardiology"),
                op_param("practitioner", "in", 0, "string", "Practitioner/{id}"),
                op_param("location", "in", 0, "string", "Location/{id}"),
                op_param("service-type", "in", 0, "string", "in-person or online"),
                out(),
            ],
        ),
        "Appointment-hold" => ("hold", true, "Holds the Appointment's slot for the caller for a few minutes", vec![appt(), out()]),
        "Appointment-book" => (
            "book",
            true,
            "Books the Appointment's slot (Idempotency-Key honoured), or cancels an Appointment sent with status cancelled",
            vec![appt(), out()],
        ),
        _ => {
            return Err(FhirError(ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such OperationDefinition: Appointment-find, Appointment-hold or Appointment-book",
            )))
        }
    };
    Ok(Fhir::ok(json!({
        "resourceType": "OperationDefinition",
        "id": id,
        "url": format!("{}/OperationDefinition/{id}", base.0),
        "name": format!("Appointment{}{}", code[..1].to_uppercase(), &code[1..]),
        "status": "active",
        "kind": "operation",
        "publisher": "medislot",
        "description": description,
        "affectsState": affects_state,
        "code": code,
        "resource": ["Appointment"],
        "system": false,
        "type": true,
        "instance": false,
        "parameter": parameters,
    })))
}
