//! The FHIR R4 facade, checked by clients nobody here wrote (fhir.resources,
//! fhirpy; tests/api/fhir_clients.py), and its error paths.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn python() -> String {
    std::env::var("MEDISLOT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "MEDISLOT_TEST_PYTHON is not set: the FHIR tests run Python clients (fhir.resources, fhirpy); \
             run scripts/test, which creates their virtual environment"
        )
    })
}

#[tokio::test]
async fn independent_fhir_clients_validate_everything_and_book_through_the_facade() {
    let srv = TestServer::start_with(&["--demo"]);
    let patient = demo_token(&srv, "patient@demo.medislot.test").await;
    let other = demo_token(&srv, "patient2@demo.medislot.test").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fhir_clients.py");
    let dump = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new(python())
        .args([script, &format!("{}/fhir", srv.url), &patient, &other, "patient@demo.medislot.test", DEMO_PASSWORD])
        .env("FHIR_DUMP", dump.path())
        .output()
        .expect("run the Python FHIR clients");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "FHIR clients failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("fhir: {summary}");
    for kind in ["Practitioner", "PractitionerRole", "Location", "Schedule", "Slot", "Appointment", "OperationOutcome"]
    {
        assert!(summary["validated"][kind].as_u64().unwrap_or(0) > 0, "validated some {kind}: {summary}");
    }

    // Everything the clients read, again through HL7's own JSON Schema.
    let conformance = std::env::var("MEDISLOT_TEST_CONFORMANCE_PYTHON").expect(
        "MEDISLOT_TEST_CONFORMANCE_PYTHON is not set: run scripts/test, which creates the conformance environment (jsonschema-rs)",
    );
    let schema = std::env::var("MEDISLOT_TEST_FHIR_SCHEMA")
        .expect("MEDISLOT_TEST_FHIR_SCHEMA is not set: run scripts/test, which fetches HL7's fhir.schema.json");
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fhir_schema_check.py");
    let out = std::process::Command::new(conformance)
        .args([check, &dump.path().to_string_lossy(), &schema])
        .output()
        .expect("run the FHIR JSON Schema check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fhir.schema.json refused resources:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("fhir.schema.json: {checked}");
    for kind in ["Bundle", "Location", "Schedule", "Slot", "Appointment", "CapabilityStatement", "OperationOutcome"] {
        assert!(checked["checked"][kind].as_u64().unwrap_or(0) > 0, "fhir.schema.json checked some {kind}: {checked}");
    }
}

async fn fhir_post(srv: &TestServer, token: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}/fhir/{path}", srv.url))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    (status, r.json().await.unwrap())
}

/// The first issue's code and expression.
fn issue(v: &Value) -> (String, Value) {
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    (v["issue"][0]["code"].as_str().unwrap().to_string(), v["issue"][0]["expression"].clone())
}

#[tokio::test]
async fn bad_fhir_requests_get_an_operation_outcome_naming_the_field() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "fhirbad").await;
    let p = register(&srv, &http, "p-fhirbad@example.org", "patient").await;
    let wrap = |appt: Value| {
        json!({"resourceType": "Parameters", "parameter": [{"name": "appt-resource", "resource": appt}]}).to_string()
    };
    let cases = [
        ("Appointment/$book", "not json".to_string(), "body"),
        ("Appointment/$book", json!({"resourceType": "Patient"}).to_string(), "resourceType"),
        ("Appointment/$hold", json!({"resourceType": "Parameters", "parameter": []}).to_string(), "appt-resource"),
        ("Appointment/$hold", wrap(json!({"resourceType": "Appointment", "status": "proposed"})), "Appointment.slot"),
        (
            "Appointment/$book",
            wrap(json!({"resourceType": "Appointment", "status": "proposed", "slot": [{"reference": "Slot/nope"}]})),
            "Appointment.slot",
        ),
        ("Appointment/$book", wrap(json!({"resourceType": "Appointment", "status": "cancelled"})), "Appointment.id"),
        (
            "Appointment/$book",
            wrap(json!({"resourceType": "Appointment", "status": "fulfilled", "slot": [{"reference": "Slot/x"}]})),
            "Appointment.status",
        ),
        (
            "Appointment/$find",
            json!({"resourceType": "Parameters", "parameter": [{"name": "start"}]}).to_string(),
            "parameter[start]",
        ),
    ];
    for (path, body, field) in cases {
        let (s, v) = fhir_post(&srv, &p.token, path, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {v}");
        assert_eq!(issue(&v), ("invalid".to_string(), json!([field])), "{path} {body}");
    }
    // Searches: unsupported and malformed parameters are refused, never ignored.
    for (query, field) in [
        (format!("Slot?schedule=Schedule/{}.in-person&start=soon", w.doctor_id), "start"),
        (format!("Slot?schedule=Schedule/{}.in-person&status=taken", w.doctor_id), "status"),
        (format!("Slot?schedule=Schedule/{}.in-person&_count=501", w.doctor_id), "_count"),
        (format!("Slot?schedule=Schedule/{}.in-person&start=2026-13", w.doctor_id), "start"),
        ("Practitioner?colour=blue".to_string(), "colour"),
        ("Appointment/$find?start=2026-12-01&end=2026-11-01".to_string(), "end"),
    ] {
        let r = http.get(format!("{}/fhir/{query}", srv.url)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(issue(&v).1, json!([field]), "{query}: {v}");
    }
    for (query, field) in
        [("$bulk-publish?_since=yesterday", "_since"), ("$bulk-publish/Slot.ndjson?_type=Slot", "_type")]
    {
        let r = http.get(format!("{}/fhir/{query}", srv.url)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(issue(&r.json().await.unwrap()).1, json!([field]), "{query}");
    }
    let r = http.get(format!("{}/fhir/$bulk-publish/Patient.ndjson", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The booking page: a bad link is a page saying so; a form without its CSRF
    // token, or from someone not signed in, books nothing.
    let r = http.get(format!("{}/book/slot_garbage", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("not valid"));
    let slot = free_slots(&p, &w.doctor_id).await[2]["slot_id"].as_str().unwrap().to_string();
    let form = |csrf: &str| format!("csrf={csrf}&action=hold");
    let r = http
        .post(format!("{}/book/{slot}", srv.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("medislot_session={}", p.token))
        .body(form(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("form expired"));
    let csrf = "0123456789abcdef0123456789abcdef";
    let r = http
        .post(format!("{}/book/{slot}", srv.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("medislot_csrf={csrf}"))
        .body(form(csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("sign in first"));
    // Nothing was written by any of it.
    let (_, mine) = p.get("/appointments").await;
    assert_eq!(mine["total"], 0);
    // Unknown things are 404 OperationOutcomes; operations need a token.
    let r = http.get(format!("{}/fhir/Slot/{}.12", srv.url, w.doctor_id)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{}/fhir/Observation", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(issue(&r.json().await.unwrap()).0, "not-found");
    let r = http
        .post(format!("{}/fhir/Appointment/$hold", srv.url))
        .body(wrap(json!({"resourceType": "Appointment"})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The full Slot file as a reader gets it: every line a whole resource.
async fn slot_file(http: &reqwest::Client, srv: &TestServer, host: Option<&str>) -> (String, Vec<Value>) {
    let mut req = http.get(format!("{}/fhir/$bulk-publish/Slot.ndjson", srv.url));
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "a published file is always there to read");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    assert!(body.is_empty() || body.ends_with('\n'), "never half a file");
    (etag, body.lines().map(|l| serde_json::from_str(l).expect("one resource per line")).collect())
}

fn status_of<'a>(slots: &'a [Value], id: &str) -> Option<&'a str> {
    slots.iter().find(|s| s["id"] == id).and_then(|s| s["status"].as_str())
}

#[tokio::test]
async fn the_published_slot_file_follows_bookings_in_the_background_with_the_nodes_own_links() {
    let srv = TestServer::start_with(&["--bulk-republish-secs", "1"]);
    let http = client();
    let w = world(&srv, &http, "publish").await;
    let p = register(&srv, &http, "p-publish@example.org", "patient").await;
    let slot = free_slots(&p, &w.doctor_id).await[1].clone();
    // A FHIR Slot's id is the doctor and the start instant's seconds.
    let start: jiff::Timestamp = slot["start"].as_str().unwrap().parse().unwrap();
    let id = format!("{}.{}", w.doctor_id, start.as_second());
    // The node published at start, before this doctor existed: the doctor's
    // slots appear in a later publication.
    let t0 = std::time::Instant::now();
    let (before, slots) = loop {
        // A reader who names another host does not choose the links every reader gets.
        let (etag, slots) = slot_file(&http, &srv, Some("attacker.example")).await;
        if status_of(&slots, &id).is_some() {
            break (etag, slots);
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "the new doctor is published");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(status_of(&slots, &id), Some("free"), "{id}");
    for s in slots.iter().filter(|s| s["status"] == "free") {
        let link = s["extension"][0]["valueUrl"].as_str().unwrap();
        assert!(link.starts_with(&format!("{}/book/slot_", srv.url)), "{link}");
    }

    assert_eq!(p.post("/appointments", json!({"slot_id": slot["slot_id"]})).await.0, 201);
    // Readers keep getting the published file while the next one is written, and
    // the booking shows in a publication soon after (here at most a second apart).
    let t0 = std::time::Instant::now();
    loop {
        let (etag, slots) = slot_file(&http, &srv, None).await;
        if etag != before {
            assert_eq!(status_of(&slots, &id), Some("busy"), "the booked slot is busy in the new file");
            break;
        }
        assert_eq!(status_of(&slots, &id), Some("free"), "the previous file, whole");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "republished after the booking");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(srv.data_dir.join("bulk"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    // One publication of each kind, each file named by its publication.
    let of =
        |kind: &str| on_disk.iter().filter(|f| f.starts_with(&format!("{kind}.")) && f.ends_with(".ndjson")).count();
    assert_eq!((of("Location"), of("Schedule")), (1, 1), "{on_disk:?}");
    assert!(
        on_disk.len() > 2
            && on_disk
                .iter()
                .filter(|f| !f.starts_with("Location.") && !f.starts_with("Schedule."))
                .all(|f| f.starts_with("Slot-") && f.ends_with(".ndjson")),
        "the Slot files, and no temporary files left: {on_disk:?}"
    );
}

#[tokio::test]
async fn a_schedule_stays_the_same_version_within_a_day_and_unknown_definitions_are_404() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "stable").await;
    let url = format!("{}/fhir/Schedule/{}.in-person", srv.url, w.doctor_id);
    let read = || async {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        (etag, r.json::<Value>().await.unwrap())
    };
    let day = || jiff::Timestamp::now().as_second() / 86_400;
    let (first, second) = loop {
        let before = day();
        let first = read().await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let second = read().await;
        if day() == before {
            break (first, second);
        }
    };
    assert_eq!(first.0, second.0, "the same ETag a second later");
    assert_eq!(first.1, second.1, "the same resource, planning horizon included");
    assert_eq!(first.0, format!("W/\"{}\"", first.1["meta"]["versionId"].as_str().unwrap()));
    let horizon = &first.1["planningHorizon"];
    assert!(horizon["start"].as_str().unwrap().ends_with("T00:00:00Z"), "{horizon}");

    let r = http.get(format!("{}/fhir/OperationDefinition/Appointment-nope", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");
}
