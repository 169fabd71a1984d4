//! Doctors, clinic admins and platform admins in the browser: a new doctor
//! waits for verification and appears in search once approved; a doctor
//! edits the schedule and patients see the change; the agenda's actions.

use crate::helpers::*;
use crate::{demo_doctor, fill, follow, press, screenshot, sign_in, text, Driver};
use fantoccini::{Client, Locator};

const DEMO_PASSWORD: &str = "demo-password";

async fn search_neurology(b: &Client, srv: &TestServer) -> String {
    b.goto(&format!("{}/?specialty=neurology&radius_km=25", srv.url)).await.unwrap();
    text(b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_doctor_waits_for_verification_then_appears_in_search() {
    let srv = TestServer::start_with(&["--demo"]);
    let driver = Driver::start().await;
    let (doctor, admin, patient) = (driver.browser().await, driver.browser().await, driver.browser().await);

    // Sign up as a doctor, fill the profile: then wait.
    doctor.goto(&format!("{}/register", srv.url)).await.unwrap();
    fill(&doctor, "#name", "Nora Newcomer").await;
    fill(&doctor, "#email", "nora@example.org").await;
    fill(&doctor, "#password", "a long enough password").await;
    doctor.find(Locator::Css("#role")).await.unwrap().select_by_value("doctor").await.unwrap();
    press(&doctor, "Create my account").await;
    assert!(text(&doctor).await.contains("Your doctor profile"));
    // Each consultation checkbox sits on one line with its words, not a field's width away.
    for label in doctor.find_all(Locator::Css("label.check")).await.unwrap() {
        let (lx, _, lw, lh) = label.rectangle().await.unwrap();
        let (bx, _, bw, _) = label.find(Locator::Css("input")).await.unwrap().rectangle().await.unwrap();
        assert!(bw < 40.0 && bx - lx < 10.0 && lh < 40.0, "checkbox {bx},{bw} in its label {lx},{lw},{lh}");
    }
    screenshot(&doctor, "doctor-profile").await;
    fill(&doctor, "#name", "Dr Nora Newcomer").await;
    fill(&doctor, "#specialty", "neurology").await;
    fill(&doctor, "#languages", "en, fr").await;
    press(&doctor, "Send for verification").await;
    let errors = text(&doctor).await;
    assert!(errors.contains("Licence number"), "the missing licence is pointed out next to its field: {errors}");
    fill(&doctor, "#licence_number", "LIC-NEW-1").await;
    press(&doctor, "Send for verification").await;
    let waiting = text(&doctor).await;
    assert!(waiting.contains("Waiting for verification"), "{waiting}");
    screenshot(&doctor, "doctor-waiting").await;
    assert!(!search_neurology(&patient, &srv).await.contains("Nora Newcomer"), "not searchable before verification");

    // The clinic accepts her request to join it.
    let clinic = driver.browser().await;
    clinic.goto(&format!("{}/clinic", srv.url)).await.unwrap();
    sign_in(&clinic, "clinic@demo.medislot.test", DEMO_PASSWORD).await;
    assert!(text(&clinic).await.contains("asks to join this clinic"));
    follow(&clinic, Locator::XPath("//li[contains(., 'Dr Nora Newcomer')]//button[@value='accept']")).await;

    // A platform admin approves.
    admin.goto(&format!("{}/admin/verification", srv.url)).await.unwrap();
    sign_in(&admin, "admin@demo.medislot.test", DEMO_PASSWORD).await;
    let queue = text(&admin).await;
    assert!(queue.contains("Dr Nora Newcomer") && queue.contains("LIC-NEW-1"), "{queue}");
    screenshot(&admin, "verification-queue").await;
    let card = "//section[contains(., 'Dr Nora Newcomer')]//button[@value='verified']";
    follow(&admin, Locator::XPath(card)).await;
    assert!(text(&admin).await.contains("Dr Nora Newcomer is now verified"));

    // Patients find her.
    assert!(search_neurology(&patient, &srv).await.contains("Dr Nora Newcomer"), "searchable once verified");

    // The clinic admin sees her among the clinic's doctors.
    clinic.goto(&format!("{}/clinic", srv.url)).await.unwrap();
    let clinics = text(&clinic).await;
    assert!(
        clinics.contains("Your clinics") && clinics.contains("Dr Nora Newcomer · verified")
            || clinics.contains("Dr Nora Newcomer"),
        "{clinics}"
    );
    screenshot(&clinic, "clinics").await;

    // The clinic admin adds a clinic with its postal address and phone; a wrong
    // country code is pointed out next to its field, and nothing is created.
    for (field, value) in [
        ("#cname", "Cabinet Saint-Martin"),
        ("#address", "40 rue du Faubourg Saint-Martin"),
        ("#postal_code", "75010"),
        ("#city", "Paris"),
        ("#district", "IDF"),
        ("#country", "F1"),
        ("#phone", "+33 1 40 00 00 10"),
        ("#latitude", "48.8716"),
        ("#longitude", "2.3580"),
        ("#time_zone", "Europe/Paris"),
    ] {
        fill(&clinic, field, value).await;
    }
    press(&clinic, "Create clinic").await;
    let refused = text(&clinic).await;
    assert!(refused.contains("ISO 3166-1 alpha-2"), "{refused}");
    assert!(!refused.contains("40 rue du Faubourg Saint-Martin, 75010 Paris"), "nothing created: {refused}");
    fill(&clinic, "#country", "FR").await;
    press(&clinic, "Create clinic").await;
    let created = text(&clinic).await;
    assert!(
        created.contains("40 rue du Faubourg Saint-Martin, 75010 Paris") && created.contains("+33140000010"),
        "{created}"
    );
    for b in [doctor, admin, patient, clinic] {
        b.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_edits_the_schedule_and_patients_see_the_change() {
    // The agenda's "arrived" appears from the arrival window before the start: a week's
    // window here, so the demo's coming appointments offer it.
    let srv = TestServer::start_with(&["--demo", "--arrival-window-minutes", "10080"]);
    let http = client();
    let id = demo_doctor(&srv, "Dr Camille Martin").await;
    let driver = Driver::start().await;
    let (doctor, patient) = (driver.browser().await, driver.browser().await);
    let week = format!("{}/doctors/{id}?week=1", srv.url);
    let sunday = "//section[starts-with(@aria-label, 'Sunday')]";
    patient.goto(&week).await.unwrap();
    let before = patient.find(Locator::XPath(sunday)).await.unwrap().text().await.unwrap();
    assert!(!before.contains("10:00"), "no Sunday hours yet: {before}");

    // The doctor opens Sundays 10:00–12:00 in one-hour slots.
    doctor.goto(&format!("{}/doctor/schedule", srv.url)).await.unwrap();
    sign_in(&doctor, "doctor1@demo.medislot.test", DEMO_PASSWORD).await;
    assert!(text(&doctor).await.contains("Schedule of Dr Camille Martin"));
    for (field, value) in [("start_6_0", "10:00"), ("end_6_0", "12:00"), ("slot_6_0", "60")] {
        doctor.execute(&format!("document.getElementById('{field}').value = '{value}'"), vec![]).await.unwrap();
    }
    screenshot(&doctor, "schedule-editor").await;
    press(&doctor, "Save schedule").await;
    assert!(text(&doctor).await.contains("Schedule saved."));

    // An impossible range is refused next to its row, and nothing changes.
    doctor
        .execute(
            "document.getElementById('end_6_1').value = '09:00'; document.getElementById('start_6_1').value = '11:00'",
            vec![],
        )
        .await
        .unwrap();
    press(&doctor, "Save schedule").await;
    let refused = text(&doctor).await;
    assert!(!refused.contains("Schedule saved.") && refused.contains("must be after"), "{refused}");

    // The patient sees the new hours.
    patient.goto(&week).await.unwrap();
    let after = patient.find(Locator::XPath(sunday)).await.unwrap().text().await.unwrap();
    assert!(after.contains("10:00") && after.contains("11:00"), "Sunday now has hours: {after}");

    // The agenda: a week of the demo's appointments, with patient names; mark one arrived.
    doctor.goto(&format!("{}/doctor/agenda?view=week", srv.url)).await.unwrap();
    let agenda = text(&doctor).await;
    assert!(agenda.contains("Agenda of Dr Camille Martin"), "{agenda}");
    screenshot(&doctor, "agenda").await;
    let button = doctor
        .find(Locator::XPath("//button[@value='arrived']"))
        .await
        .expect("the demo gives doctor1 booked appointments in the coming week");
    let card = button.find(Locator::XPath("./ancestor::div[@data-appointment]")).await.unwrap();
    let appointment = card.attr("data-appointment").await.unwrap().unwrap();
    follow(&doctor, Locator::XPath("//button[@value='arrived']")).await;
    let row =
        doctor.find(Locator::Css(&format!("[data-appointment='{appointment}']"))).await.unwrap().text().await.unwrap();
    assert!(row.contains("status arrived"), "{row}");

    // Time off over that appointment: added, with a warning naming what it overlaps
    // (which stays booked); listed; removed again.
    let token = demo_token(&srv, "doctor1@demo.medislot.test").await;
    let a: serde_json::Value = http
        .get(srv.api(&format!("/appointments/{appointment}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let minute = |v: &serde_json::Value| v.as_str().unwrap()[..16].to_string(); // local YYYY-MM-DDTHH:MM
    let (from, until) = (minute(&a["local_start"]), minute(&a["local_end"]));
    doctor.goto(&format!("{}/doctor/schedule", srv.url)).await.unwrap();
    assert!(text(&doctor).await.contains("None coming up."));
    doctor
        .execute(
            &format!(
                "document.getElementById('off_start').value = '{from}'; document.getElementById('off_end').value = '{until}'"
            ),
            vec![],
        )
        .await
        .unwrap();
    fill(&doctor, "#off_reason", "congress").await;
    press(&doctor, "Add time off").await;
    let added = text(&doctor).await;
    assert!(
        added.contains("Time off added") && added.contains("It overlaps 1 appointment, which stays booked"),
        "{added}"
    );
    assert!(added.contains(&from[11..16]) && added.contains("arrived"), "the overlapped appointment is named: {added}");
    let listed = doctor.find(Locator::Css("[data-time-off]")).await.unwrap().text().await.unwrap();
    assert!(listed.contains("congress") && listed.contains(&from[11..16]), "{listed}");
    screenshot(&doctor, "time-off").await;
    press(&doctor, "Remove").await;
    let removed = text(&doctor).await;
    assert!(removed.contains("Time off removed") && removed.contains("None coming up."), "{removed}");
    doctor.close().await.unwrap();
    patient.close().await.unwrap();
}
