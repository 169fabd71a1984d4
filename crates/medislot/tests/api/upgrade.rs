//! Upgrading medislot never loses a booking: a database made by the release
//! before native storage (schema 8, saved in `fixtures/schema-v8` together with
//! what that release's API answered about every record) is opened by this
//! build, migrated in place, and every record reads back the same.

use crate::helpers::*;
use serde_json::Value;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures/schema-v8");

/// A server on a copy of the saved database of the suite's backend, and what
/// the old release answered about it. Workers off: nothing changes behind the
/// comparison (a reminder, a hold running out).
/// The third part keeps the database alive while the server runs; the fourth
/// answers SQL on it (the first column of the first row).
type Sql = Box<dyn Fn(&str) -> String>;

fn upgraded_server() -> (TestServer, Value, Box<dyn std::any::Any>) {
    let (srv, records, db, _) = upgraded_server_with_sql("");
    (srv, records, db)
}

/// As [`upgraded_server`], with `before` run on the saved database (schema 8)
/// before the server opens and upgrades it.
fn upgraded_server_with_sql(before: &str) -> (TestServer, Value, Box<dyn std::any::Any>, Sql) {
    let backend = if on_postgres() { "postgres" } else { "sqlite" };
    let records: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join(format!("records-{backend}.json"))).unwrap(),
    )
    .unwrap();
    let dump = Path::new(FIXTURES).join(format!("{backend}.sql"));
    if on_postgres() {
        let db = PgDatabase::create();
        let out = std::process::Command::new("psql")
            .args([db.url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&dump)
            .output()
            .expect("psql loads the saved PostgreSQL database");
        assert!(out.status.success(), "loading {}: {}", dump.display(), String::from_utf8_lossy(&out.stderr));
        if !before.is_empty() {
            query(&db.url, before);
        }
        let srv = TestServer::start_on_url(&db.url, &["--workers", "false"]);
        let url = db.url.clone();
        (srv, records, Box::new(db), Box::new(move |sql| query(&url, sql)[0][0].clone()))
    } else {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("medislot.db");
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(&std::fs::read_to_string(&dump).unwrap()).unwrap();
        conn.execute_batch(before).unwrap();
        drop(conn);
        let url = format!("sqlite:{}", file.display());
        let srv = TestServer::start_on_url(&url, &["--workers", "false"]);
        let sql: Sql = Box::new(move |sql| {
            let conn = rusqlite::Connection::open(&file).unwrap();
            conn.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| match v {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .unwrap()
        });
        (srv, records, Box::new(dir), sql)
    }
}

async fn as_user(srv: &TestServer, email: &str) -> User {
    User { id: String::new(), token: demo_token(srv, email).await, base: srv.url.clone(), http: client() }
}

/// Every field the old release answered, answered alike — as it would answer
/// now: a hold that has run out since is shown as cancelled ("hold expired"),
/// by either release, though its row is unchanged. PostgreSQL keeps times to
/// the microsecond (timestamptz), so the old release's nanoseconds come back
/// rounded there; nothing else may differ.
///
/// Two things are new: an appointment's `video_url`, which the old release did
/// not have (the upgrade gives every live appointment a room, so a party to
/// it, `party`, reads a link for each online one and everyone else none), and
/// a clinic's `cancel_cutoff_hours` and no-show rule (none until the clinic
/// sets them), an appointment's `awaiting` (none: no requests before), and
/// visit types: a doctor's (none), a slot's and an appointment's (none, no
/// intake answers).
fn same(what: &str, old: &Value, new: &Value, party: bool) {
    let mut expected = old.clone();
    as_seen_now(&mut expected);
    let mut new = new.clone();
    take_video_urls(&mut new, party, what);
    assert_eq!(expected, new, "{what} reads differently after the upgrade");
}

fn take_video_urls(v: &mut Value, party: bool, what: &str) {
    match v {
        // A clinic: its rules are new too, none until it sets them.
        Value::Object(o) if o.contains_key("policy") && o.contains_key("time_zone") => {
            assert_eq!(o.remove("cancel_cutoff_hours"), Some(Value::from(0)), "{what}: {o:?}");
            assert_eq!(o.remove("noshow_limit"), Some(Value::from(0)), "{what}: {o:?}");
            assert_eq!(o.remove("noshow_period_days"), Some(Value::from(365)), "{what}: {o:?}");
        }
        Value::Object(o) if o.contains_key("licence_number") => {
            assert_eq!(o.remove("visit_types"), Some(Value::Array(vec![])), "{what}: {o:?}");
        }
        Value::Object(o) if o.contains_key("slot_id") && o.contains_key("local_start") => {
            assert_eq!(o.remove("visit_type"), Some(Value::Null), "{what}: {o:?}");
        }
        Value::Object(o) if o.contains_key("origin_region") => {
            assert_eq!(o.remove("visit_type"), Some(Value::Null), "{what}: {o:?}");
            assert_eq!(o.remove("intake"), Some(Value::Array(vec![])), "{what}: {o:?}");
            assert_eq!(o.remove("awaiting"), Some(Value::Null), "{what}: {o:?}");
            let url = o.remove("video_url").unwrap_or_else(|| panic!("{what}: no video_url in {o:?}"));
            let live = ["held", "pending", "booked", "arrived"].contains(&o["status"].as_str().unwrap_or(""));
            let online = o["mode"] == "online";
            let link = url.as_str().is_some_and(|u| u.starts_with("https://meet.jit.si/medislot-"));
            assert_eq!(link, party && online && live, "{what}: video_url {url} of {o:?}");
            assert!(link || url.is_null(), "{what}: {url}");
        }
        Value::Object(o) => o.values_mut().for_each(|x| take_video_urls(x, party, what)),
        Value::Array(items) => items.iter_mut().for_each(|x| take_video_urls(x, party, what)),
        _ => {}
    }
}

fn as_seen_now(v: &mut Value) {
    match v {
        Value::String(text) if on_postgres() => {
            if let Ok(t) = text.parse::<jiff::Timestamp>() {
                let kept = t.round(jiff::Unit::Microsecond).unwrap();
                if kept != t {
                    *text = kept.to_string();
                }
            }
        }
        Value::Object(o) => {
            let ran_out = o.get("status").and_then(Value::as_str) == Some("held")
                && o.get("hold_expires_at")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| t <= jiff::Timestamp::now());
            if ran_out {
                o.insert("status".into(), "cancelled".into());
                o.insert("cancel_reason".into(), "hold expired".into());
                o.insert("hold_expires_at".into(), Value::Null);
            }
            o.values_mut().for_each(as_seen_now);
        }
        Value::Array(items) => items.iter_mut().for_each(as_seen_now),
        _ => {}
    }
}

#[tokio::test]
async fn every_record_of_a_schema_8_database_reads_the_same_after_the_upgrade() {
    let (srv, records, _db) = upgraded_server();
    let admin = as_user(&srv, "admin@demo.medislot.test").await;
    let anyone = client();
    for (id, old) in records["doctors"].as_object().unwrap() {
        let new: Value = anyone.get(srv.api(&format!("/doctors/{id}"))).send().await.unwrap().json().await.unwrap();
        same(&format!("doctor {id}"), old, &new, false);
    }
    for (id, old) in records["clinics"].as_object().unwrap() {
        let new: Value = anyone.get(srv.api(&format!("/clinics/{id}"))).send().await.unwrap().json().await.unwrap();
        same(&format!("clinic {id}"), old, &new, false);
    }
    let appointments = records["appointments"].as_object().unwrap();
    assert!(appointments.len() > 400, "the saved database holds the demo's appointments");
    for (id, old) in appointments {
        let (status, new) = admin.get(&format!("/appointments/{id}")).await;
        assert_eq!(status, 200, "appointment {id}");
        same(&format!("appointment {id}"), old, &new, false);
        let (_, audit) = admin.get(&format!("/appointments/{id}/audit")).await;
        same(&format!("the audit trail of {id}"), &records["audit"][id], &audit, false);
    }
    for (name, email, path) in [
        ("patient_appointments", "patient@demo.medislot.test", "/appointments?per_page=100"),
        ("doctor_appointments", "doctor1@demo.medislot.test", "/appointments?per_page=100"),
        ("patient_waitlist", "patient@demo.medislot.test", "/waitlist"),
        ("clinic_admin_appointments", "clinic@demo.medislot.test", "/appointments?per_page=100"),
    ] {
        let (status, new) = as_user(&srv, email).await.get(path).await;
        assert_eq!(status, 200, "{name}");
        same(name, &records["lists"][name], &new, true);
    }
}

#[tokio::test]
async fn an_upgraded_database_still_refuses_a_double_booking() {
    let (srv, records, _db) = upgraded_server();
    let patient = as_user(&srv, "patient@demo.medislot.test").await;
    let (doctor_id, _) = records["doctors"].as_object().unwrap().iter().next().unwrap();
    let slot = free_slots(&patient, doctor_id).await.into_iter().next().expect("a free slot");
    let book = |key: &'static str| {
        let patient = patient.clone();
        let slot_id = slot["slot_id"].clone();
        async move {
            patient
                .send(
                    reqwest::Method::POST,
                    "/appointments",
                    Some(serde_json::json!({"slot_id": slot_id})),
                    &[("Idempotency-Key", key)],
                )
                .await
        }
    };
    let (first, _, _) = book("upgrade-first").await;
    assert_eq!(first, 201);
    let (second, problem, _) = book("upgrade-second").await;
    assert_eq!(second, 409, "{problem}");
}

/// The old release let one patient hold overlapping appointments with two
/// doctors (the saved demo data has dozens). The upgrade keeps every one of
/// them, exempt from the new rule, and the rule holds for what is booked next:
/// a new booking may overlap neither an exempt appointment nor one under the rule.
#[tokio::test]
async fn overlapping_appointments_of_one_patient_are_kept_and_new_ones_are_refused() {
    // The saved appointments lie in the week from 2026-12-02; they are moved on
    // by whole weeks (keeping each weekday and time, so the doctors' weekly
    // hours still match) until that week is ahead. Its span is under a week,
    // so a moved appointment never meets one not yet moved.
    let saved_from = jiff::Timestamp::from_second(1_796_169_600).unwrap(); // 2026-12-02T00:00Z
    let behind = jiff::Timestamp::now().as_second() + 86_400 - saved_from.as_second();
    let weeks = if behind > 0 { (behind + 7 * 86_400 - 1) / (7 * 86_400) } else { 0 };
    let shift = weeks * 7 * 86_400;
    let (srv, records, _db, sql) = upgraded_server_with_sql(&format!(
        "UPDATE appointments SET start_at = start_at + {shift}, end_at = end_at + {shift}"
    ));
    let live = "status IN ('held', 'pending', 'booked', 'arrived')";
    let overlapping = format!(
        "SELECT count(*) FROM appointments a WHERE a.{live} AND EXISTS (
             SELECT 1 FROM appointments b WHERE b.patient_id = a.patient_id AND b.id <> a.id
               AND b.{live} AND b.start_at < a.end_at AND a.start_at < b.end_at)"
    );
    let kept: i64 = sql(&overlapping).parse().unwrap();
    assert!(kept > 10, "the saved data has overlapping appointments of one patient: {kept}");
    let exempt: i64 = sql("SELECT count(*) FROM appointments WHERE patient_overlap_allowed").parse().unwrap();
    assert_eq!(exempt, kept, "exactly the appointments that overlapped are exempt");

    // The demo patient's next appointments, one exempt and one under the rule:
    // another doctor free at that very time will not take them.
    let patient = as_user(&srv, "patient@demo.medislot.test").await;
    let (_, mine) = patient.get("/appointments?status=booked&per_page=100").await;
    let soonest = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let ahead: Vec<&Value> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["start"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap() > soonest)
        .collect();
    let is_exempt = |a: &Value| {
        let flag = sql(&format!(
            "SELECT patient_overlap_allowed FROM appointments WHERE id = '{}'",
            a["id"].as_str().unwrap()
        ));
        matches!(flag.as_str(), "1" | "t")
    };
    let next_exempt = ahead.iter().find(|a| is_exempt(a)).expect("the demo patient has an exempt appointment ahead");
    let next_under_rule = ahead.iter().find(|a| !is_exempt(a)).expect("and one under the rule");
    for next in [next_exempt, next_under_rule] {
        let mut refused = false;
        for doctor in records["doctors"].as_object().unwrap().keys().filter(|d| **d != next["doctor_id"]) {
            let Some(slot) = free_slots(&patient, doctor).await.into_iter().find(|s| s["start"] == next["start"])
            else {
                continue;
            };
            let (s, e) = patient.post("/appointments", serde_json::json!({"slot_id": slot["slot_id"]})).await;
            assert_eq!(s, 409, "booking over {next}: {e}");
            assert_eq!(e["type"], "https://medislot.dev/problems/patient-busy", "{e}");
            let time = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
            let overlapped: Vec<&Value> = ahead
                .iter()
                .filter(|a| time(&a["start"]) < time(&slot["end"]) && time(&slot["start"]) < time(&a["end"]))
                .map(|a| &a["id"])
                .collect();
            assert!(overlapped.contains(&&e["conflicting_appointment"]["id"]), "{e} names one of {overlapped:?}");
            refused = true;
            break;
        }
        assert!(refused, "another demo doctor is free at {}", next["start"]);
    }

    // Nor may an appointment under the rule be moved over an exempt one.
    let exempt_starts: Vec<&Value> = ahead.iter().filter(|a| is_exempt(a)).map(|a| &a["start"]).collect();
    let mut moved = None;
    for m in ahead.iter().filter(|a| !is_exempt(a)) {
        let slots = free_slots(&patient, m["doctor_id"].as_str().unwrap()).await;
        if let Some(slot) = slots.into_iter().find(|s| exempt_starts.contains(&&s["start"])) {
            moved = Some((m, slot));
            break;
        }
    }
    let (m, slot) = moved.expect("a doctor of the demo patient is free when an exempt appointment is");
    let id = m["id"].as_str().unwrap();
    let (s, e, _) = patient
        .send(
            reqwest::Method::POST,
            &format!("/appointments/{id}/reschedule"),
            Some(serde_json::json!({"slot_id": slot["slot_id"]})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(s, 409, "moving {m} to {slot}: {e}");
    assert_eq!(e["type"], "https://medislot.dev/problems/patient-busy", "{e}");
    let (_, still) = patient.get(&format!("/appointments/{id}")).await;
    assert_eq!(still["start"], m["start"], "a refused move keeps the appointment where it was");
}
