//! The clinic's rules: a cut-off before the start after which patients can no
//! longer cancel or move online (the clinic's staff still can), shown before
//! they book — in the API's slot lists, search and clinic, and in the pages.

use crate::helpers::*;
use crate::notifications::book;
use reqwest::Method;
use serde_json::{json, Value};

fn starts_within(slot: &Value, hours: i64) -> bool {
    let start: jiff::Timestamp = slot["start"].as_str().unwrap().parse().unwrap();
    start < jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours)
}

#[tokio::test]
async fn past_the_clinics_cut_off_only_staff_cancel_or_move_and_patients_are_told_before_they_book() {
    let srv = TestServer::start_with(&["--reminders", ""]);
    let http = client();
    let w = world(&srv, &http, "rules").await;
    let p = register(&srv, &http, "rules-patient@example.org", "patient").await;
    let rules = format!("/clinics/{}/rules", w.clinic_id);

    // Only the clinic's admins (and platform admins) set its rules.
    for (who, u) in [("patient", &p), ("doctor", &w.doctor)] {
        assert_eq!(u.put(&rules, json!({"cancel_cutoff_hours": 1})).await.0, 403, "{who}");
    }
    let other = register(&srv, &http, "rules-other-ca@example.org", "clinic_admin").await;
    assert_eq!(other.put(&rules, json!({"cancel_cutoff_hours": 1})).await.0, 403, "another clinic's admin");
    let (s, c) = w.clinic_admin.put(&rules, json!({"cancel_cutoff_hours": 48})).await;
    assert_eq!((s.as_u16(), &c["cancel_cutoff_hours"]), (200, &json!(48)), "{c}");

    // Bad input names the field and changes nothing.
    for (bad, field) in [
        (json!({"cancel_cutoff_hours": -1}), "cancel_cutoff_hours"),
        (json!({"cancel_cutoff_hours": 721}), "cancel_cutoff_hours"),
        (json!({"cancel_cutoff_hours": "24"}), "cancel_cutoff_hours"),
        (json!({"cancel_cutoff_hours": 1.5}), "cancel_cutoff_hours"),
        (json!({}), "cancel_cutoff_hours"),
        (json!({"cancel_cutoff_hours": 2, "extra": 1}), "extra"),
    ] {
        let (s, e) = w.clinic_admin.put(&rules, bad.clone()).await;
        assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!(field)), "{bad}: {e}");
    }
    let public: Value =
        http.get(srv.api(&format!("/clinics/{}", w.clinic_id))).send().await.unwrap().json().await.unwrap();
    assert_eq!(public["cancel_cutoff_hours"], 48, "{public}");

    // Before booking: the slot list and search say it.
    let (_, list) = p.get(&format!("/doctors/{}/slots", w.doctor_id)).await;
    assert_eq!(list["cancel_cutoff_hours"], 48, "{list}");
    let (_, found) = p.get("/doctors?specialty=cardiology").await;
    let hit = found["items"].as_array().unwrap().iter().find(|h| h["doctor"]["id"] == w.doctor_id.as_str()).unwrap();
    assert_eq!(hit["clinic"]["cancel_cutoff_hours"], 48, "{hit}");

    // Within the cut-off: the patient can neither cancel nor move; staff can.
    let slots = free_slots(&p, &w.doctor_id).await;
    let soon: Vec<&Value> = slots.iter().filter(|s| starts_within(s, 40)).collect();
    let late: Vec<&Value> = slots.iter().filter(|s| !starts_within(s, 50)).collect();
    let a = book(&p, soon[0]).await;
    let id = a["id"].as_str().unwrap();
    let (s, e) = p.change(&format!("/appointments/{id}/cancel"), json!({"reason": "late"})).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["type"], "https://medislot.dev/problems/changes-closed", "{e}");
    assert!(e["detail"].as_str().unwrap().contains("48 hours before the start"), "{e}");
    let (s, e) = p.change(&format!("/appointments/{id}/reschedule"), json!({"slot_id": late[0]["slot_id"]})).await;
    assert_eq!((s.as_u16(), e["type"].as_str()), (409, Some("https://medislot.dev/problems/changes-closed")), "{e}");
    let (_, still) = p.get(&format!("/appointments/{id}")).await;
    assert_eq!((&still["status"], &still["start"]), (&json!("booked"), &a["start"]), "nothing changed: {still}");

    // The pages say so, and offer no cancel or reschedule for it.
    let session = format!("medislot_session={}", p.token);
    let page = |path: String| {
        let (http, session) = (http.clone(), session.clone());
        let url = format!("{}{path}", srv.url);
        async move { http.get(url).header("cookie", session).send().await.unwrap().text().await.unwrap() }
    };
    let own = page(format!("/appointments/{id}")).await;
    assert!(own.contains("too close to its time to cancel or move it online"), "{own}");
    let mine = page("/appointments".into()).await;
    assert!(!mine.contains(&format!("/appointments/{id}/cancel")), "no cancel link past the cut-off");
    let far = book(&p, late[0]).await;
    let mine = page("/appointments".into()).await;
    assert!(mine.contains(&format!("/appointments/{}/cancel", far["id"].as_str().unwrap())), "{mine}");
    let (s, held, _) = p.send(Method::POST, "/holds", Some(json!({"slot_id": late[2]["slot_id"]})), &[]).await;
    assert_eq!(s, 201, "{held}");
    let hold = page(format!("/holds/{}", held["id"].as_str().unwrap())).await;
    assert!(hold.contains("until 48 hours before it starts"), "the rule shows before confirming: {hold}");

    // Outside the cut-off the patient cancels; within it the doctor does.
    let (s, v) = p.change(&format!("/appointments/{}/cancel", far["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((s.as_u16(), v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let (s, v) = w.doctor.change(&format!("/appointments/{id}/cancel"), json!({"reason": "clinic closed"})).await;
    assert_eq!((s.as_u16(), v["status"].as_str()), (200, Some("cancelled")), "{v}");

    // The clinic's page: a bad number is a 422 page naming it; a good one is saved.
    let path = format!("/clinic/{}/rules", w.clinic_id);
    let r = post_form(&srv, &w.clinic_admin, &path, &[("cancel_cutoff_hours", "a day")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("must be a whole number of hours"));
    let r = post_form(&srv, &w.clinic_admin, &path, &[("cancel_cutoff_hours", "1000")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("must be between 0 and 720 hours"));
    let r = post_form(&srv, &w.clinic_admin, &path, &[("cancel_cutoff_hours", "6")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(p.get(&format!("/doctors/{}/slots", w.doctor_id)).await.1["cancel_cutoff_hours"], 6);
    let r = post_form(&srv, &p, &path, &[("cancel_cutoff_hours", "0")]).await;
    assert_eq!(r.status(), 403, "a patient does not set a clinic's rules");
    assert_eq!(p.get(&format!("/doctors/{}/slots", w.doctor_id)).await.1["cancel_cutoff_hours"], 6);
}

#[tokio::test]
async fn a_clinic_is_created_with_its_cut_off_and_refused_with_a_bad_one() {
    let srv = TestServer::start().await;
    let http = client();
    let ca = register(&srv, &http, "rules-new@example.org", "clinic_admin").await;
    let clinic = |cutoff: Value| {
        json!({"name": "Clinique Règles", "address": "1 rue de Rivoli, Paris", "latitude": 48.85, "longitude": 2.35,
               "time_zone": "Europe/Paris", "cancel_cutoff_hours": cutoff})
    };
    let (s, c) = ca.post("/clinics", clinic(json!(12))).await;
    assert_eq!((s.as_u16(), &c["cancel_cutoff_hours"]), (201, &json!(12)), "{c}");
    let (s, e) = ca.post("/clinics", clinic(json!(999))).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "cancel_cutoff_hours", "{e}");
    let (s, c) = ca.post("/clinics", clinic(Value::Null)).await;
    assert_eq!((s.as_u16(), &c["cancel_cutoff_hours"]), (201, &json!(0)), "none unless asked: {c}");
}

/// The no-show rule: after K no-shows at a clinic within its period, a
/// patient's online booking there is a request (202, pending, awaiting the
/// clinic) that holds its time until the clinic's staff accept it (booked) or
/// decline it (cancelled, with the reason); others book as before.
#[tokio::test]
async fn after_too_many_no_shows_a_booking_is_a_request_the_clinic_accepts_or_declines() {
    let srv = TestServer::start_with(&["--demo"]);
    let http = client();
    let admin = demo_user(&srv, "admin@demo.medislot.test").await;
    // A demo patient who missed an appointment last week, and where.
    let mut found = None;
    for email in ["patient@demo.medislot.test", "patient2@demo.medislot.test", "patient3@demo.medislot.test"] {
        let p = demo_user(&srv, email).await;
        let (_, missed) = p.get("/appointments?status=noshow").await;
        if let Some(a) = missed["items"].as_array().and_then(|i| i.first()).cloned() {
            found = Some((p, a));
            break;
        }
    }
    let (p, missed) = found.expect("the demo gives its patients no-shows last week");
    let doctor = missed["doctor_id"].as_str().unwrap().to_string();
    let (_, d) = p.get(&format!("/doctors/{doctor}")).await;
    let clinic = d["clinic_id"].as_str().unwrap().to_string();
    let rules = format!("/clinics/{clinic}/rules");

    // Bad rules name their field and change nothing.
    for (bad, field) in [
        (json!({"cancel_cutoff_hours": 0, "noshow_limit": 21}), "noshow_limit"),
        (json!({"cancel_cutoff_hours": 0, "noshow_limit": 2, "noshow_period_days": 0}), "noshow_period_days"),
        (json!({"cancel_cutoff_hours": 0, "noshow_limit": "2"}), "noshow_limit"),
        (json!({"cancel_cutoff_hours": -1, "noshow_limit": 99}), "cancel_cutoff_hours"),
    ] {
        let (s, e) = admin.put(&rules, bad.clone()).await;
        assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &json!(field)), "{bad}: {e}");
    }
    let (_, c) = p.get(&format!("/clinics/{clinic}")).await;
    assert_eq!(c["noshow_limit"], 0, "{c}");
    let (s, c) =
        admin.put(&rules, json!({"cancel_cutoff_hours": 0, "noshow_limit": 1, "noshow_period_days": 30})).await;
    assert_eq!((s.as_u16(), &c["noshow_limit"], &c["noshow_period_days"]), (200, &json!(1), &json!(30)), "{c}");
    // Shown before booking.
    let (_, list) = p.get(&format!("/doctors/{doctor}/slots")).await;
    assert_eq!((&list["noshow_limit"], &list["noshow_period_days"]), (&json!(1), &json!(30)), "{list}");

    // The patient's booking is a request; a retry answers the same; the time is kept.
    let slots = list["slots"].as_array().unwrap().clone();
    let key = [("Idempotency-Key", "noshow-request")];
    let body = json!({"slot_id": slots[0]["slot_id"]});
    let (s, req, _) = p.send(Method::POST, "/appointments", Some(body.clone()), &key).await;
    assert_eq!((s.as_u16(), &req["status"], &req["awaiting"]), (202, &json!("pending"), &json!("clinic")), "{req}");
    let (s, again, _) = p.send(Method::POST, "/appointments", Some(body), &key).await;
    assert_eq!((s.as_u16(), &again["id"]), (202, &req["id"]), "{again}");
    // The patient is told it is a request (the workers deliver it).
    let mut told = None;
    for _ in 0..100 {
        let (_, inbox) = p.get("/notifications").await;
        told = inbox.as_array().into_iter().flatten().find(|n| n["kind"] == "requested").cloned();
        if told.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let told = told.expect("a notification of the request");
    assert!(told["title"].as_str().unwrap().starts_with("Request sent:"), "{told}");
    let other = register(&srv, &http, "noshow-other@example.org", "patient").await;
    let (s, e) = other.post("/appointments", json!({"slot_id": slots[0]["slot_id"]})).await;
    assert_eq!((s.as_u16(), e["type"].as_str()), (409, Some("https://medislot.dev/problems/slot-taken")), "{e}");
    // Someone without no-shows books as before.
    let (s, plain) = other.post("/appointments", json!({"slot_id": slots[3]["slot_id"]})).await;
    assert_eq!((s.as_u16(), &plain["status"], &plain["awaiting"]), (201, &json!("booked"), &Value::Null), "{plain}");

    // Only the clinic's side answers, and only a request.
    let id = req["id"].as_str().unwrap();
    assert_eq!(p.post(&format!("/appointments/{id}/accept"), json!({})).await.0, 403);
    let (s, e) = admin.post(&format!("/appointments/{}/accept", plain["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 409, "a booking is no request: {e}");
    let (s, ok) = admin.post(&format!("/appointments/{id}/accept"), json!({})).await;
    assert_eq!((s.as_u16(), &ok["status"], &ok["awaiting"]), (200, &json!("booked"), &Value::Null), "{ok}");
    assert_eq!(admin.post(&format!("/appointments/{id}/accept"), json!({})).await.0, 409, "answered once");

    // A second request, declined with a reason the patient reads.
    let (s, second) = p.post("/appointments", json!({"slot_id": slots[6]["slot_id"]})).await;
    assert_eq!(s, 202, "{second}");
    let sid = second["id"].as_str().unwrap();
    let (s, no) = admin.post(&format!("/appointments/{sid}/decline"), json!({"reason": "please call us first"})).await;
    assert_eq!((s.as_u16(), &no["status"]), (200, &json!("cancelled")), "{no}");
    let (_, read) = p.get(&format!("/appointments/{sid}")).await;
    assert_eq!(read["cancel_reason"], "declined by the clinic: please call us first", "{read}");
    // Its time is free again.
    let (s, v) = other.post("/appointments", json!({"slot_id": slots[6]["slot_id"]})).await;
    assert_eq!(s, 201, "{v}");

    // In the pages: the patient's appointment says it is a request; the
    // agenda's form accepts it.
    let (s, third) = p.post("/appointments", json!({"slot_id": slots[9]["slot_id"]})).await;
    assert_eq!(s, 202, "{third}");
    let tid = third["id"].as_str().unwrap();
    let own = http
        .get(format!("{}/appointments/{tid}", srv.url))
        .header("cookie", format!("medislot_session={}", p.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        own.contains("Your request is sent to the clinic") && own.contains("confirms your bookings itself"),
        "{own}"
    );
    let list = http
        .get(format!("{}/appointments", srv.url))
        .header("cookie", format!("medislot_session={}", p.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("waiting for the clinic to confirm"), "My appointments says which are requests");
    let version = third["version"].to_string();
    let agenda = "/doctor/agenda";
    let r =
        post_form_from(&srv, &admin, agenda, &format!("/agenda/{tid}"), &[("action", "accept"), ("version", &version)])
            .await;
    assert_eq!(r.status(), 303);
    assert_eq!(p.get(&format!("/appointments/{tid}")).await.1["status"], "booked");

    // The clinic's page takes the rule too, and names a bad number.
    let path = format!("/clinic/{clinic}/rules");
    let r = post_form(&srv, &admin, &path, &[("cancel_cutoff_hours", "0"), ("noshow_limit", "many")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("must be a whole number"));
    let r = post_form(
        &srv,
        &admin,
        &path,
        &[("cancel_cutoff_hours", "0"), ("noshow_limit", "3"), ("noshow_period_days", "60")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(p.get(&format!("/clinics/{clinic}")).await.1["noshow_limit"], 3);
}
