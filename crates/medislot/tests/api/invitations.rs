//! Calendar output that strict parsers accept: invitations, the appointment's
//! `.ics` and the doctor's feed for people whose names hold quotes, commas,
//! semicolons, colons, carets and line breaks, read back with the strict `ical`
//! library (tests/api/ics_strict.py).

use crate::helpers::*;
use crate::notifications::{book, fast_workers, later_slots, str_args, SmtpSink};
use serde_json::{json, Value};
use std::time::Duration;

/// Names a patient may really have, and the characters RFC 5545 gives meaning to.
const NAMES: [&str; 5] =
    ["Zoé \"Zed\" O'Brien; Jr: MD", "Smith, John", "Ana ^caret^ Núñez", "Back\\slash: Lee", "Jean-Luc\nde la Tour"];

/// What the strict parser read from these files (it fails the test on any error).
pub(crate) fn strict(files: &[std::path::PathBuf]) -> Vec<Value> {
    let python = std::env::var("MEDISLOT_TEST_ICAL_PYTHON").expect(
        "MEDISLOT_TEST_ICAL_PYTHON is not set: run scripts/test, which creates the strict parser's environment (ical)",
    );
    let out = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/ics_strict.py"))
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the strict parser refused a calendar: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str::<Value>(&stdout).unwrap().as_array().unwrap().clone()
}

#[tokio::test]
async fn invitations_and_feeds_for_names_with_quotes_and_separators_pass_a_strict_parser() {
    let smtp = SmtpSink::start();
    let srv = TestServer::start_with(&str_args(&fast_workers(&smtp.url())));
    let http = client();
    let w = world(&srv, &http, "strict-ics").await;
    let tmp = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (i, name) in NAMES.iter().enumerate() {
        let email = format!("strict-{i}@example.org");
        let r = http
            .post(srv.api("/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "name": name, "role": "patient"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{name:?}: {}", r.text().await.unwrap());
        let p = login(&srv, &http, &email).await;
        let a = book(&p, &later_slots(&free_slots(&p, &w.doctor_id).await)[i]).await;
        let r = http
            .get(format!("{}/appointments/{}/calendar.ics", srv.url, a["id"].as_str().unwrap()))
            .header("cookie", format!("medislot_session={}", p.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let path = tmp.path().join(format!("appointment-{i}.ics"));
        std::fs::write(&path, r.bytes().await.unwrap()).unwrap();
        files.push(path);
    }
    // Each booking e-mails the patient and the doctor an invitation.
    smtp.wait_for(2 * NAMES.len(), Duration::from_secs(30)).await;
    let (s, feed) = w.doctor.post(&format!("/doctors/{}/calendar-token", w.doctor_id), json!({})).await;
    assert_eq!(s, 201, "{feed}");
    let text = http.get(format!("{}{}", srv.url, feed["path"].as_str().unwrap())).send().await.unwrap();
    let path = tmp.path().join("feed.ics");
    std::fs::write(&path, text.bytes().await.unwrap()).unwrap();
    files.push(path);
    let mails: Vec<_> = std::fs::read_dir(smtp.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.extend(mails);

    let calendars = strict(&files);
    assert_eq!(calendars.len(), NAMES.len() + 1 + 2 * NAMES.len(), "every calendar read");
    for c in &calendars {
        assert!(c["prodid"].as_str().unwrap().starts_with("-//medislot//"), "{c}");
    }
    // The names come back exactly as the patients typed them.
    let attendees: Vec<&str> = calendars
        .iter()
        .filter(|c| c["method"] == "REQUEST")
        .flat_map(|c| c["events"][0]["attendees"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    for name in NAMES {
        assert_eq!(attendees.iter().filter(|a| **a == name).count(), 2, "{name:?} in {attendees:?}");
    }
    let feed = calendars.iter().find(|c| c["file"].as_str().unwrap().ends_with("feed.ics")).unwrap();
    let summaries: Vec<&str> =
        feed["events"].as_array().unwrap().iter().filter_map(|e| e["summary"].as_str()).collect();
    for name in NAMES {
        assert!(summaries.iter().any(|s| s.starts_with(&format!("{name} ["))), "{name:?} in {summaries:?}");
    }
}
