//! Data rights: a person downloads everything held about them (JSON, and a
//! calendar a strict parser reads), from the API and the pages; a clinic's
//! admins export its appointments as CSV; nobody else gets either.

use crate::helpers::*;
use crate::invitations::strict;
use serde_json::Value;

#[tokio::test]
async fn a_patient_downloads_everything_held_about_them_and_a_clinic_its_appointments() {
    let srv = TestServer::start_with(&["--demo"]);
    let http = client();
    let p = demo_user(&srv, "patient@demo.medislot.test").await;
    let (_, mine) = p.get("/appointments?per_page=200").await;
    let total = mine["total"].as_u64().unwrap();
    assert!(total > 0, "the demo patient has appointments");

    // The JSON export: the account, every appointment with its history.
    assert_eq!(http.get(srv.api("/me/export")).send().await.unwrap().status(), 401);
    let r = http.get(srv.api("/me/export")).bearer_auth(&p.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let export: Value = r.json().await.unwrap();
    assert_eq!(export["account"]["email"], "patient@demo.medislot.test", "{}", export["account"]);
    let items = export["appointments"].as_array().unwrap();
    assert_eq!(items.len() as u64, total, "every appointment");
    assert!(items.iter().all(|a| !a["audit"].as_array().unwrap().is_empty() && a["doctor_name"].is_string()));
    assert!(export["notifications"].is_array() && export["waitlist"].is_array(), "{export}");
    // Nobody else's: another patient's export has none of these appointments.
    let other = demo_user(&srv, "patient2@demo.medislot.test").await;
    let theirs: Value =
        http.get(srv.api("/me/export")).bearer_auth(&other.token).send().await.unwrap().json().await.unwrap();
    let ids = |v: &Value| -> Vec<String> {
        v["appointments"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
    };
    assert!(ids(&theirs).iter().all(|id| !ids(&export).contains(id)));

    // The calendar: one event per appointment, read by a strict parser.
    let r = http.get(srv.api("/me/calendar.ics")).bearer_auth(&p.token).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let ics = r.text().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mine.ics");
    std::fs::write(&file, &ics).unwrap();
    let parsed = strict(&[file]);
    assert_eq!(parsed[0]["events"].as_array().unwrap().len() as u64, total, "{}", parsed[0]);

    // The pages: the account page links both, and they download with the session.
    let page = |path: &str, token: &str| {
        let (http, url, cookie) = (http.clone(), format!("{}{path}", srv.url), format!("medislot_session={token}"));
        async move { http.get(url).header("cookie", cookie).send().await.unwrap() }
    };
    let account = page("/account", &p.token).await.text().await.unwrap();
    assert!(account.contains("/account/export.json") && account.contains("/account/calendar.ics"), "{account}");
    let json: Value = page("/account/export.json", &p.token).await.json().await.unwrap();
    assert_eq!(json["appointments"].as_array().unwrap().len() as u64, total);

    // A clinic's admins export its appointments as CSV; a patient may not.
    let ca = demo_user(&srv, "clinic@demo.medislot.test").await;
    let (_, clinic_list) = ca.get("/appointments?per_page=1").await;
    let clinic_total = clinic_list["total"].as_u64().unwrap();
    let first = &clinic_list["items"][0];
    let (_, d) = ca.get(&format!("/doctors/{}", first["doctor_id"].as_str().unwrap())).await;
    let clinic = d["clinic_id"].as_str().unwrap();
    let path = format!("/clinics/{clinic}/appointments.csv");
    let r = http.get(srv.api(&path)).bearer_auth(&p.token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(srv.api(&path)).bearer_auth(&ca.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..3], ["appointment_id", "start_utc", "end_utc"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty() && rows.len() as u64 <= clinic_total, "{} of {clinic_total}", rows.len());
    assert!(rows.iter().all(|r| r.get(7).is_some_and(|e| e.contains('@'))), "each names the patient's e-mail");
    let from_page = page(&format!("/clinic/{clinic}/appointments.csv"), &ca.token).await;
    assert_eq!(from_page.status(), 200);
    let refused = page(&format!("/clinic/{clinic}/appointments.csv"), &p.token).await;
    assert_eq!(refused.status(), 403, "an HTML page says no");
}

/// Erasing an account: the password confirms it; coming appointments are
/// cancelled (the clinic sees why), past and cancelled ones stay with their
/// audit trails under a pseudonym; sessions end, the address is free again.
#[tokio::test]
async fn a_patient_erases_their_account_and_the_clinic_keeps_its_records_without_them() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "erase").await;
    let p = register(&srv, &http, "erase-me@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    let (_, gone) = p.post("/appointments", serde_json::json!({"slot_id": slots[1]["slot_id"]})).await;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let (s, _) = p.change(&format!("/appointments/{gone_id}/cancel"), serde_json::json!({})).await;
    assert_eq!(s, 200);
    let (s, coming) = p.post("/appointments", serde_json::json!({"slot_id": slots[3]["slot_id"]})).await;
    assert_eq!(s, 201, "{coming}");
    let coming_id = coming["id"].as_str().unwrap().to_string();
    let (s, _) = p.post(&format!("/doctors/{}/waitlist", w.doctor_id), serde_json::json!({})).await;
    assert_eq!(s, 201);

    let (s, e) = p.post("/me/erase", serde_json::json!({"password": "not it at all"})).await;
    assert_eq!((s.as_u16(), &e["errors"][0]["field"]), (422, &serde_json::json!("password")), "{e}");
    assert_eq!(w.doctor.post("/me/erase", serde_json::json!({"password": PASSWORD})).await.0, 403, "staff do not");
    assert_eq!(p.get("/appointments").await.0, 200, "nothing changed yet");

    let (s, _) = p.post("/me/erase", serde_json::json!({"password": PASSWORD})).await;
    assert_eq!(s, 204);
    assert_eq!(p.get("/appointments").await.0, 401, "every session ended");
    let login = http
        .post(srv.api("/auth/login"))
        .json(&serde_json::json!({"email": "erase-me@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);

    // The clinic keeps its records: the coming one cancelled with the reason,
    // the past one as it was, both with their history, under a pseudonym.
    let (_, c) = w.doctor.get(&format!("/appointments/{coming_id}")).await;
    assert_eq!(
        (&c["status"], &c["cancel_reason"]),
        (&serde_json::json!("cancelled"), &serde_json::json!("the patient closed their account")),
        "{c}"
    );
    // The doctor is told of the cancellation (the erased patient no longer is).
    let mut told = false;
    for _ in 0..100 {
        let (_, inbox) = w.doctor.get("/notifications").await;
        told = inbox
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["kind"] == "cancelled" && n["appointment_id"] == coming_id.as_str());
        if told {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(told, "the doctor hears of the cancellation");
    let (s, audit) = w.doctor.get(&format!("/appointments/{gone_id}/audit")).await;
    assert_eq!(s, 200);
    assert!(audit.as_array().unwrap().len() >= 2, "{audit}");
    let csv = http
        .get(srv.api(&format!("/clinics/{}/appointments.csv", w.clinic_id)))
        .bearer_auth(&w.clinic_admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!csv.contains("erase-me@example.org") && csv.contains("@erased.invalid"), "{csv}");
    assert!(csv.contains("Erased patient "), "{csv}");

    // The address is free for a new account.
    let again = register(&srv, &http, "erase-me@example.org", "patient").await;
    let (_, fresh) = again.get("/appointments").await;
    assert_eq!(fresh["total"], 0, "a new account has none of the old one's appointments");

    // The page asks for the password and says when it is wrong.
    let q = register(&srv, &http, "erase-page@example.org", "patient").await;
    let r = post_form_from(&srv, &q, "/account", "/account/erase", &[("password", "wrong wrong wrong")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("That is not your password."));
    let r = post_form_from(&srv, &q, "/account", "/account/erase", &[("password", PASSWORD)]).await;
    assert_eq!(r.status(), 200);
    assert!(set_cookie(&r, "medislot_session").is_some_and(|c| c.is_empty()), "the session cookie is cleared");
    assert!(r.text().await.unwrap().contains("Your account is erased"));
    assert_eq!(q.get("/appointments").await.0, 401);
}
