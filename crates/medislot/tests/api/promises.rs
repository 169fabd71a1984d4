//! P1 (no overlap, ever), P2 (acknowledged bookings survive SIGKILL), P3 (idempotent retries), P5 (authorization matrix).

use crate::helpers::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn patients(srv: &TestServer, http: &reqwest::Client, tag: &str, n: usize) -> Vec<User> {
    let futs = (0..n).map(|i| {
        let http = http.clone();
        let email = format!("p{i}-{tag}@example.org");
        async move { register(srv, &http, &email, "patient").await }
    });
    join_all(futs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p1_one_hundred_clients_racing_for_one_slot_get_one_booking() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "race").await;
    let racers = patients(&srv, &http, "race", 100).await;
    let slot = free_slots(&racers[0], &w.doctor_id).await[3]["slot_id"].as_str().unwrap().to_string();
    let answers =
        join_all(
            racers.iter().map(|p| {
                let slot = slot.clone();
                async move {
                    p.send(Method::POST, "/appointments", Some(json!({"slot_id": slot, "reason": "race"})), &[]).await
                }
            }),
        )
        .await;
    let won = answers.iter().filter(|(s, _, _)| *s == StatusCode::CREATED).count();
    let lost: Vec<_> = answers.iter().filter(|(s, _, _)| *s == StatusCode::CONFLICT).collect();
    assert_eq!(won, 1, "exactly one winner");
    assert_eq!(lost.len(), 99, "every loser a clean 409: {:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    for (_, body, _) in &lost {
        assert_eq!(body["type"], "https://medislot.dev/problems/slot-taken");
        let alts = body["alternatives"].as_array().unwrap();
        assert!(!alts.is_empty() && alts.len() <= 5, "up to 5 alternatives: {body}");
        assert!(alts.iter().all(|a| a["slot_id"] != slot.as_str()));
    }
    let (_, agenda) = w.doctor.get("/appointments?status=booked").await;
    assert_eq!(agenda["total"], 1);
}

#[tokio::test]
async fn p1_overlapping_intervals_of_different_lengths_are_refused() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "overlap").await;
    let p1 = register(&srv, &http, "a-overlap@example.org", "patient").await;
    let p2 = register(&srv, &http, "b-overlap@example.org", "patient").await;
    let slots = free_slots(&p1, &w.doctor_id).await;
    // Book a 30-minute slot, then the doctor switches to 20-minute slots.
    let booked = slots.iter().find(|s| s["local_start"].as_str().unwrap().contains("T10:00:00")).unwrap();
    let (s, a) = p1.post("/appointments", json!({"slot_id": booked["slot_id"]})).await;
    assert_eq!(s, 201, "{a}");
    let (s, _) = w
        .doctor
        .put(
            &format!("/doctors/{}/schedule", w.doctor_id),
            json!({"weekly": every_day("00:00", "23:40", 20), "min_notice_minutes": 0, "horizon_days": 30}),
        )
        .await;
    assert_eq!(s, 200);
    // The existing appointment is untouched by the schedule change…
    let (s, still) = p1.get(&format!("/appointments/{}", a["id"].as_str().unwrap())).await;
    assert_eq!((s, still["status"].as_str()), (StatusCode::OK, Some("booked")));
    // …and the 20-minute slots that would overlap it are neither offered nor bookable.
    let start = booked["start"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let doctor: medislot_domain::DoctorId = w.doctor_id.parse().unwrap();
    let overlapping = medislot_domain::SlotId::new(doctor, start + jiff::SignedDuration::from_mins(20)).encode();
    let offered: Vec<String> =
        free_slots(&p2, &w.doctor_id).await.iter().map(|s| s["slot_id"].as_str().unwrap().to_string()).collect();
    assert!(!offered.contains(&overlapping), "an overlapping slot must not be offered");
    let (s, body) = p2.post("/appointments", json!({"slot_id": overlapping})).await;
    assert_eq!(s, 409, "a 20-minute slot overlapping a 30-minute booking: {body}");
    assert_eq!(body["type"], "https://medislot.dev/problems/slot-taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p1_two_processes_on_one_database_give_one_winner() {
    let first = TestServer::start().await;
    let http = client();
    let w = world(&first, &http, "twoproc").await;
    let second = first.sibling(&[]);
    let racers = patients(&first, &http, "twoproc", 40).await;
    let slot = free_slots(&racers[0], &w.doctor_id).await[5]["slot_id"].as_str().unwrap().to_string();
    let answers = join_all(racers.iter().enumerate().map(|(i, p)| {
        let base = if i % 2 == 0 { first.url.clone() } else { second.url.clone() };
        let mut p = p.clone();
        p.base = base;
        let slot = slot.clone();
        async move { p.post("/appointments", json!({"slot_id": slot})).await.0 }
    }))
    .await;
    assert_eq!(answers.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 39, "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p2_every_acknowledged_booking_survives_sigkill() {
    let mut srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "crash").await;
    let booker = patients(&srv, &http, "crash", 8).await;
    let slots = free_slots(&booker[0], &w.doctor_id).await;
    // Book distinct slots concurrently, and kill the server while they are in
    // flight: as soon as the first few are acknowledged (however slow the
    // machine is today), with most still to answer.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = slots
        .iter()
        .take(200)
        .enumerate()
        .map(|(i, s)| {
            let p = booker[i % booker.len()].clone();
            let slot = s["slot_id"].as_str().unwrap().to_string();
            let acked = acked.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(i as u64 * 3)).await;
                let r = p
                    .http
                    .post(format!("{}/api/v1/appointments", p.base))
                    .bearer_auth(&p.token)
                    .json(&json!({"slot_id": slot}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let id = r.json::<serde_json::Value>().await.ok()?["id"].as_str()?.to_string();
                        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Some(id)
                    }
                    _ => None,
                }
            })
        })
        .collect();
    let t0 = std::time::Instant::now();
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 3 && t0.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    srv.kill9();
    let acknowledged: Vec<String> = join_all(tasks).await.into_iter().filter_map(|r| r.ok().flatten()).collect();
    assert!(!acknowledged.is_empty(), "some bookings were acknowledged before the kill");
    let srv2 = srv.sibling(&[]);
    let mut missing = 0;
    for id in &acknowledged {
        // Each booking belongs to one of several patients: ask as the platform admin.
        let mut admin = w.admin.clone();
        admin.base = srv2.url.clone();
        let (s, a) = admin.get(&format!("/appointments/{id}")).await;
        if s != 200 || a["status"] != "booked" {
            missing += 1;
        }
    }
    println!("p2: {} bookings acknowledged before SIGKILL, {} missing after restart", acknowledged.len(), missing);
    assert_eq!(missing, 0);
}

#[tokio::test]
async fn p3_retries_with_one_idempotency_key_book_once() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "idem").await;
    let p = register(&srv, &http, "p-idem@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    let body = json!({"slot_id": slots[2]["slot_id"], "reason": "retry me"});
    let key = [("Idempotency-Key", "3f1e2c7a-retry-1")];
    let (s1, a1, _) = p.send(Method::POST, "/appointments", Some(body.clone()), &key).await;
    let (s2, a2, h2) = p.send(Method::POST, "/appointments", Some(body.clone()), &key).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a1["id"], a2["id"], "the replay returns the same appointment");
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    let (_, mine) = p.get("/appointments").await;
    assert_eq!(mine["total"], 1, "never a second appointment");
    // Concurrent retries of one key: still one appointment.
    let other = json!({"slot_id": slots[4]["slot_id"]});
    let key2 = [("Idempotency-Key", "concurrent-key")];
    let answers = join_all((0..10).map(|_| p.send(Method::POST, "/appointments", Some(other.clone()), &key2))).await;
    let ids: std::collections::BTreeSet<String> =
        answers.iter().filter(|a| a.0 == 201).map(|a| a.1["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1, "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    // The same key with a different body is refused.
    let (s, e, _) = p.send(Method::POST, "/appointments", Some(json!({"slot_id": slots[6]["slot_id"]})), &key).await;
    assert_eq!(s, 422);
    assert_eq!(e["errors"][0]["field"], "Idempotency-Key");
    let (_, mine) = p.get("/appointments").await;
    assert_eq!(mine["total"], 2);
}

#[tokio::test]
async fn p5_nobody_sees_or_changes_what_is_not_theirs() {
    let srv = TestServer::start().await;
    let http = client();
    let w1 = world(&srv, &http, "m1").await;
    // A second clinic with its own admin and doctor.
    let ca2 = register(&srv, &http, "ca2-m@example.org", "clinic_admin").await;
    let (_, c2) = ca2.post("/clinics", json!({"name": "Clinic 2", "address": "NYC", "latitude": 40.7, "longitude": -74.0, "time_zone": "America/New_York"})).await;
    let dr2 = register(&srv, &http, "dr2-m@example.org", "doctor").await;
    let d2 = add_doctor(&dr2, &w1.admin, c2["id"].as_str().unwrap(), "dermatology").await;
    let pa = register(&srv, &http, "pa-m@example.org", "patient").await;
    let pb = register(&srv, &http, "pb-m@example.org", "patient").await;
    let slot = free_slots(&pa, &w1.doctor_id).await[1]["slot_id"].clone();
    let (_, appt) = pa.post("/appointments", json!({"slot_id": slot})).await;
    let id = appt["id"].as_str().unwrap();
    let anon = User { id: String::new(), token: "ms_not-a-token".into(), base: srv.url.clone(), http: http.clone() };

    // Reads of the appointment: hidden (404) from everyone unrelated.
    for (who, u) in [("patient B", &pb), ("doctor of clinic 2", &dr2), ("admin of clinic 2", &ca2)] {
        let (s, _) = u.get(&format!("/appointments/{id}")).await;
        assert_eq!(s, 404, "{who} must not see patient A's appointment");
        let (_, list) = u.get("/appointments").await;
        assert!(list["items"].as_array().unwrap().iter().all(|a| a["id"] != id), "{who} must not list it");
    }
    for (who, u) in [
        ("patient A", &pa),
        ("its doctor", &w1.doctor),
        ("its clinic admin", &w1.clinic_admin),
        ("platform admin", &w1.admin),
    ] {
        let (s, _) = u.get(&format!("/appointments/{id}")).await;
        assert_eq!(s, 200, "{who} sees it");
    }
    // Changes: hidden ones 404, visible but not theirs 403.
    for u in [&pb, &dr2, &ca2] {
        assert_eq!(u.change(&format!("/appointments/{id}/cancel"), json!({})).await.0, 404);
        assert_eq!(u.post(&format!("/appointments/{id}/arrived"), json!({})).await.0, 404);
    }
    assert_eq!(
        pa.post(&format!("/appointments/{id}/arrived"), json!({})).await.0,
        403,
        "a patient cannot mark arrived"
    );
    // Doctor X vs doctor Y's profile and schedule; clinic admin 1 vs clinic 2.
    let sched = json!({"weekly": every_day("09:00", "10:00", 30)});
    assert_eq!(dr2.put(&format!("/doctors/{}/schedule", w1.doctor_id), sched.clone()).await.0, 403);
    assert_eq!(w1.doctor.put(&format!("/doctors/{d2}/schedule"), sched.clone()).await.0, 403);
    assert_eq!(w1.clinic_admin.put(&format!("/doctors/{d2}/schedule"), sched.clone()).await.0, 403);
    assert_eq!(
        ca2.send(Method::PATCH, &format!("/doctors/{}", w1.doctor_id), Some(json!({"bio": "x"})), &[]).await.0,
        403
    );
    assert_eq!(
        pa.post(
            &format!("/doctors/{d2}/time-off"),
            json!({"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"})
        )
        .await
        .0,
        403
    );
    // Only platform admins verify.
    for u in [&pa, &w1.doctor, &w1.clinic_admin] {
        assert_eq!(
            u.post(&format!("/doctors/{d2}/verification"), json!({"decision": "rejected", "reason": "x"})).await.0,
            403
        );
    }
    // Patients do not create clinics; anonymous callers (bad token) get 401 everywhere private.
    assert_eq!(
        pa.post(
            "/clinics",
            json!({"name": "x", "address": "y", "latitude": 1.0, "longitude": 1.0, "time_zone": "Europe/Paris"})
        )
        .await
        .0,
        403
    );
    for (m, path) in [
        (Method::GET, format!("/appointments/{id}")),
        (Method::GET, "/appointments".into()),
        (Method::POST, "/holds".into()),
    ] {
        let r = http.request(m.clone(), srv.api(&path)).json(&json!({"slot_id": slot})).send().await.unwrap();
        assert_eq!(r.status(), 401, "anonymous {m} {path}");
        assert_eq!(anon.send(m, &path, Some(json!({"slot_id": slot})), &[]).await.0, 401, "bad token {path}");
    }
    // Doctors and clinic admins cannot book for themselves through the patient API.
    assert_eq!(w1.doctor.post("/appointments", json!({"slot_id": slot})).await.0, 403);
}

/// One patient, eight doctors (visits of 20, 30 and 45 minutes), every
/// request at once for a visit covering the same minute, holds and bookings
/// mixed: one answer is 201, every other a 409 `patient-busy` naming that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_patient_racing_for_overlapping_visits_with_eight_doctors_gets_one() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "own-time").await;
    let mut doctors = vec![w.doctor_id.clone()];
    for (i, minutes) in [20, 45, 30, 20, 45, 30, 20].into_iter().enumerate() {
        let user = register(&srv, &http, &format!("dr{i}-own-time@example.org"), "doctor").await;
        let id = add_doctor(&user, &w.admin, &w.clinic_id, "cardiology").await;
        let weekly = every_day("00:00", "23:30", minutes);
        let (s, v) = user
            .put(
                &format!("/doctors/{id}/schedule"),
                json!({"weekly": weekly, "min_notice_minutes": 0, "horizon_days": 30}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        doctors.push(id);
    }
    let p = register(&srv, &http, "p-own-time@example.org", "patient").await;
    let at = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let minute = at(&free_slots(&p, &w.doctor_id).await[8], "start") + jiff::SignedDuration::from_mins(10);
    let mut requests = Vec::new();
    for (i, d) in doctors.iter().enumerate() {
        let slots = free_slots(&p, d).await;
        let slot = slots
            .iter()
            .find(|s| at(s, "start") <= minute && minute < at(s, "end"))
            .expect("a visit covering the minute");
        requests.push((if i % 2 == 0 { "/appointments" } else { "/holds" }, slot["slot_id"].clone()));
    }
    let answers = join_all(requests.iter().map(|(path, slot)| p.post(path, json!({"slot_id": slot})))).await;
    let won: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).collect();
    assert_eq!(won.len(), 1, "one of the eight: {answers:?}");
    for (s, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*s, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["type"], "https://medislot.dev/problems/patient-busy", "{body}");
        assert_eq!(body["conflicting_appointment"]["id"], won[0].1["id"], "the refusal names the winner: {body}");
    }
    let (_, mine) = p.get("/appointments").await;
    assert_eq!(mine["total"], 1, "{mine}");
}
