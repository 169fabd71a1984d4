//! Notifications end to end: e-mail through a real SMTP server (aiosmtpd)
//! read back with Python's e-mail and `icalendar` parsers, signed webhooks to a
//! receiver that fails for a while, the in-app list, the waitlist, the
//! doctor's calendar feed, and crash tests of the worker.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

fn python() -> String {
    std::env::var("MEDISLOT_TEST_PYTHON").expect(
        "MEDISLOT_TEST_PYTHON is not set: run scripts/test, which creates the Python environment (aiosmtpd, icalendar)",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// aiosmtpd on a free port, writing what it receives to a directory.
pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/smtp_sink.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        use std::io::BufRead;
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "the SMTP server did not start");
        SmtpSink { port, dir, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
            .count()
    }

    /// Every message received, parsed by mail_check.py.
    pub fn messages(&self) -> Vec<Value> {
        let out = Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/mail_check.py"))
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "mail_check.py failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize, within: Duration) {
        let t0 = Instant::now();
        while self.count() < n {
            assert!(t0.elapsed() < within, "expected {n} e-mails within {within:?}, got {}", self.count());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn fast_workers(smtp: &str) -> Vec<String> {
    // Appointments two days ahead are marked arrived in these tests: a week's arrival window.
    let window = ["--arrival-window-minutes", "10080"];
    ["--smtp-url", smtp, "--notify-poll-ms", "50", "--notify-backoff-ms", "200", "--reminders", ""]
        .into_iter()
        .chain(window)
        .map(|s| s.to_string())
        .collect()
}

pub(crate) fn str_args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// "Wed 4 Mar 2026, 10:00 Europe/Paris (CET)" for an instant, as e-mails write it.
fn paris(t: &str) -> String {
    let z = t.parse::<jiff::Timestamp>().unwrap().to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    format!("{} Europe/Paris ({})", z.strftime("%a %-d %b %Y, %H:%M"), z.strftime("%Z"))
}

/// A slot at least two days ahead (clear of the appointment-day edge cases).
pub(crate) fn later_slots(slots: &[Value]) -> Vec<Value> {
    let after = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    slots.iter().filter(|s| s["start"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap() > after).cloned().collect()
}

pub(crate) async fn book(p: &User, slot: &Value) -> Value {
    let (s, a) = p.post("/appointments", json!({"slot_id": slot["slot_id"], "reason": "check-up"})).await;
    assert_eq!(s, 201, "{a}");
    a
}

async fn reschedule(u: &User, a: &Value, slot: &Value) -> Value {
    let id = a["id"].as_str().unwrap();
    let version = format!("\"{}\"", a["version"]);
    let path = format!("/appointments/{id}/reschedule");
    let (s, v, _) =
        u.send(Method::POST, &path, Some(json!({"slot_id": slot["slot_id"]})), &[("If-Match", &version)]).await;
    assert_eq!(s, 200, "{v}");
    v
}

pub(crate) async fn cancel(u: &User, id: &str, reason: &str) -> Value {
    let (s, v) = u.change(&format!("/appointments/{id}/cancel"), json!({"reason": reason})).await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn emails_over_real_smtp_name_the_clinic_zone_and_update_one_calendar_event() {
    let smtp = SmtpSink::start();
    let mut args = fast_workers(&smtp.url());
    args.extend(["--mail-from".into(), "Clinique Test <rdv@clinic.example>".into()]);
    let srv = TestServer::start_with(&str_args(&args));
    let http = client();
    let w = world(&srv, &http, "mail").await;
    let p = register(&srv, &http, "mail-patient@example.org", "patient").await;
    let slots = later_slots(&free_slots(&p, &w.doctor_id).await);
    let (first, second) = (&slots[0], &slots[5]);

    let a = book(&p, first).await;
    smtp.wait_for(2, Duration::from_secs(20)).await;
    let moved = reschedule(&p, &a, second).await;
    smtp.wait_for(4, Duration::from_secs(20)).await;
    let id = a["id"].as_str().unwrap();
    cancel(&w.doctor, id, "Doctor is ill").await;
    smtp.wait_for(6, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mails = smtp.messages();
    assert_eq!(mails.len(), 6, "no duplicates when nothing crashed: {mails:#?}");
    let to = |addr: &str| -> Vec<&Value> { mails.iter().filter(|m| m["to"] == addr).collect() };
    let patient = to("mail-patient@example.org");
    let doctor = to("dr-mail@example.org");
    assert_eq!((patient.len(), doctor.len()), (3, 3));

    let (t1, t2) = (first["start"].as_str().unwrap(), second["start"].as_str().unwrap());
    let subjects: Vec<&str> = patient.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        vec![
            format!("Appointment confirmed: Dr Test, {}", paris(t1)),
            format!("Appointment moved: Dr Test, now {}", paris(t2)),
            format!("Appointment cancelled: Dr Test, {}", paris(t2)),
        ]
    );
    assert_eq!(doctor[0]["subject"], format!("New appointment: User mail-patient@example.org, {}", paris(t1)));
    let cancelled_text = patient[2]["text"].as_str().unwrap();
    assert!(cancelled_text.contains("cancelled by the doctor (reason: Doctor is ill)"), "{cancelled_text}");
    assert!(cancelled_text.contains("Europe/Paris"), "{cancelled_text}");
    assert!(patient[1]["text"].as_str().unwrap().contains(&format!("The appointment on {} has moved", paris(t1))));

    // One calendar event, updated then cancelled: same UID, growing SEQUENCE.
    let invites: Vec<&Value> = patient.iter().map(|m| &m["invite"]).collect();
    let uid = format!("{id}@medislot");
    for (i, (method, start)) in [("REQUEST", t1), ("REQUEST", t2), ("CANCEL", t2)].iter().enumerate() {
        let inv = invites[i];
        assert_eq!(inv["uid"], uid.as_str());
        assert_eq!(inv["method"], *method);
        assert_eq!(inv["content_type_method"], *method);
        let parsed = inv["start"].as_str().unwrap().replace("+00:00", "Z");
        assert_eq!(parsed.parse::<jiff::Timestamp>().unwrap(), start.parse::<jiff::Timestamp>().unwrap());
        assert_eq!(inv["organizer"], "mailto:rdv@clinic.example");
        assert_eq!(inv["attendee"], "mailto:mail-patient@example.org");
    }
    let seq: Vec<i64> = invites.iter().map(|i| i["sequence"].as_i64().unwrap()).collect();
    assert!(seq[0] < seq[1] && seq[1] < seq[2], "SEQUENCE grows: {seq:?}");
    assert_eq!(seq[1], moved["version"].as_i64().unwrap());
    assert_eq!(invites[2]["status"], "CANCELLED");
    // A Message-ID per (appointment, event, recipient).
    let ids: HashSet<&str> = mails.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 6);
    assert!(ids.iter().all(|i| i.starts_with(&format!("<{id}."))), "{ids:?}");

    // The same three changes, in the app.
    let (s, inbox) = p.get("/notifications").await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = inbox.as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["cancelled", "rescheduled", "booked"], "newest first");
    assert_eq!(inbox[0]["link"], format!("/appointments/{id}"));
    let nid = inbox[0]["id"].as_str().unwrap();
    assert_eq!(w.doctor.post(&format!("/notifications/{nid}/read"), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(p.post(&format!("/notifications/{nid}/read"), json!({})).await.0, StatusCode::NO_CONTENT);
    let (_, inbox) = p.get("/notifications").await;
    assert!(inbox[0]["read_at"].is_string() && inbox[1]["read_at"].is_null());
}

/// What the webhook receiver saw.
#[derive(Default)]
struct Received {
    requests: usize,
    refused: usize,
    bad_signatures: usize,
    /// Event id → (type, times received).
    events: BTreeMap<String, (String, usize)>,
}

fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let parts: HashMap<&str, &str> = header.split(',').filter_map(|p| p.split_once('=')).collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else { return false };
    let age = jiff::Timestamp::now().as_second() - t.parse::<i64>().unwrap_or(0);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    age.abs() < 300 && expected == *v1
}

#[tokio::test]
async fn webhooks_are_signed_retried_through_failures_and_logged_for_the_clinic() {
    let smtp = SmtpSink::start();
    // The receiver runs on loopback: the operator allows private receivers here.
    let mut args = fast_workers(&smtp.url());
    args.push("--webhooks-allow-private".into());
    let srv = TestServer::start_with(&str_args(&args));
    let http = client();
    let w = world(&srv, &http, "hook").await;

    // A receiver that answers 500 to its first five requests.
    let seen = Arc::new(Mutex::new(Received::default()));
    let secret = Arc::new(Mutex::new(String::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hooks/medislot", listener.local_addr().unwrap());
    let (seen2, secret2) = (seen.clone(), secret.clone());
    let receiver = axum::Router::new().route(
        "/hooks/medislot",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (seen, secret) = (seen2.clone(), secret2.clone());
            async move {
                let mut r = seen.lock().unwrap();
                r.requests += 1;
                if r.requests <= 5 {
                    r.refused += 1;
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let header = headers.get("medislot-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
                if !signature_ok(&secret.lock().unwrap(), header, &body) {
                    r.bad_signatures += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                let v: Value = serde_json::from_slice(&body).unwrap();
                let id = headers.get("medislot-event-id").unwrap().to_str().unwrap().to_string();
                assert_eq!(v["id"], id.as_str(), "the header and the body name the same event");
                r.events.entry(id).or_insert((v["type"].as_str().unwrap().to_string(), 0)).1 += 1;
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let path = format!("/clinics/{}/webhooks", w.clinic_id);
    let (s, hook) = w.clinic_admin.post(&path, json!({"url": hook_url})).await;
    assert_eq!(s, 201, "{hook}");
    *secret.lock().unwrap() = hook["secret"].as_str().unwrap().to_string();
    assert_eq!(hook["events"].as_array().unwrap().len(), 6, "all events by default");
    let (_, listed) = w.clinic_admin.get(&path).await;
    assert!(listed[0].get("secret").is_none(), "the secret is shown once: {listed}");
    // Another clinic's admin sees nothing of it.
    let stranger = register(&srv, &http, "other-ca@example.org", "clinic_admin").await;
    assert_eq!(stranger.get(&path).await.0, StatusCode::FORBIDDEN);

    let p = register(&srv, &http, "hook-patient@example.org", "patient").await;
    let slots = later_slots(&free_slots(&p, &w.doctor_id).await);
    let a = book(&p, &slots[0]).await;
    let a = reschedule(&p, &a, &slots[1]).await;
    let (s, _) = w.doctor.post(&format!("/appointments/{}/arrived", a["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(s, 200);
    let b = book(&p, &slots[3]).await;
    cancel(&p, b["id"].as_str().unwrap(), "").await;
    let expected = [
        "appointment.arrived",
        "appointment.booked",
        "appointment.booked",
        "appointment.cancelled",
        "appointment.rescheduled",
    ];

    let log_path = format!("{path}/{}/deliveries", hook["id"].as_str().unwrap());
    let t0 = Instant::now();
    loop {
        let (_, log) = w.clinic_admin.get(&log_path).await;
        let log = log.as_array().unwrap().clone();
        if log.len() == expected.len() && log.iter().all(|d| d["status"] == "delivered") {
            // The failures are in the log: attempts and the receiver's last answer.
            assert!(log.iter().any(|d| d["attempts"].as_u64().unwrap() > 1), "{log:#?}");
            assert!(log.iter().all(|d| d["last_status"] == 204), "{log:#?}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "webhooks not delivered: {log:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = seen.lock().unwrap();
    assert_eq!(r.refused, 5);
    assert_eq!(r.bad_signatures, 0);
    let mut types: Vec<&str> = r.events.values().map(|(t, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(types, expected, "every event once after dedup by event id");
    assert!(r.requests > r.events.len(), "the refused ones were retried");
}

#[tokio::test]
async fn the_waitlist_offers_a_freed_slot_by_email_with_a_link_to_confirm() {
    let smtp = SmtpSink::start();
    let srv = TestServer::start_with(&str_args(&fast_workers(&smtp.url())));
    let http = client();
    let w = world(&srv, &http, "wait").await;
    let first = register(&srv, &http, "first@example.org", "patient").await;
    let waiting = register(&srv, &http, "waiting@example.org", "patient").await;
    let slots = later_slots(&free_slots(&first, &w.doctor_id).await);
    let a = book(&first, &slots[0]).await;
    let (s, entry) = waiting.post(&format!("/doctors/{}/waitlist", w.doctor_id), json!({"mode": "in_person"})).await;
    assert_eq!((s, entry["status"].as_str()), (StatusCode::CREATED, Some("waiting")), "{entry}");

    cancel(&first, a["id"].as_str().unwrap(), "can't make it").await;
    let t0 = Instant::now();
    let offered = loop {
        let (_, mine) = waiting.get("/waitlist").await;
        if mine[0]["status"] == "offered" {
            break mine[0].clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no offer: {mine}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hold_id = offered["offered_appointment_id"].as_str().unwrap();
    let (_, hold) = waiting.get(&format!("/appointments/{hold_id}")).await;
    assert_eq!((hold["status"].as_str(), hold["start"].as_str()), (Some("held"), slots[0]["start"].as_str()));
    // The e-mail says so, with the link to the hold page.
    let t0 = Instant::now();
    let offer = loop {
        if let Some(m) = smtp.messages().into_iter().find(|m| m["to"] == "waiting@example.org") {
            break m;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no offer e-mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        offer["subject"],
        format!("A slot with Dr Test is free: {}", paris(slots[0]["start"].as_str().unwrap()))
    );
    assert!(offer["text"].as_str().unwrap().contains(&format!("{}/holds/{hold_id}", srv.url)));
    assert_eq!(offer["invite"]["status"], "TENTATIVE");
    // Confirming books it, like any hold.
    let (s, booked) = waiting.post("/appointments", json!({"slot_id": slots[0]["slot_id"]})).await;
    assert_eq!((s, booked["id"].as_str()), (StatusCode::CREATED, Some(hold_id)));
    assert_eq!(booked["status"], "booked");
}

#[tokio::test]
async fn a_doctors_calendar_feed_needs_its_current_token_and_shows_statuses() {
    let srv = TestServer::start_with(&["--reminders", "", "--arrival-window-minutes", "10080"]);
    let http = client();
    let w = world(&srv, &http, "feed").await;
    let p = register(&srv, &http, "feed-patient@example.org", "patient").await;
    let slots = later_slots(&free_slots(&p, &w.doctor_id).await);
    let a = book(&p, &slots[0]).await;
    let b = book(&p, &slots[2]).await;
    w.doctor.post(&format!("/appointments/{}/arrived", a["id"].as_str().unwrap()), json!({})).await;
    cancel(&p, b["id"].as_str().unwrap(), "").await;

    let token_path = format!("/doctors/{}/calendar-token", w.doctor_id);
    assert_eq!(p.post(&token_path, json!({})).await.0, StatusCode::FORBIDDEN, "not the patient's to take");
    let (s, feed) = w.doctor.post(&token_path, json!({})).await;
    assert_eq!(s, 201, "{feed}");
    let url = format!("{}{}", srv.url, feed["path"].as_str().unwrap());
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let text = r.text().await.unwrap();
    let script = r#"
import json, sys
from icalendar import Calendar
cal = Calendar.from_ical(sys.stdin.read())
print(json.dumps([{"uid": str(e["UID"]), "status": str(e["STATUS"]), "x": str(e["X-MEDISLOT-STATUS"]),
                   "summary": str(e["SUMMARY"]), "start": e.decoded("DTSTART").isoformat()}
                  for e in cal.walk("VEVENT")]))
"#;
    let mut child =
        Command::new(python()).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "icalendar could not parse the feed:\n{text}");
    let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let by_uid: HashMap<String, &Value> = events.iter().map(|e| (e["uid"].as_str().unwrap().to_string(), e)).collect();
    let ea = by_uid[&format!("{}@medislot", a["id"].as_str().unwrap())];
    assert_eq!((ea["x"].as_str(), ea["status"].as_str()), (Some("arrived"), Some("CONFIRMED")));
    assert!(ea["summary"].as_str().unwrap().contains("User feed-patient@example.org"));
    let eb = by_uid[&format!("{}@medislot", b["id"].as_str().unwrap())];
    assert_eq!((eb["x"].as_str(), eb["status"].as_str()), (Some("cancelled"), Some("CANCELLED")));

    // A new token revokes the old one; revoking ends the feed; a wrong token learns nothing.
    let (_, again) = w.doctor.post(&token_path, json!({})).await;
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    let url2 = format!("{}{}", srv.url, again["path"].as_str().unwrap());
    assert_eq!(http.get(&url2).send().await.unwrap().status(), 200);
    let (s, _, _) = w.doctor.send(Method::DELETE, &token_path, None, &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(http.get(&url2).send().await.unwrap().status(), 404);
    let none = format!("{}/api/v1/doctors/{}/calendar.ics", srv.url, w.doctor_id);
    assert_eq!(http.get(&none).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn bad_webhook_and_waitlist_input_is_refused_naming_the_field_and_writes_nothing() {
    let srv = TestServer::start_with(&["--reminders", ""]);
    let http = client();
    let w = world(&srv, &http, "bad").await;
    let path = format!("/clinics/{}/webhooks", w.clinic_id);
    for (body, field) in [
        (json!({"url": "ftp://example.org/x"}), "url"),
        (json!({"url": "http://"}), "url"),
        // Receivers inside the node's own network are refused (SSRF).
        (json!({"url": "http://127.0.0.1:5432/"}), "url"),
        (json!({"url": "http://[::1]:8080/hook"}), "url"),
        (json!({"url": "http://localhost:5432/"}), "url"),
        (json!({"url": "http://169.254.169.254/latest/meta-data/"}), "url"),
        (json!({"url": "http://10.1.2.3/hook"}), "url"),
        (json!({"url": "http://[fd00::1]/hook"}), "url"),
        (json!({"url": "http://user:pw@93.184.216.34/hook"}), "url"),
        (
            json!({"url": "https://example.org/hook", "events": ["appointment.booked", "appointment.exploded"]}),
            "events[1]",
        ),
    ] {
        let (s, v) = w.clinic_admin.post(&path, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let (s, v) = w.clinic_admin.post(&path, json!({"url": "https://example.org/hook", "colour": "red"})).await;
    assert!(s.is_client_error() && v["detail"].as_str().unwrap().contains("colour"), "{s} {v}");
    assert_eq!(w.clinic_admin.get(&path).await.1, json!([]));
    assert_eq!(w.doctor.post(&path, json!({"url": "https://example.org/hook"})).await.0, StatusCode::FORBIDDEN);

    let p = register(&srv, &http, "bad-patient@example.org", "patient").await;
    let wl = format!("/doctors/{}/waitlist", w.doctor_id);
    for (body, field) in [
        (json!({"from": "next tuesday"}), "from"),
        (json!({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}), "to"),
        (json!({"to": "2001-01-01T00:00:00Z"}), "to"),
        (json!({"mode": "teleport"}), "mode"),
        (json!({"mode": "online"}), "mode"),
    ] {
        let (s, v) = p.post(&wl, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    assert_eq!(p.get("/waitlist").await.1, json!([]));
    assert_eq!(w.doctor.post(&wl, json!({})).await.0, StatusCode::FORBIDDEN, "doctors do not join waitlists");
    let nobody = format!("/doctors/{}/waitlist", uuid_like());
    assert_eq!(p.post(&nobody, json!({})).await.0, StatusCode::NOT_FOUND);
    let (s, _) = p.post(&wl, json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(p.post(&wl, json!({})).await.0, StatusCode::CONFLICT, "already waiting");
}

fn uuid_like() -> &'static str {
    "01900000-0000-7000-8000-000000000000"
}

/// A `medislot worker` process on the server's database.
fn spawn_worker(srv: &TestServer, smtp: &SmtpSink, crash_after_send: f64) -> Child {
    let target = TestServerRef { data_dir: srv.data_dir.clone(), database_url: srv.database_url.clone() };
    target.worker(&smtp.url(), crash_after_send)
}

/// Group received mails by Message-ID: (distinct messages, copies of each).
fn by_message_id(mails: &[Value]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in mails {
        *out.entry(m["message_id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    out
}

#[tokio::test]
async fn a_worker_killed_between_sending_and_recording_sends_again_with_the_same_message_id() {
    let smtp = SmtpSink::start();
    let srv = TestServer::start_with(&["--workers", "false"]);
    let http = client();
    let w = world(&srv, &http, "crash1").await;
    let p = register(&srv, &http, "crash1-patient@example.org", "patient").await;
    let slots = later_slots(&free_slots(&p, &w.doctor_id).await);
    book(&p, &slots[0]).await;

    // It sends the first message, then dies before recording it.
    let mut doomed = spawn_worker(&srv, &smtp, 1.0);
    let status = doomed.wait().unwrap();
    assert!(!status.success(), "the failpoint aborts the worker");
    assert_eq!(smtp.count(), 1);
    // After a restart the message goes again, with the same Message-ID, and then the rest.
    let mut worker = spawn_worker(&srv, &smtp, 0.0);
    smtp.wait_for(3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = worker.kill();
    let _ = worker.wait();
    let copies = by_message_id(&smtp.messages());
    assert_eq!(copies.len(), 2, "two messages (patient and doctor): {copies:?}");
    assert_eq!(copies.values().copied().max(), Some(2), "the interrupted one twice, the other once: {copies:?}");
    assert_eq!(smtp.count(), 3);
}

#[tokio::test]
async fn no_notification_is_lost_across_200_changes_with_random_worker_kills() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test seed: {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let smtp = SmtpSink::start();
    let srv = TestServer::start_with(&["--workers", "false"]);
    let http = client();
    let w = world(&srv, &http, "crash").await;
    let mut patients = Vec::new();
    for i in 0..4 {
        patients.push(register(&srv, &http, &format!("crash-p{i}@example.org"), "patient").await);
    }
    let mut free: Vec<Value> = later_slots(&free_slots(&patients[0], &w.doctor_id).await);

    // The changes run against the API while a killer restarts the worker at random.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (stop, srv_dir, db) = (stop.clone(), srv.data_dir.clone(), srv.database_url.clone());
        let smtp_url = smtp.url();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        std::thread::spawn(move || {
            let (mut kills, mut aborts) = (0, 0);
            let fake = TestServerRef { data_dir: srv_dir, database_url: db };
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut child = fake.worker(&smtp_url, 0.02);
                let deadline = Instant::now() + Duration::from_millis(rng.gen_range(100..700));
                loop {
                    if let Some(_status) = child.try_wait().unwrap() {
                        aborts += 1;
                        break;
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill(); // SIGKILL, wherever it is
                        let _ = child.wait();
                        kills += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            (kills, aborts)
        })
    };

    // Expected messages: (appointment, kind) per change, each to the patient and the doctor.
    let mut expected: HashMap<(String, &str), usize> = HashMap::new();
    let mut live: Vec<(usize, Value)> = Vec::new();
    let mut changes = 0;
    while changes < 200 {
        let choice = rng.gen_range(0..10);
        if live.is_empty() || choice < 4 {
            let who = rng.gen_range(0..patients.len());
            let slot = free.remove(rng.gen_range(0..free.len()));
            let a = book(&patients[who], &slot).await;
            *expected.entry((a["id"].as_str().unwrap().to_string(), "booked")).or_default() += 1;
            live.push((who, a));
        } else if choice < 7 {
            let i = rng.gen_range(0..live.len());
            let slot = free.remove(rng.gen_range(0..free.len()));
            let (who, a) = live[i].clone();
            let moved = reschedule(&patients[who], &a, &slot).await;
            *expected.entry((a["id"].as_str().unwrap().to_string(), "rescheduled")).or_default() += 1;
            live[i] = (who, moved);
        } else {
            let (who, a) = live.swap_remove(rng.gen_range(0..live.len()));
            cancel(&patients[who], a["id"].as_str().unwrap(), "").await;
            *expected.entry((a["id"].as_str().unwrap().to_string(), "cancelled")).or_default() += 1;
        }
        changes += 1;
        if changes % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..300))).await;
        }
    }
    let wanted: usize = expected.values().sum::<usize>() * 2;
    // Let the killer go on a little while messages are still flowing, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (kills, aborts) = tokio::task::spawn_blocking(move || killer.join().unwrap()).await.unwrap();
    // One last worker, left alone, drains what is left.
    let mut last = spawn_worker(&srv, &smtp, 0.0);
    let t0 = Instant::now();
    while by_message_id(&smtp.messages()).len() < wanted && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = last.kill();
    let _ = last.wait();

    let mails = smtp.messages();
    let copies = by_message_id(&mails);
    // What arrived, by (appointment, kind, recipient), counting each Message-ID once.
    let mut got: HashMap<(String, &str, String), usize> = HashMap::new();
    let mut seen_ids = HashSet::new();
    for m in &mails {
        if !seen_ids.insert(m["message_id"].as_str().unwrap().to_string()) {
            continue;
        }
        let subject = m["subject"].as_str().unwrap();
        let kind = if subject.contains("confirmed") || subject.starts_with("New appointment") {
            "booked"
        } else if subject.contains("moved") {
            "rescheduled"
        } else if subject.contains("cancelled") {
            "cancelled"
        } else {
            panic!("unexpected e-mail {subject}")
        };
        let appointment =
            m["message_id"].as_str().unwrap().trim_start_matches('<').split('.').next().unwrap().to_string();
        *got.entry((appointment, kind, m["to"].as_str().unwrap().to_string())).or_default() += 1;
    }
    let mut lost = 0;
    for ((appointment, kind), n) in &expected {
        let to_doctor = got.get(&(appointment.clone(), *kind, "dr-crash@example.org".into())).copied().unwrap_or(0);
        let to_patient: usize = got
            .iter()
            .filter(|((a, k, to), _)| a == appointment && k == kind && to.starts_with("crash-p"))
            .map(|(_, c)| *c)
            .sum();
        lost += n.saturating_sub(to_doctor) + n.saturating_sub(to_patient);
    }
    let distinct = copies.len();
    let sends = mails.len();
    let duplicates = sends - distinct;
    println!(
        "crash test: {changes} changes, {wanted} messages expected, {sends} sends, {distinct} distinct Message-IDs, \
         {duplicates} duplicates sent (deduplicable), lost {lost}; worker killed {kills} times, aborted by the failpoint {aborts} times"
    );
    assert_eq!(lost, 0, "no notification lost");
    assert_eq!(distinct, wanted, "nothing unexpected was sent");
    assert!(kills + aborts > 5, "the worker was interrupted often ({kills} kills, {aborts} aborts)");
}

/// What the killer thread needs to start workers (the server itself stays in the test).
struct TestServerRef {
    data_dir: std::path::PathBuf,
    database_url: Option<String>,
}

impl TestServerRef {
    fn worker(&self, smtp_url: &str, crash_after_send: f64) -> Child {
        Command::new(BIN)
            .args(["worker", "--data-dir"])
            .arg(&self.data_dir)
            .args(self.database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
            .args(["--smtp-url", smtp_url, "--notify-poll-ms", "20", "--notify-lease-secs", "1", "--reminders", ""])
            .env("MEDISLOT_FAILPOINT_CRASH_AFTER_SEND", crash_after_send.to_string())
            .env("MEDISLOT_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start medislot worker")
    }
}
