//! What a patient sees when the clinic's home region is reachable, and when it
//! is not: `strict` answers 503 fast, `available` accepts as pending and
//! settles it after the partition heals — booked, or conflict with alternatives.

use crate::harness::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn link_state(r: &Region, http: &reqwest::Client, peer: &str) -> String {
    let v = r.regions(http).await;
    let p = v["peers"].as_array().unwrap().iter().find(|p| p["region"] == peer).cloned().unwrap();
    p["state"].as_str().unwrap().to_string()
}

async fn wait_state(r: &Region, http: &reqwest::Client, peer: &str, state: &str) {
    let t0 = Instant::now();
    while link_state(r, http, peer).await != state {
        assert!(t0.elapsed() < Duration::from_secs(10), "{} never saw {peer} {state}", r.name);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn slots_via(u: &User, doctor: &str) -> Vec<Value> {
    let (s, v) = u.get(&format!("/doctors/{doctor}/slots")).await;
    assert_eq!(s, 200, "{v}");
    v["slots"].as_array().unwrap().clone()
}

async fn book(u: &User, slot: &Value, key: &str) -> (StatusCode, Value, Duration) {
    let t0 = Instant::now();
    let (s, v, _) = u
        .send(
            reqwest::Method::POST,
            "/appointments",
            Some(json!({"slot_id": slot["slot_id"], "reason": key})),
            &[("Idempotency-Key", key)],
        )
        .await;
    (s, v, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strict_refuses_fast_and_available_accepts_as_pending_then_settles() {
    let _turn = crate::one_at_a_time().await;
    let mut mesh = Mesh::start().await;
    let http = client();
    let eu = mesh.region("eu");
    eu.create_admin("admin@eu.example");
    let admin = login_at(eu, &http, "admin@eu.example").await;
    let (_, strict) = clinic_with_doctor(eu, &http, &admin, "strict").await;
    let (_, available) = clinic_with_doctor(eu, &http, &admin, "available").await;
    let us = mesh.region("us");
    let patient = user(us, &http, "p@us.example", "patient").await;
    let local = user(eu, &http, "p@eu.example", "patient").await;
    converged(&mesh, &http, 2, Duration::from_secs(20)).await;

    // Remote doctors are searched and listed locally, from the replica, with its age.
    let (_, v) = patient.get(&format!("/doctors/{strict}/slots")).await;
    assert_eq!(v["region"], "eu");
    assert!(v["as_of"].is_string(), "{v}");
    let (_, found) = patient.get("/doctors?specialty=cardiology").await;
    let hits = found["items"].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h["as_of"].is_string() && h["clinic"]["region"] == "eu"), "{found}");
    let (_, at_home) = local.get("/doctors?specialty=cardiology").await;
    assert!(at_home["items"][0].get("as_of").is_none(), "a home doctor is not a replica: {at_home}");
    let strict_slots = slots_via(&patient, &strict).await;
    let avail_slots = slots_via(&patient, &available).await;

    // Reachable: the home region answers, 201.
    let (s, a, _) = book(&patient, &strict_slots[10], "k-1").await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let home = mesh.region("eu").store().await;
    let id = a["id"].as_str().unwrap().parse().unwrap();
    let at_home = home.appointment(medislot_domain::AppointmentId(id)).await.unwrap().expect("booked at home");
    assert_eq!((at_home.status.as_str(), at_home.origin_region.as_str()), ("booked", "us"));
    // The same key again: the same appointment.
    let (s, again, _) = book(&patient, &strict_slots[10], "k-1").await;
    assert_eq!((s, &again["id"]), (StatusCode::CREATED, &a["id"]));
    // Taken: 409 with alternatives, answered by the home region's constraint.
    let other = user(us, &http, "p2@us.example", "patient").await;
    let (s, v, _) = book(&other, &strict_slots[10], "k-2").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // The patient cancels and moves it from their own region, through eu.
    let (s, moved, _) = patient
        .send(
            reqwest::Method::POST,
            &format!("/appointments/{id}/reschedule"),
            Some(json!({"slot_id": strict_slots[11]["slot_id"]})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!((s, moved["start"].as_str()), (StatusCode::OK, strict_slots[11]["start"].as_str()), "{moved}");
    let (s, v) = patient.change(&format!("/appointments/{id}/cancel"), json!({"reason": "moved away"})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{v}");
    let at_home = home.appointment(medislot_domain::AppointmentId(id)).await.unwrap().unwrap();
    assert_eq!((at_home.status.as_str(), at_home.cancel_reason.as_deref()), ("cancelled", Some("moved away")));
    assert_eq!(patient.get(&format!("/appointments/{id}")).await.1["status"], "cancelled");
    let (_, second, _) = book(&patient, &strict_slots[20], "k-8").await;
    let second_id = second["id"].as_str().unwrap().to_string();

    // The web page books a remote doctor directly (holds are for local doctors).
    let booked = web_book(us_url(&mesh), &strict_slots[22]["slot_id"]).await;
    assert!(booked.starts_with("/appointments/"), "{booked}");
    let wid = booked.trim_start_matches("/appointments/");
    assert_eq!(patient.get(&format!("/appointments/{wid}")).await.1["status"], "booked");

    // Cut eu off.
    mesh.isolate("eu", Fault::Blackhole);
    let us = mesh.region("us");
    wait_state(us, &http, "eu", "down").await;
    // Search stays local: us answers from its replica of eu's read model, with
    // its age, without waiting on the black-holed link (a fan-out would hang).
    let t0 = Instant::now();
    let (s, cut_off) = patient.get("/doctors?specialty=cardiology").await;
    let took = t0.elapsed();
    assert_eq!(s, 200, "{cut_off}");
    let hits = cut_off["items"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{cut_off}");
    assert!(hits.iter().all(|h| h["as_of"].is_string() && h["next_slot"].is_object()), "{cut_off}");
    assert!(took < Duration::from_secs(2), "a cut-off peer slowed search: {took:?}");
    // strict: 503 home-region-unreachable, fast (the circuit is open), nothing recorded.
    let (s, v, took) = book(&patient, &strict_slots[12], "k-3").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["type"].as_str().unwrap().ends_with("/home-region-unreachable"), "{v}");
    assert!(took < Duration::from_millis(300), "answered in {took:?}");
    // Changes to appointments homed in eu are refused too, nothing queued.
    let (s, v) = patient.change(&format!("/appointments/{second_id}/cancel"), json!({})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    // available: 202 pending, readable in the patient's region.
    let (s, pending, _) = book(&patient, &avail_slots[12], "k-4").await;
    assert_eq!((s, pending["status"].as_str()), (StatusCode::ACCEPTED, Some("pending")), "{pending}");
    let pid = pending["id"].as_str().unwrap();
    assert_eq!(patient.get(&format!("/appointments/{pid}")).await.1["status"], "pending");
    assert_eq!(patient.get("/regions").await.0, StatusCode::UNAUTHORIZED, "patients do not read operations data");
    let regions = us.regions(&reqwest::Client::new()).await;
    assert_eq!(regions["forwarding_pending"], 1, "{regions}");
    // A second pending request for a slot that eu gives away locally meanwhile: conflict later.
    let (s, doomed, _) = book(&other, &avail_slots[14], "k-5").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{doomed}");
    // Local bookings keep working in the cut-off region, in both policies.
    let (s, v, _) = book(&local, &avail_slots[14], "k-6").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, _) = book(&local, &strict_slots[16], "k-7").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Heal: every pending request settles; retrying one with its key once the
    // link is back answers with the booking itself.
    mesh.heal();
    wait_state(mesh.region("us"), &http, "eu", "up").await;
    let (s, retried, _) = book(&patient, &avail_slots[12], "k-4").await;
    assert_eq!((s, retried["id"].as_str()), (StatusCode::CREATED, pending["id"].as_str()), "{retried}");
    let t0 = Instant::now();
    let did = doomed["id"].as_str().unwrap();
    loop {
        let a = patient.get(&format!("/appointments/{pid}")).await.1;
        let b = other.get(&format!("/appointments/{did}")).await.1;
        if a["status"] != "pending" && b["status"] != "pending" {
            assert_eq!(a["status"], "booked", "{a}");
            assert_eq!(b["status"], "conflict", "{b}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "still pending: {a} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let booked = home.appointment(medislot_domain::AppointmentId(pid.parse().unwrap())).await.unwrap().unwrap();
    assert_eq!(booked.status.as_str(), "booked");
    assert!(home.appointment(medislot_domain::AppointmentId(did.parse().unwrap())).await.unwrap().is_none());
    // The patient is told of the conflict, with alternatives.
    let t0 = Instant::now();
    loop {
        let (_, inbox) = other.get("/notifications").await;
        if let Some(n) = inbox.as_array().unwrap().iter().find(|n| n["kind"] == "conflict") {
            assert!(n["title"].as_str().unwrap().starts_with("Not booked"), "{n}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no conflict notification: {inbox}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The replica in us now shows eu's new busy times.
    let t0 = Instant::now();
    loop {
        let free = slots_via(&patient, &available).await;
        if !free.iter().any(|s| s["slot_id"] == avail_slots[14]["slot_id"]) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "replica never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mesh.region_mut("ap").kill9();
}

fn us_url(mesh: &Mesh) -> String {
    mesh.region("us").url.clone()
}

/// Signs in on the web as p@us.example and presses "Hold this slot" on the
/// slot's page; returns where the answer redirects.
async fn web_book(base: String, slot_id: &Value) -> String {
    let web = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    let login = web
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "p@us.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let session = cookie(&login, "medislot_session").expect("a session cookie");
    let slot = slot_id.as_str().unwrap();
    let page = web.get(format!("{base}/book/{slot}")).header("cookie", &session).send().await.unwrap();
    let csrf = cookie(&page, "medislot_csrf").expect("a CSRF cookie");
    let token = csrf.trim_start_matches("medislot_csrf=").to_string();
    let answer = web
        .post(format!("{base}/book/{slot}"))
        .header("cookie", format!("{session}; {csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("action=hold&csrf={token}"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_redirection(), "{}: {}", answer.status(), answer.text().await.unwrap());
    answer.headers()["location"].to_str().unwrap().to_string()
}

/// A visit booked from another region keeps its visit type and the patient's
/// answers: the slot id carries the type, the answers travel with the
/// forwarded booking — also when it waited as pending through a partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visit_booked_across_regions_keeps_its_type_and_answers_even_when_it_waited() {
    let _turn = crate::one_at_a_time().await;
    let mut mesh = Mesh::start().await;
    let http = client();
    let eu = mesh.region("eu");
    eu.create_admin("admin@eu.example");
    let admin = login_at(eu, &http, "admin@eu.example").await;
    let (_, doctor) = clinic_with_doctor(eu, &http, &admin, "available").await;
    let dr = login_at(eu, &http, "dr-available@eu.example").await;
    let (s, v) = dr
        .put(
            &format!("/doctors/{doctor}/visit-types"),
            json!({"visit_types": [{"code": "long", "name": "Long visit", "duration_minutes": 60, "modes": ["in_person"],
                "questions": [{"id": "why", "text": "Why?", "kind": "text", "required": true}]}]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let patient = user(mesh.region("us"), &http, "visit@us.example", "patient").await;
    converged(&mesh, &http, 1, Duration::from_secs(20)).await;
    // us's copy of the doctor carries the visit types once replicated.
    let t0 = Instant::now();
    let slots = loop {
        let (s, v) = patient.get(&format!("/doctors/{doctor}/slots?visit_type=long")).await;
        if s == StatusCode::OK {
            break v["slots"].as_array().unwrap().clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "visit types never replicated: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(slots.iter().all(|s| s["visit_type"] == "long"));
    let home = mesh.region("eu").store().await;
    let at_home = |id: &str| {
        let (home, id) = (home.clone(), medislot_domain::AppointmentId(id.parse().unwrap()));
        async move { home.appointment(id).await.unwrap() }
    };
    let book = |slot: &Value, key: &str, why: Option<&str>| {
        let body = match why {
            Some(w) => json!({"slot_id": slot["slot_id"], "intake": {"why": w}}),
            None => json!({"slot_id": slot["slot_id"]}),
        };
        let (patient, key) = (patient.clone(), key.to_string());
        async move { patient.send(reqwest::Method::POST, "/appointments", Some(body), &[("Idempotency-Key", &key)]).await }
    };

    // The answers are checked where the patient gives them.
    let (s, e, _) = book(&slots[4], "v-0", None).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!("intake.why")), "{e}");
    // Reachable: booked at home with its visit and answers.
    let (s, a, _) = book(&slots[4], "v-1", Some("knee pain")).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let kept = at_home(a["id"].as_str().unwrap()).await.expect("booked at home");
    let visit = kept.visit.expect("the visit at home");
    assert_eq!((visit.code.as_str(), visit.intake[0].answer.as_str()), ("long", "knee pain"));
    assert_eq!(kept.end.duration_since(kept.start).as_mins(), 60);

    // Cut off: pending; once healed, settled with the same visit and answers.
    mesh.isolate("eu", Fault::Blackhole);
    wait_state(mesh.region("us"), &http, "eu", "down").await;
    let (s, pending, _) = book(&slots[8], "v-2", Some("back pain")).await;
    assert_eq!((s, pending["status"].as_str()), (StatusCode::ACCEPTED, Some("pending")), "{pending}");
    mesh.heal();
    let pid = pending["id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let settled = loop {
        if let Some(a) = at_home(&pid).await {
            break a;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the pending visit never reached home");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let visit = settled.visit.expect("the visit at home");
    assert_eq!((visit.code.as_str(), visit.intake[0].answer.as_str()), ("long", "back pain"));
    assert_eq!(settled.end.duration_since(settled.start).as_mins(), 60);
    mesh.region_mut("ap").kill9();
}
