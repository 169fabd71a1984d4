//! The booking journey: search, hold, book, read with ETag, reschedule and
//! cancel with If-Match, agenda actions, audit; verification gates search.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn hold_book_reschedule_cancel_with_etags_and_audit() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "flow").await;
    let p = register(&srv, &http, "p-flow@example.org", "patient").await;
    let other = register(&srv, &http, "o-flow@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    assert_eq!(slots[0]["time_zone"], "Europe/Paris");
    assert!(
        slots[0]["local_start"].as_str().unwrap().ends_with("+01:00")
            || slots[0]["local_start"].as_str().unwrap().ends_with("+02:00")
    );

    // Hold: the slot disappears for others, and another patient cannot take it.
    let (s, hold) = p.post("/holds", json!({"slot_id": slots[1]["slot_id"]})).await;
    assert_eq!(s, 201, "{hold}");
    assert_eq!(hold["status"], "held");
    assert!(hold["hold_expires_at"].as_str().is_some());
    assert!(free_slots(&other, &w.doctor_id).await.iter().all(|s| s["slot_id"] != slots[1]["slot_id"]));
    let (s, _) = other.post("/appointments", json!({"slot_id": slots[1]["slot_id"]})).await;
    assert_eq!(s, 409);
    // Booking the held slot confirms the hold (same appointment).
    let (s, a, h) = p
        .send(Method::POST, "/appointments", Some(json!({"slot_id": slots[1]["slot_id"], "reason": "check-up"})), &[])
        .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["id"], hold["id"]);
    assert_eq!(a["status"], "booked");
    assert!(h.get("location").is_some());
    let id = a["id"].as_str().unwrap().to_string();

    // Read with ETag.
    let (s, got, h) = p.send(Method::GET, &format!("/appointments/{id}"), None, &[]).await;
    assert_eq!(s, 200);
    let etag = h.get("etag").unwrap().to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", got["version"]));

    // Reschedule with a stale version: 412, nothing changes.
    let (s, e, _) = p
        .send(
            Method::POST,
            &format!("/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slots[5]["slot_id"]})),
            &[("If-Match", "\"999\"")],
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{e}");
    assert_eq!(e["current_version"], got["version"]);
    // Reschedule onto a taken slot: 409, and the appointment keeps its time (never zero appointments).
    let (s, _) = other.post("/appointments", json!({"slot_id": slots[7]["slot_id"]})).await;
    assert_eq!(s, 201);
    let (s, _, _) = p
        .send(
            Method::POST,
            &format!("/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slots[7]["slot_id"]})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(s, 409);
    let (_, still) = p.get(&format!("/appointments/{id}")).await;
    assert_eq!((still["start"].clone(), still["status"].clone()), (a["start"].clone(), json!("booked")));
    // Reschedule for real: the old slot is free again, the new one is taken (never two appointments).
    let (s, moved, h) = p
        .send(
            Method::POST,
            &format!("/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slots[5]["slot_id"]})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["start"], slots[5]["start"]);
    let free: Vec<_> = free_slots(&other, &w.doctor_id).await.into_iter().map(|s| s["slot_id"].clone()).collect();
    assert!(free.contains(&slots[1]["slot_id"]) && !free.contains(&slots[5]["slot_id"]));
    let (_, mine) = p.get("/appointments").await;
    assert_eq!(mine["total"], 1);
    // The old ETag is now stale for cancel; the new one works once.
    let (s, _, _) =
        p.send(Method::POST, &format!("/appointments/{id}/cancel"), Some(json!({})), &[("If-Match", &etag)]).await;
    assert_eq!(s, 412);
    let new_etag = h.get("etag").unwrap().to_str().unwrap().to_string();
    let (s, c, _) = p
        .send(
            Method::POST,
            &format!("/appointments/{id}/cancel"),
            Some(json!({"reason": "feeling better"})),
            &[("If-Match", &new_etag)],
        )
        .await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (s, _) = p.change(&format!("/appointments/{id}/cancel"), json!({})).await;
    assert_eq!(s, 409, "a cancel works once");

    // Audit: who, when, from, to — for every change.
    let (s, audit) = p.get(&format!("/appointments/{id}/audit")).await;
    assert_eq!(s, 200);
    let steps: Vec<(Option<&str>, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["from_status"].as_str(), r["to_status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        vec![(None, "held"), (Some("held"), "booked"), (Some("booked"), "booked"), (Some("booked"), "cancelled")]
    );
    assert!(audit.as_array().unwrap().iter().all(|r| r["actor_id"] == p.id.as_str() && r["at"].as_str().is_some()));
    assert_ne!(audit[2]["from_start"], audit[2]["to_start"], "the reschedule records from and to");
}

#[tokio::test]
async fn doctors_run_their_agenda_and_patients_cannot_mark() {
    // Slots are 30 minutes apart from now on: the second starts within 90 minutes, the
    // ninth after three and a half hours.
    let srv = TestServer::start_with(&["--arrival-window-minutes", "180"]);
    let http = client();
    let w = world(&srv, &http, "agenda").await;
    let p = register(&srv, &http, "p-agenda@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    // Beyond the arrival window: too early to have arrived.
    let (_, later) = p.post("/appointments", json!({"slot_id": slots[8]["slot_id"]})).await;
    let (s, early) =
        w.doctor.post(&format!("/appointments/{}/arrived", later["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 409, "{early}");
    assert!(early["detail"].as_str().unwrap().contains("too early"), "{early}");
    let (_, a) = p.post("/appointments", json!({"slot_id": slots[1]["slot_id"]})).await;
    let id = a["id"].as_str().unwrap();
    // Within the arrival window: no-show and fulfilled are refused, arrived is fine.
    assert_eq!(w.doctor.post(&format!("/appointments/{id}/noshow"), json!({})).await.0, 409);
    let (s, arrived) = w.doctor.post(&format!("/appointments/{id}/arrived"), json!({})).await;
    assert_eq!((s, arrived["status"].as_str()), (StatusCode::OK, Some("arrived")), "{arrived}");
    assert_eq!(w.doctor.post(&format!("/appointments/{id}/arrived"), json!({})).await.0, 409);
    // The clinic cancels with a reason; the patient sees it.
    let (s, c) = w.clinic_admin.change(&format!("/appointments/{id}/cancel"), json!({"reason": "doctor ill"})).await;
    assert_eq!(s, 200, "{c}");
    let (_, seen) = p.get(&format!("/appointments/{id}")).await;
    assert_eq!((seen["status"].as_str(), seen["cancel_reason"].as_str()), (Some("cancelled"), Some("doctor ill")));
    // The doctor's agenda lists it.
    let (_, agenda) = w.doctor.get("/appointments").await;
    assert_eq!(agenda["total"], 2);
}

#[tokio::test]
async fn only_verified_doctors_are_searchable_and_bookable_and_search_sorts_by_soonest() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "search").await;
    let p = register(&srv, &http, "p-search@example.org", "patient").await;
    // A second doctor, pending verification, with a schedule.
    let dr2 = register(&srv, &http, "dr2-search@example.org", "doctor").await;
    let (_, d2) = dr2.post("/doctors", json!({"clinic_id": w.clinic_id, "name": "Dr Pending", "specialties": ["cardiology"], "languages": ["de"], "modes": ["online"], "licence_number": "LIC-2"})).await;
    let d2 = d2["id"].as_str().unwrap().to_string();
    let (s, _) = dr2
        .put(
            &format!("/doctors/{d2}/schedule"),
            json!({"weekly": every_day("00:00", "23:30", 30), "min_notice_minutes": 0}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, hits) = p.get("/doctors?specialty=cardiology").await;
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(p.get(&format!("/doctors/{d2}")).await.0, 404, "unverified profiles are hidden");
    assert_eq!(dr2.get(&format!("/doctors/{d2}")).await.0, 200, "but visible to their owner");
    let slot = medislot_domain::SlotId::new(
        d2.parse().unwrap(),
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(30),
    )
    .encode();
    assert_eq!(p.post("/appointments", json!({"slot_id": slot})).await.0, 422);
    // The clinic has not accepted the doctor yet: no verification before that.
    let (s, e) = w.admin.post(&format!("/doctors/{d2}/verification"), json!({"decision": "verified"})).await;
    assert_eq!((s.as_u16(), e["errors"][0]["field"].as_str()), (422, Some("decision")), "{e}");
    let (s, e) = w.clinic_admin.post(&format!("/doctors/{d2}/membership"), json!({"decision": "accept"})).await;
    assert_eq!((s.as_u16(), e["membership"].as_str()), (200, Some("active")), "{e}");
    // Rejection needs a reason; verification makes the doctor searchable.
    let (s, b) = w.admin.post(&format!("/doctors/{d2}/verification"), json!({"decision": "rejected"})).await;
    assert_eq!((s.as_u16(), b["errors"][0]["field"].as_str()), (422, Some("reason")));
    assert_eq!(w.admin.post(&format!("/doctors/{d2}/verification"), json!({"decision": "verified"})).await.0, 200);
    // Book the first doctor's next few hours away: the second doctor is now sooner.
    let (s, _) = w.doctor.post(&format!("/doctors/{}/time-off", w.doctor_id), json!({"start": jiff::Timestamp::now().to_string(), "end": (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48)).to_string(), "reason": "congress"})).await;
    assert_eq!(s, 201);
    let (_, hits) = p.get("/doctors?specialty=cardiology&near=48.85,2.35&radius_km=10").await;
    let names: Vec<&str> =
        hits["items"].as_array().unwrap().iter().map(|h| h["doctor"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Dr Pending", "Dr Test"], "{hits}");
    assert!(hits["items"][0]["next_slot"]["slot_id"].as_str().is_some());
    assert!(hits["items"][0]["distance_km"].as_f64().unwrap() < 10.0);
    // Filters: language, mode, and distance.
    assert_eq!(p.get("/doctors?language=de").await.1["total"], 1);
    assert_eq!(p.get("/doctors?mode=online").await.1["total"], 1);
    assert_eq!(p.get("/doctors?near=40.7,-74.0&radius_km=50").await.1["total"], 0);
    // Pagination.
    let (_, page2) = p.get("/doctors?specialty=cardiology&per_page=1&page=2").await;
    assert_eq!((page2["total"].as_u64(), page2["items"].as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(page2["items"][0]["doctor"]["name"], "Dr Test");
    // By keyset: the first page's cursor leads to the same second page, and the last has none.
    let (_, first) = p.get("/doctors?specialty=cardiology&per_page=1").await;
    let cursor = first["next_cursor"].as_str().expect("a page with more after it has a cursor");
    let (_, next) = p.get(&format!("/doctors?specialty=cardiology&per_page=1&cursor={cursor}")).await;
    assert_eq!(next["items"][0]["doctor"]["name"], "Dr Test", "{next}");
    assert!(next.get("next_cursor").is_none(), "the last page: {next}");
    let (s, e) = p.get(&format!("/doctors?specialty=cardiology&cursor={cursor}&page=2")).await;
    assert_eq!((s.as_u16(), e["errors"][0]["field"].as_str()), (422, Some("page")), "a cursor beside a page: {e}");
}

#[tokio::test]
async fn a_taken_slot_offers_nearby_doctors_of_the_same_specialty_when_its_doctor_has_nothing_soon() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "alt").await;
    let dr2 = register(&srv, &http, "dr2-alt@example.org", "doctor").await;
    let d2 = add_doctor(&dr2, &w.admin, &w.clinic_id, "cardiology").await;
    let a = register(&srv, &http, "a-alt@example.org", "patient").await;
    let b = register(&srv, &http, "b-alt@example.org", "patient").await;
    let slot = free_slots(&a, &w.doctor_id).await[0].clone();
    assert_eq!(a.post("/appointments", json!({"slot_id": slot["slot_id"]})).await.0, 201);
    // The first doctor takes the next three weeks off: nothing soon.
    let start = slot["end"].as_str().unwrap().to_string();
    let end = (start.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_hours(24 * 21)).to_string();
    assert_eq!(
        w.doctor.post(&format!("/doctors/{}/time-off", w.doctor_id), json!({"start": start, "end": end})).await.0,
        201
    );
    let (s, body) = b.post("/appointments", json!({"slot_id": slot["slot_id"]})).await;
    assert_eq!(s, 409);
    let alts = body["alternatives"].as_array().unwrap();
    assert!(!alts.is_empty(), "{body}");
    assert!(
        alts.iter().all(|s| s["doctor_id"] == d2.as_str()),
        "alternatives come from the nearby cardiologist: {body}"
    );
}

/// The confirmation page's "add to calendar" file, read by an independent iCalendar parser.
#[tokio::test]
async fn add_to_calendar_gives_one_updatable_event() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "ics").await;
    let p = register(&srv, &http, "p-ics@example.org", "patient").await;
    let slot = free_slots(&p, &w.doctor_id).await[4].clone();
    let (s, a) = p.post("/appointments", json!({"slot_id": slot["slot_id"]})).await;
    assert_eq!(s, 201);
    let id = a["id"].as_str().unwrap();
    let ics = |who: &User| {
        let (http, url, token) =
            (http.clone(), format!("{}/appointments/{id}/calendar.ics", srv.url), who.token.clone());
        async move {
            let r = http.get(url).header("cookie", format!("medislot_session={token}")).send().await.unwrap();
            (
                r.status(),
                r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()),
                r.text().await.unwrap(),
            )
        }
    };
    let parse = |text: &str| -> serde_json::Value {
        let python = std::env::var("MEDISLOT_TEST_PYTHON")
            .expect("MEDISLOT_TEST_PYTHON is not set: run scripts/test, which creates the Python environment");
        let mut child = std::process::Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/ics_check.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "icalendar could not parse:\n{text}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (status, ct, text) = ics(&p).await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some("text/calendar; charset=utf-8"));
    let booked = parse(&text);
    assert_eq!(booked["status"], "CONFIRMED");
    assert_eq!(booked["start"], slot["start"].as_str().unwrap().replace('Z', "+00:00"));
    assert!(booked["location"].as_str().unwrap().contains("rue de Rivoli"));
    // Cancelled: the same event (UID), a higher SEQUENCE, STATUS:CANCELLED.
    let (s, _) = p.change(&format!("/appointments/{id}/cancel"), json!({})).await;
    assert_eq!(s, 200);
    let cancelled = parse(&ics(&p).await.2);
    assert_eq!(cancelled["uid"], booked["uid"]);
    assert!(cancelled["sequence"].as_i64() > booked["sequence"].as_i64());
    assert_eq!(cancelled["status"], "CANCELLED");
    // Nobody else's calendar gets it.
    let other = register(&srv, &http, "o-ics@example.org", "patient").await;
    assert_eq!(ics(&other).await.0, 404);
}

#[tokio::test]
async fn appointments_read_as_they_stand_and_changes_name_their_version() {
    let srv = TestServer::start_with(&["--hold-ttl-secs", "10"]);
    let http = client();
    let w = world(&srv, &http, "truth").await;
    let p = register(&srv, &http, "p-truth@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;

    // A hold past its time reads as expired at once, without waiting for a write.
    let (s, hold) = p.post("/holds", json!({"slot_id": slots[2]["slot_id"]})).await;
    assert_eq!((s, hold["status"].as_str()), (StatusCode::CREATED, Some("held")), "{hold}");
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let (_, seen) = p.get(&format!("/appointments/{}", hold["id"].as_str().unwrap())).await;
    assert_eq!((seen["status"].as_str(), seen["cancel_reason"].as_str()), (Some("cancelled"), Some("hold expired")));
    let (_, listed) = p.get("/appointments").await;
    assert_eq!(listed["items"][0]["status"], "cancelled", "{listed}");

    // Reschedule and cancel need If-Match (428 naming it), after authentication (401 first).
    let (_, a) = p.post("/appointments", json!({"slot_id": slots[4]["slot_id"]})).await;
    let id = a["id"].as_str().unwrap();
    for (path, body) in [
        (format!("/appointments/{id}/cancel"), json!({})),
        (format!("/appointments/{id}/reschedule"), json!({"slot_id": slots[6]["slot_id"]})),
    ] {
        let (s, e) = p.post(&path, body.clone()).await;
        assert_eq!(s, StatusCode::PRECONDITION_REQUIRED, "{e}");
        assert_eq!(e["errors"][0]["field"], "If-Match");
        let anonymous = http.post(srv.api(&path)).json(&body).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert!(anonymous.headers().get("www-authenticate").is_some(), "a 401 says how to authenticate");
    }
    let (_, still) = p.get(&format!("/appointments/{id}")).await;
    assert_eq!((still["status"].as_str(), still["version"].clone()), (Some("booked"), a["version"].clone()));

    // Two moves made against the same version: exactly one wins, the other is 412.
    let etag = format!("\"{}\"", a["version"]);
    let path = format!("/appointments/{id}/reschedule");
    let headers = [("If-Match", etag.as_str())];
    let (x, y) = tokio::join!(
        p.send(Method::POST, &path, Some(json!({"slot_id": slots[7]["slot_id"]})), &headers),
        p.send(Method::POST, &path, Some(json!({"slot_id": slots[8]["slot_id"]})), &headers),
    );
    let mut codes = [x.0.as_u16(), y.0.as_u16()];
    codes.sort();
    assert_eq!(codes, [200, 412]);
}

/// A patient is never booked twice at once: with a second doctor at a time
/// they already have, booking, holding and moving another appointment there
/// answer 409 `patient-busy` naming the appointment they have; the page says
/// so and links to it.
#[tokio::test]
async fn a_patient_already_busy_then_is_refused_naming_the_appointment_they_have() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "busy").await;
    let second = register(&srv, &http, "dr2-busy@example.org", "doctor").await;
    let other_doctor = add_doctor(&second, &w.admin, &w.clinic_id, "cardiology").await;
    let p = register(&srv, &http, "p-busy@example.org", "patient").await;
    let mine = free_slots(&p, &w.doctor_id).await;
    let theirs = free_slots(&p, &other_doctor).await;
    let (s, first) = p.post("/appointments", json!({"slot_id": mine[2]["slot_id"]})).await;
    assert_eq!(s, 201, "{first}");
    let same_time = theirs.iter().find(|t| t["start"] == mine[2]["start"]).expect("both doctors work then");

    for path in ["/appointments", "/holds"] {
        let (s, e) = p.post(path, json!({"slot_id": same_time["slot_id"]})).await;
        assert_eq!(s, 409, "{path}: {e}");
        assert_eq!(e["type"], "https://medislot.dev/problems/patient-busy", "{e}");
        assert_eq!(e["conflicting_appointment"]["id"], first["id"], "{e}");
        assert_eq!(e["conflicting_appointment"]["start"], first["start"], "{e}");
        assert_eq!(e["errors"][0]["field"], "slot_id", "{e}");
    }
    // Another patient may take that time with the second doctor.
    let q = register(&srv, &http, "q-busy@example.org", "patient").await;
    let (s, _) = q.post("/appointments", json!({"slot_id": theirs[0]["slot_id"]})).await;
    assert_eq!(s, 201);
    // Moving another appointment onto that time is refused too, and nothing moves.
    let later = theirs.iter().find(|t| t["start"] == mine[6]["start"]).unwrap();
    let (s, second_appt) = p.post("/appointments", json!({"slot_id": later["slot_id"]})).await;
    assert_eq!(s, 201, "{second_appt}");
    let moved = format!("/appointments/{}/reschedule", second_appt["id"].as_str().unwrap());
    let (s, e, _) =
        p.send(Method::POST, &moved, Some(json!({"slot_id": same_time["slot_id"]})), &[("If-Match", "*")]).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["type"], "https://medislot.dev/problems/patient-busy", "{e}");
    assert_eq!(e["conflicting_appointment"]["id"], first["id"], "{e}");
    let (_, still) = p.get(&format!("/appointments/{}", second_appt["id"].as_str().unwrap())).await;
    assert_eq!(still["start"], later["start"]);

    // The page: holding that time answers an HTML page that links to the appointment they have.
    let web = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = web.get(format!("{}/login", srv.url)).send().await.unwrap();
    let csrf = set_cookie(&page, "medislot_csrf").expect("a CSRF cookie");
    let signed_in = web
        .post(format!("{}/login", srv.url))
        .header("cookie", format!("medislot_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&email=p-busy%40example.org&password={}", PASSWORD.replace(' ', "+")))
        .send()
        .await
        .unwrap();
    let session = set_cookie(&signed_in, "medislot_session").expect("a session cookie");
    let slot = same_time["slot_id"].as_str().unwrap();
    let r = web
        .post(format!("{}/book/{slot}", srv.url))
        .header("cookie", format!("medislot_csrf={csrf}; medislot_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&action=hold"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("You already have an appointment then"), "{html}");
    assert!(html.contains(&format!("href=\"/appointments/{}\"", first["id"].as_str().unwrap())), "{html}");
}

/// Search "near" offers the cities where doctors can be booked, and only
/// those; a city with none (an old link, a typed URL) is a clear 422 page.
#[tokio::test]
async fn search_near_offers_only_the_places_with_doctors() {
    let srv = TestServer::start_with(&["--demo"]);
    let web = client();
    let page = web.get(format!("{}/", srv.url)).send().await.unwrap().text().await.unwrap();
    let select = &page[page.find("<select id=\"city\"").expect("the city select")..];
    let select = &select[..select.find("</select>").unwrap()];
    let offered: Vec<&str> = select.split("<option value=\"").skip(1).map(|o| &o[..o.find('"').unwrap()]).collect();
    assert_eq!(offered, ["", "Lyon", "New York", "Paris"], "anywhere, then the demo's three cities: {select}");

    let r = web.get(format!("{}/?city=Lyon&specialty=cardiology", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let near_lyon = r.text().await.unwrap();
    assert!(near_lyon.contains("doctors found") && near_lyon.contains("Centre Médical Bellecour"), "{near_lyon}");
    assert!(!near_lyon.contains("Hudson Health"), "New York is not near Lyon");

    let r = web.get(format!("{}/?city=Berlin", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let refused = r.text().await.unwrap();
    assert!(refused.contains("no doctors can be booked in Berlin"), "{refused}");
    assert!(!refused.contains("doctors found"), "nothing searched: {refused}");
}

/// The search page understands specialties and languages as people name them,
/// in English and French and with a typo, says how it read them, labels
/// results for people, and suggests a specialty when nothing matched.
#[tokio::test]
async fn search_understands_how_people_name_specialties_and_languages() {
    let srv = TestServer::start_with(&["--demo"]);
    let web = client();
    let page = |query: &'static str| {
        let (web, url) = (web.clone(), format!("{}/?{query}", srv.url));
        async move {
            let r = web.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let count = |html: &str| -> u64 {
        let at = html.find(" doctors found").unwrap_or_else(|| panic!("a count: {html}"));
        html[..at].rsplit('>').next().unwrap().trim_end_matches('+').parse().unwrap()
    };
    let (_, exact) = page("specialty=cardiology").await;
    let cardiologists = count(&exact);
    assert!(cardiologists > 0);
    assert!(!exact.contains("id=\"understood\""), "nothing to explain for the slug itself");
    for (query, said) in [
        ("specialty=cardiologue", "Cardiology for “cardiologue”"),
        ("specialty=Cardiologist", "Cardiology for “Cardiologist”"),
        ("specialty=cardiolgy", "Cardiology for “cardiolgy”"),
    ] {
        let (s, html) = page(query).await;
        assert_eq!(s, 200, "{query}");
        assert_eq!(count(&html), cardiologists, "{query} finds the cardiologists");
        assert!(html.contains(said), "{query}: {html}");
    }
    let (_, gp) = page("specialty=GP").await;
    assert!(count(&gp) > 0 && gp.contains("General practice for “GP”"), "{gp}");
    assert!(!gp.contains("general-practice</"), "labels, not slugs: {gp}");
    let (_, french) = page("specialty=g%C3%A9n%C3%A9raliste&language=fran%C3%A7ais").await;
    assert!(count(&french) > 0, "{french}");
    assert!(french.contains("doctors who speak French for “français”"), "{french}");
    assert!(french.contains("speaks English, French"), "languages by name: {french}");
    assert!(french.contains("</a> · in person</p>"), "the mode, not \"(in person)\": {french}");
    assert!(!french.contains("(online (video))"));
    let (_, by_name) = page("specialty=general-practice&language=French").await;
    assert_eq!(count(&by_name), count(&french), "French is fr");
    let (_, nothing) = page("specialty=cardiac+surgeon").await;
    assert_eq!(count(&nothing), 0);
    assert!(nothing.contains("Did you mean") && nothing.contains("specialty=cardiology"), "{nothing}");
}

/// Each result shows a strip of its next days' free times beside its next
/// slot: several days, a few times each, every one a link to book it, of the
/// searched mode only.
#[tokio::test]
async fn search_results_show_the_next_days_free_times() {
    let srv = TestServer::start_with(&["--demo"]);
    let web = client();
    let html = web.get(format!("{}/?specialty=cardiology", srv.url)).send().await.unwrap().text().await.unwrap();
    let first = html.split("<div class=\"card\">").nth(1).expect("a result");
    let strip = &first[first.find("<div class=\"strip\"").expect("a strip of times")..];
    let strip = &strip[..strip.find("</div>").unwrap()];
    let days = strip.matches("<span class=\"day\">").count();
    let links: Vec<&str> = strip.split("href=\"/book/").skip(1).map(|l| &l[..l.find('"').unwrap()]).collect();
    assert!((2..=3).contains(&days), "{strip}");
    assert!(links.len() > days && links.len() <= 4 * days, "a few times a day: {strip}");
    // A time of the strip is a free slot, bookable.
    let p = register(&srv, &web, "p-strip@example.org", "patient").await;
    let (s, a) = p.post("/appointments", json!({"slot_id": links[links.len() - 1]})).await;
    assert_eq!(s, 201, "{a}");
    // Searching online times shows online times only.
    let online =
        web.get(format!("{}/?specialty=cardiology&mode=online", srv.url)).send().await.unwrap().text().await.unwrap();
    let strips: Vec<&str> =
        online.split("<div class=\"strip\"").skip(1).map(|s| &s[..s.find("</div>").unwrap()]).collect();
    assert!(!strips.is_empty(), "{online}");
    assert!(strips.iter().all(|s| !s.contains("in person\"")), "{online}");
}
