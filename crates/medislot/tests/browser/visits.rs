//! Visit types in the browser: the doctor sets them on their page; the patient
//! picks one on the doctor's week (its length shown), holds a time, answers its
//! questions (a missing answer is named next to its field) and confirms; the
//! appointment and the doctor's agenda show the visit and the answers.

use crate::helpers::*;
use crate::{demo_doctor, fill, follow, press, screenshot, sign_in, text, Driver};
use fantoccini::Locator;

const DEMO_PASSWORD: &str = "demo-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_sets_visit_types_and_a_patient_books_one_answering_its_questions() {
    let srv = TestServer::start_with(&["--demo"]);
    let id = demo_doctor(&srv, "Dr Camille Martin").await;
    let driver = Driver::start().await;
    let (doctor, patient) = (driver.browser().await, driver.browser().await);

    // The doctor adds a 60-minute first consultation with two questions…
    doctor.goto(&format!("{}/doctor/visit-types", srv.url)).await.unwrap();
    sign_in(&doctor, "doctor1@demo.medislot.test", DEMO_PASSWORD).await;
    assert!(text(&doctor).await.contains("No visit types yet"));
    fill(&doctor, "#name", "First consultation").await;
    fill(&doctor, "#code", "first").await;
    fill(&doctor, "#duration_minutes", "60").await;
    fill(&doctor, "#q0_text", "What brings you here?").await;
    doctor.find(Locator::Css("input[name=q0_required]")).await.unwrap().click().await.unwrap();
    fill(&doctor, "#q1_text", "Were you referred by your GP?").await;
    doctor.execute("document.getElementById('q1_kind').value = 'yes_no'", vec![]).await.unwrap();
    screenshot(&doctor, "visit-types-editor").await;
    press(&doctor, "Add it").await;
    let saved = text(&doctor).await;
    assert!(saved.contains("Saved.") && saved.contains("First consultation · 60 minutes"), "{saved}");
    // …a refused one is named next to its field and changes nothing…
    fill(&doctor, "#name", "Too long").await;
    fill(&doctor, "#code", "long").await;
    // (The field's own max taken away, as an old browser would ignore it.)
    let too_long = "const f = document.getElementById('duration_minutes'); f.removeAttribute('max'); f.value = '600'";
    doctor.execute(too_long, vec![]).await.unwrap();
    press(&doctor, "Add it").await;
    let refused = text(&doctor).await;
    assert!(refused.contains("must be between 5 and 480") && !refused.contains("Too long ·"), "{refused}");
    // …and a 20-minute follow-up.
    doctor.goto(&format!("{}/doctor/visit-types", srv.url)).await.unwrap();
    fill(&doctor, "#name", "Follow-up").await;
    fill(&doctor, "#code", "follow-up").await;
    fill(&doctor, "#duration_minutes", "20").await;
    press(&doctor, "Add it").await;
    assert!(text(&doctor).await.contains("Follow-up · 20 minutes"));

    // The patient chooses the visit first; the week shows its times.
    patient.goto(&format!("{}/doctors/{id}", srv.url)).await.unwrap();
    let week = text(&patient).await;
    assert!(week.contains("Type of visit") && week.contains("First consultation: 60 minutes."), "{week}");
    follow(&patient, Locator::LinkText("Follow-up · 20 minutes")).await;
    assert!(text(&patient).await.contains("Follow-up: 20 minutes."));
    follow(&patient, Locator::LinkText("First consultation · 60 minutes")).await;
    screenshot(&patient, "visit-type-week").await;
    follow(&patient, Locator::Css("a.slotlink")).await;
    let slot = text(&patient).await;
    assert!(slot.contains("First consultation") && slot.contains("60 minutes"), "{slot}");
    sign_in(&patient, "patient@demo.medislot.test", DEMO_PASSWORD).await;
    press(&patient, "Hold this slot").await;
    let hold = text(&patient).await;
    assert!(hold.contains("What brings you here? (required)") && hold.contains("Were you referred"), "{hold}");

    // Unanswered (the browser's own check taken away), the page names the question.
    patient
        .execute("document.querySelectorAll('[name^=\"intake.\"]').forEach(e => e.removeAttribute('required'))", vec![])
        .await
        .unwrap();
    press(&patient, "Confirm booking").await;
    let missing = text(&patient).await;
    assert!(missing.contains("Please check your answers") && missing.contains("is required"), "{missing}");
    fill(&patient, "textarea[name='intake.q1']", "A cough for two weeks").await;
    patient.find(Locator::Css("input[name='intake.q2'][value=yes]")).await.unwrap().click().await.unwrap();
    screenshot(&patient, "visit-intake").await;
    press(&patient, "Confirm booking").await;
    let booked = text(&patient).await;
    assert!(booked.contains("Your appointment is booked"), "{booked}");
    assert!(booked.contains("Visit: First consultation") && booked.contains("A cough for two weeks"), "{booked}");

    // The doctor reads the answers in the agenda.
    doctor.goto(&format!("{}/doctor/agenda?view=week", srv.url)).await.unwrap();
    let agenda = text(&doctor).await;
    assert!(agenda.contains("Visit: First consultation") && agenda.contains("A cough for two weeks"), "{agenda}");
}
