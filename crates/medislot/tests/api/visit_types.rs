//! Visit types: a doctor's side sets them; slots are listed per visit type
//! and last as long as the visit; who may book one online is enforced; the
//! answers to its intake questions travel with the appointment; and visits of
//! different lengths racing for overlapping times never overlap (P1).

use crate::helpers::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn minutes(slot: &Value) -> i64 {
    let at = |k: &str| slot[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    at("end").duration_since(at("start")).as_mins()
}

fn visit_types() -> Value {
    json!({"visit_types": [
        {"code": "first", "name": "First consultation", "duration_minutes": 60, "modes": ["in_person"],
         "bookable_by": "new_patients",
         "questions": [
            {"id": "symptoms", "text": "What brings you here?", "kind": "text", "required": true},
            {"id": "referral", "text": "Were you referred by your GP?", "kind": "yes_no"},
            {"id": "insurance", "text": "Your insurance", "kind": "choice", "options": ["public", "private"]}
         ]},
        {"code": "follow-up", "name": "Follow-up", "duration_minutes": 30, "modes": ["in_person"],
         "bookable_by": "existing_patients"},
        {"code": "triage", "name": "Phone triage", "duration_minutes": 90, "modes": ["in_person"],
         "bookable_by": "staff"}
    ]})
}

async fn slots_of(u: &User, doctor: &str, visit: &str) -> Vec<Value> {
    let (s, v) = u.get(&format!("/doctors/{doctor}/slots?visit_type={visit}")).await;
    assert_eq!(s, 200, "{v}");
    v["slots"].as_array().unwrap().clone()
}

#[tokio::test]
async fn visit_types_give_slots_of_their_length_admit_the_right_patients_and_keep_the_answers() {
    let srv = TestServer::start_with(&["--arrival-window-minutes", "10080"]);
    let http = client();
    let w = world(&srv, &http, "visits").await;
    let p = register(&srv, &http, "visits-patient@example.org", "patient").await;
    let path = format!("/doctors/{}/visit-types", w.doctor_id);

    // Only the doctor's side sets them.
    let other = register(&srv, &http, "visits-other-ca@example.org", "clinic_admin").await;
    for (who, u) in [("patient", &p), ("another clinic's admin", &other)] {
        assert_eq!(u.put(&path, visit_types()).await.0, 403, "{who}");
    }
    // Bad input names every wrong field and changes nothing.
    let bad = json!({"visit_types": [
        {"code": "First Visit", "name": "", "duration_minutes": 600, "modes": ["online"],
         "questions": [{"id": "q1", "text": "Pick", "kind": "choice", "options": ["only one"]}]},
        {"code": "again", "name": "Again", "duration_minutes": 15, "modes": ["in_person"], "bookable_by": "friends"},
        {"code": "again", "name": "Twice", "duration_minutes": 15, "modes": ["in_person"]}
    ]});
    let (s, e) = w.doctor.put(&path, bad).await;
    assert_eq!(s, 422, "{e}");
    let fields: Vec<&str> = e["errors"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    for want in [
        "visit_types[0].code",
        "visit_types[0].name",
        "visit_types[0].duration_minutes",
        "visit_types[0].modes[0]",
        "visit_types[0].questions[0].options",
        "visit_types[1].bookable_by",
        "visit_types[2].code",
    ] {
        assert!(fields.contains(&want), "{want} missing from {e}");
    }
    let (s, e) = w.doctor.put(&path, json!({"visit_types": [], "extra": 1})).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!("extra")), "{e}");
    let (_, none) = p.get(&path).await;
    assert_eq!(none["visit_types"], json!([]), "{none}");

    // Without visit types: the schedule's own 30-minute slots, as before.
    let plain = free_slots(&p, &w.doctor_id).await;
    assert!(plain.iter().all(|s| minutes(s) == 30 && s["visit_type"].is_null()), "{:?}", plain[0]);

    let (s, set) = w.doctor.put(&path, visit_types()).await;
    assert_eq!(s, 200, "{set}");
    let (s, public) = http.get(srv.api(&path)).send().await.map(|r| (r.status(), r)).unwrap();
    assert_eq!(s, 200);
    let public: Value = public.json().await.unwrap();
    assert_eq!(public["visit_types"][0]["questions"][2]["options"], json!(["public", "private"]), "{public}");
    let (_, profile) = p.get(&format!("/doctors/{}", w.doctor_id)).await;
    assert_eq!(profile["visit_types"].as_array().map(Vec::len), Some(3), "{profile}");

    // Slots per visit type, as long as the visit; by default the first one
    // patients may book; an unknown visit type is named.
    let first = free_slots(&p, &w.doctor_id).await;
    assert!(first.iter().all(|s| minutes(s) == 60 && s["visit_type"] == "first"), "{:?}", first[0]);
    let follow = slots_of(&p, &w.doctor_id, "follow-up").await;
    assert!(follow.iter().all(|s| minutes(s) == 30 && s["visit_type"] == "follow-up"));
    let (s, e) = p.get(&format!("/doctors/{}/slots?visit_type=massage", w.doctor_id)).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!("visit_type")), "{e}");

    // The intake questions: a required one unanswered, a wrong choice, an
    // unknown question — each named, nothing booked.
    let slot = &first[4];
    for (intake, field) in [
        (json!({}), "intake.symptoms"),
        (json!({"symptoms": "cough", "insurance": "none"}), "intake.insurance"),
        (json!({"symptoms": "cough", "referral": "yes"}), "intake.referral"),
        (json!({"symptoms": "cough", "shoe_size": "42"}), "intake.shoe_size"),
    ] {
        let (s, e) = p.post("/appointments", json!({"slot_id": slot["slot_id"], "intake": intake})).await;
        assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!(field)), "{intake}: {e}");
    }
    assert_eq!(p.get("/appointments").await.1["total"], 0);

    let intake = json!({"symptoms": "chest pain on stairs", "referral": true, "insurance": "private"});
    let key = [("Idempotency-Key", "visit-first")];
    let body = json!({"slot_id": slot["slot_id"], "reason": "first visit", "intake": intake});
    let (s, a, _) = p.send(Method::POST, "/appointments", Some(body.clone()), &key).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["visit_type"], json!({"code": "first", "name": "First consultation"}), "{a}");
    assert_eq!(minutes(&a), 60, "{a}");
    let answers: Vec<(&str, &str)> = a["intake"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["question"].as_str().unwrap(), x["answer"].as_str().unwrap()))
        .collect();
    assert_eq!(answers, [("symptoms", "chest pain on stairs"), ("referral", "yes"), ("insurance", "private")]);
    // The doctor reads them with the question as it was asked.
    let (_, seen) = w.doctor.get(&format!("/appointments/{}", a["id"].as_str().unwrap())).await;
    assert_eq!(seen["intake"][0]["text"], "What brings you here?", "{seen}");
    // A retry with the same key replays; other answers with it are refused.
    let (s, again, _) = p.send(Method::POST, "/appointments", Some(body), &key).await;
    assert_eq!((s.as_u16(), &again["id"]), (201, &a["id"]));
    let other_answers = json!({"slot_id": slot["slot_id"], "reason": "first visit", "intake": {"symptoms": "other"}});
    let (s, e, _) = p.send(Method::POST, "/appointments", Some(other_answers), &key).await;
    assert_eq!((s.as_u16(), e["type"].as_str()), (422, Some("https://medislot.dev/problems/idempotency-key-reused")));

    // The hour is taken for every visit type: no 30-minute follow-up inside
    // it, and no 60-minute visit starting half an hour before it.
    let start = a["start"].as_str().unwrap();
    let start_ts: jiff::Timestamp = start.parse().unwrap();
    let half = (start_ts + jiff::SignedDuration::from_mins(30)).to_string();
    let before = (start_ts - jiff::SignedDuration::from_mins(30)).to_string();
    let follow = slots_of(&p, &w.doctor_id, "follow-up").await;
    assert!(!follow.iter().any(|s| s["start"] == start || s["start"] == half.as_str()), "follow-up inside the hour");
    let first = free_slots(&p, &w.doctor_id).await;
    assert!(!first.iter().any(|s| s["start"] == before.as_str() || s["start"] == start), "overlapping first visit");

    // Who may book online: a follow-up is for patients already seen, triage
    // for the staff; once the doctor has seen the patient, a first
    // consultation is no longer theirs to book and a follow-up is.
    let restricted = |e: &Value| e["type"] == "https://medislot.dev/problems/visit-type-restricted";
    let (s, e) = p.post("/appointments", json!({"slot_id": follow[0]["slot_id"]})).await;
    assert!(s == 403 && restricted(&e), "{e}");
    let triage = slots_of(&p, &w.doctor_id, "triage").await;
    assert!(triage.iter().all(|s| minutes(s) == 90));
    let (s, e) = p.post("/holds", json!({"slot_id": triage[0]["slot_id"]})).await;
    assert!(s == 403 && restricted(&e), "{e}");
    let (s, v) = w.doctor.post(&format!("/appointments/{}/arrived", a["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let later = follow.iter().find(|s| s["start"].as_str().unwrap() > start).unwrap();
    let (s, fu) = p.post("/appointments", json!({"slot_id": later["slot_id"]})).await;
    assert_eq!((s.as_u16(), &fu["visit_type"]["code"]), (201, &json!("follow-up")), "{fu}");
    let (s, e) = p
        .post("/appointments", json!({"slot_id": first.last().unwrap()["slot_id"], "intake": {"symptoms": "again"}}))
        .await;
    assert!(s == 403 && restricted(&e), "{e}");

    // A move keeps the visit type: to another follow-up slot it keeps its
    // length; to a slot of another visit type it is refused.
    let fu_id = fu["id"].as_str().unwrap();
    let follow = slots_of(&p, &w.doctor_id, "follow-up").await;
    let (s, e) = p.change(&format!("/appointments/{fu_id}/reschedule"), json!({"slot_id": first[0]["slot_id"]})).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!("slot_id")), "{e}");
    let target = follow.last().unwrap();
    let (s, moved) =
        p.change(&format!("/appointments/{fu_id}/reschedule"), json!({"slot_id": target["slot_id"]})).await;
    assert_eq!((s.as_u16(), &moved["start"], minutes(&moved)), (200, &target["start"], 30), "{moved}");
    assert_eq!(moved["visit_type"]["code"], "follow-up");
}

#[tokio::test]
async fn a_held_visit_is_confirmed_with_its_answers() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "visithold").await;
    let p = register(&srv, &http, "visithold-patient@example.org", "patient").await;
    let (s, v) = w
        .clinic_admin
        .put(
            &format!("/doctors/{}/visit-types", w.doctor_id),
            json!({"visit_types": [{"code": "long", "name": "Long visit", "duration_minutes": 90, "modes": ["in_person"],
                "questions": [{"id": "why", "text": "Why?", "kind": "text", "required": true}]}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let slot = &free_slots(&p, &w.doctor_id).await[2];
    let (s, held) = p.post("/holds", json!({"slot_id": slot["slot_id"]})).await;
    assert_eq!((s.as_u16(), &held["status"], minutes(&held)), (201, &json!("held"), 90), "{held}");
    assert_eq!(held["visit_type"]["code"], "long");
    let (s, e) = p.post("/appointments", json!({"slot_id": slot["slot_id"]})).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!("intake.why")), "{e}");
    let (s, a) = p.post("/appointments", json!({"slot_id": slot["slot_id"], "intake": {"why": "back pain"}})).await;
    assert_eq!((s.as_u16(), &a["id"], &a["status"]), (201, &held["id"], &json!("booked")), "{a}");
    assert_eq!(a["intake"][0]["answer"], "back pain", "{a}");
}

/// P1 across visit types: patients race for 30-, 60- and 90-minute visits
/// whose times overlap in every way; whatever wins, no two of the doctor's
/// appointments overlap, and every loser is told the time was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p1_visits_of_different_lengths_racing_for_overlapping_times_never_overlap() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "visitrace").await;
    let (s, v) = w
        .doctor
        .put(
            &format!("/doctors/{}/visit-types", w.doctor_id),
            json!({"visit_types": [
                {"code": "short", "name": "Short", "duration_minutes": 30, "modes": ["in_person"]},
                {"code": "hour", "name": "Hour", "duration_minutes": 60, "modes": ["in_person"]},
                {"code": "long", "name": "Long", "duration_minutes": 90, "modes": ["in_person"]}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let racers = join_all((0..60).map(|i| {
        let http = http.clone();
        let srv = &srv;
        async move { register(srv, &http, &format!("vr{i}@example.org"), "patient").await }
    }))
    .await;
    // The first three hours of the list, for each visit type: every start
    // overlaps several visits of the others.
    let mut candidates = Vec::new();
    for code in ["short", "hour", "long"] {
        let slots = slots_of(&racers[0], &w.doctor_id, code).await;
        candidates.extend(slots.into_iter().skip(2).take(6).map(|s| s["slot_id"].as_str().unwrap().to_string()));
    }
    let answers = join_all(racers.iter().enumerate().map(|(i, p)| {
        let slot = candidates[i % candidates.len()].clone();
        async move { p.send(Method::POST, "/appointments", Some(json!({"slot_id": slot})), &[]).await }
    }))
    .await;
    let mut booked: Vec<(jiff::Timestamp, jiff::Timestamp)> = Vec::new();
    for (s, body, _) in &answers {
        match *s {
            StatusCode::CREATED => booked.push((
                body["start"].as_str().unwrap().parse().unwrap(),
                body["end"].as_str().unwrap().parse().unwrap(),
            )),
            StatusCode::CONFLICT => assert_eq!(body["type"], "https://medislot.dev/problems/slot-taken", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(booked.len() >= 2, "some visits fit side by side: {booked:?}");
    let minutes: i64 = booked.iter().map(|(s, e)| e.duration_since(*s).as_mins()).sum();
    eprintln!(
        "visit race: {} requests for {} overlapping visits of 30/60/90 min: {} booked ({minutes} min), {} refused slot-taken",
        answers.len(),
        candidates.len(),
        booked.len(),
        answers.len() - booked.len()
    );
    // What the doctor's agenda holds agrees, and nothing in it overlaps.
    let (_, agenda) = w.doctor.get("/appointments?per_page=200").await;
    let mut held: Vec<(jiff::Timestamp, jiff::Timestamp)> = agenda["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["start"].as_str().unwrap().parse().unwrap(), a["end"].as_str().unwrap().parse().unwrap()))
        .collect();
    held.sort();
    booked.sort();
    assert_eq!(held, booked);
    for pair in held.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlap: {pair:?}");
    }
}

/// The FHIR facade maps visit types: each Slot names its visit type as its
/// service type (and an HL7 appointment type), has an id of its own, reads
/// back by it, and `$book` on it books that visit — all valid by HL7's schema.
#[tokio::test]
async fn fhir_slots_and_appointments_carry_their_visit_type() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "visitfhir").await;
    let p = register(&srv, &http, "visitfhir-patient@example.org", "patient").await;
    let (s, v) = w
        .doctor
        .put(
            &format!("/doctors/{}/visit-types", w.doctor_id),
            json!({"visit_types": [
                {"code": "long", "name": "Long visit", "duration_minutes": 90, "modes": ["in_person"]},
                {"code": "check", "name": "Check-up", "duration_minutes": 30, "modes": ["in_person"],
                 "bookable_by": "existing_patients"}
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let fhir = |path: String| {
        let (http, url, token) = (http.clone(), format!("{}/fhir/{path}", srv.url), p.token.clone());
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, bundle) = fhir(format!("Slot?schedule=Schedule/{}.in-person", w.doctor_id)).await;
    assert_eq!(s, 200, "{bundle}");
    let slots: Vec<Value> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    let of = |code: &str| -> Vec<&Value> {
        slots.iter().filter(|s| s["serviceType"][0]["coding"][0]["code"] == code).collect()
    };
    let (long, check) = (of("long"), of("check"));
    assert!(!long.is_empty() && !check.is_empty(), "both visit types' slots: {bundle}");
    assert_eq!(long[0]["appointmentType"]["coding"][0]["code"], "ROUTINE", "{}", long[0]);
    assert_eq!(check[0]["appointmentType"]["coding"][0]["code"], "FOLLOWUP", "{}", check[0]);
    assert_eq!(long[0]["appointmentType"]["text"], "Long visit");
    let id = long[0]["id"].as_str().unwrap().to_string();
    assert!(id.len() <= 64 && id != check[0]["id"].as_str().unwrap(), "{id}");
    let (s, read) = fhir(format!("Slot/{id}")).await;
    assert_eq!((s.as_u16(), &read), (200, long[0]), "a visit's Slot reads back by its id");

    let body =
        json!({"resourceType": "Appointment", "status": "proposed", "slot": [{"reference": format!("Slot/{id}")}]});
    let r = http
        .post(format!("{}/fhir/Appointment/$book", srv.url))
        .bearer_auth(&p.token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let booked: Value = r.json().await.unwrap();
    let appointment = booked["entry"][0]["resource"].clone();
    assert_eq!(appointment["minutesDuration"], 90, "{booked}");
    assert_eq!(appointment["appointmentType"]["text"], "Long visit", "{appointment}");
    assert_eq!(appointment["serviceType"][1]["coding"][0]["code"], "long", "{appointment}");
    assert_eq!(appointment["slot"][0]["reference"], format!("Slot/{id}"));
    let (_, a) = p.get(&format!("/appointments/{}", appointment["id"].as_str().unwrap())).await;
    assert_eq!(a["visit_type"]["code"], "long", "{a}");

    // HL7's own JSON Schema takes all of them.
    let dump = tempfile::NamedTempFile::new().unwrap();
    let lines: Vec<String> = [long[0], check[0], &read, &appointment].iter().map(|v| v.to_string()).collect();
    std::fs::write(dump.path(), lines.join("\n")).unwrap();
    let python = std::env::var("MEDISLOT_TEST_CONFORMANCE_PYTHON").expect(
        "MEDISLOT_TEST_CONFORMANCE_PYTHON is not set: run scripts/test, which creates the conformance environment (jsonschema-rs)",
    );
    let schema = std::env::var("MEDISLOT_TEST_FHIR_SCHEMA")
        .expect("MEDISLOT_TEST_FHIR_SCHEMA is not set: run scripts/test, which fetches HL7's fhir.schema.json");
    let check_script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fhir_schema_check.py");
    let out = std::process::Command::new(python)
        .args([check_script, &dump.path().to_string_lossy(), &schema])
        .output()
        .expect("run the FHIR JSON Schema check");
    assert!(out.status.success(), "fhir.schema.json refused:\n{}", String::from_utf8_lossy(&out.stdout));
}

/// A visit type may keep a cut-off of its own: slot lists of it say so, and
/// past it patients no longer cancel that visit online (other visits keep the
/// clinic's rule).
#[tokio::test]
async fn a_visit_type_keeps_its_own_cut_off() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "visitcut").await;
    let p = register(&srv, &http, "visitcut-patient@example.org", "patient").await;
    let path = format!("/doctors/{}/visit-types", w.doctor_id);
    let types = |cutoff: Value| {
        json!({"visit_types": [
            {"code": "open", "name": "Open visit", "duration_minutes": 30, "modes": ["in_person"]},
            {"code": "strict", "name": "Strict visit", "duration_minutes": 30, "modes": ["in_person"], "cancel_cutoff_hours": cutoff}
        ]})
    };
    let (s, e) = w.doctor.put(&path, types(json!(721))).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!("visit_types[1].cancel_cutoff_hours")), "{e}");
    let (s, v) = w.doctor.put(&path, types(json!(48))).await;
    assert_eq!(s, 200, "{v}");
    let (_, open) = p.get(&format!("/doctors/{}/slots", w.doctor_id)).await;
    let (_, strict) = p.get(&format!("/doctors/{}/slots?visit_type=strict", w.doctor_id)).await;
    assert_eq!((&open["cancel_cutoff_hours"], &strict["cancel_cutoff_hours"]), (&json!(0), &json!(48)));
    let (s, a) = p.post("/appointments", json!({"slot_id": strict["slots"][1]["slot_id"]})).await;
    assert_eq!(s, 201, "{a}");
    let (s, e) = p.change(&format!("/appointments/{}/cancel", a["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((s.as_u16(), e["type"].as_str()), (409, Some("https://medislot.dev/problems/changes-closed")), "{e}");
    let (s, b) = p.post("/appointments", json!({"slot_id": open["slots"][4]["slot_id"]})).await;
    assert_eq!(s, 201, "{b}");
    let (s, v) = p.change(&format!("/appointments/{}/cancel", b["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((s.as_u16(), &v["status"]), (200, &json!("cancelled")), "{v}");
}
