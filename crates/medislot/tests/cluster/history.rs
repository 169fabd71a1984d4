//! Jepsen-style workload and history checker: clients book, reschedule and
//! cancel over HTTP, every operation and its answer is recorded (ok, failed,
//! or unknown when the answer never came or said "retry"), and the final
//! database is checked against what the history allows.

use crate::helpers::{query, User};
use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// A free slot the workload may ask for.
#[derive(Clone, Debug)]
pub struct Slot {
    pub doctor: String,
    pub slot_id: String,
    pub start: i64,
}

impl Slot {
    pub fn from_json(doctor: &str, v: &Value) -> Slot {
        Slot {
            doctor: doctor.to_string(),
            slot_id: v["slot_id"].as_str().unwrap().to_string(),
            start: secs(v["start"].as_str().unwrap()),
        }
    }
}

pub fn secs(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap_or_else(|e| panic!("bad time {rfc3339}: {e}")).as_second()
}

#[derive(Clone, Debug)]
pub enum Op {
    Book { patient: String, doctor: String, start: i64 },
    Reschedule { id: String, to: i64 },
    Cancel { id: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 200/201: the change happened. For a booking, the new appointment's id.
    Ok(Option<String>),
    /// A definite refusal (409): nothing changed.
    Failed(u16),
    /// No answer, or 503 "retry": the change may or may not have happened.
    Unknown(String),
    /// An answer no correct server gives here (500, a 503 without Retry-After, …).
    Unexpected(String),
}

#[derive(Clone, Debug)]
pub struct Record {
    pub client: usize,
    pub op: Op,
    pub outcome: Outcome,
    /// When the request was sent and how long its answer took.
    pub sent: Duration,
    pub took: Duration,
}

/// What the clients do, and against which nodes.
pub struct Workload {
    pub nodes: Vec<String>,
    pub patients: Vec<User>,
    pub slots: Vec<Slot>,
    pub clients: usize,
    /// Of the operations on an appointment the client already has, the share that reschedule (the rest cancel).
    pub reschedule_share: f64,
}

struct Mine {
    id: String,
    doctor: String,
    start: i64,
    etag: String,
}

impl Workload {
    /// Starts every client; they run until [`Running::finish`].
    pub fn start(self: Arc<Self>) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let began = Instant::now();
        let task = tokio::spawn(self.run(stop.clone(), began));
        Running { stop, began, task }
    }

    async fn run(self: Arc<Self>, stop: Arc<AtomicBool>, began: Instant) -> Vec<Record> {
        let clients = (0..self.clients).map(|c| {
            let w = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move { w.client(c, began, &stop).await })
        });
        let mut history = Vec::new();
        for h in futures::future::join_all(clients).await {
            history.extend(h.expect("client task panicked"));
        }
        history
    }

    async fn client(&self, c: usize, began: Instant, stop: &AtomicBool) -> Vec<Record> {
        let me =
            User { base: self.nodes[c % self.nodes.len()].clone(), ..self.patients[c % self.patients.len()].clone() };
        let mut rng = StdRng::seed_from_u64(c as u64);
        let mut mine: Vec<Mine> = Vec::new();
        let mut history = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = began.elapsed();
            let t0 = Instant::now();
            let record = if mine.is_empty() || (mine.len() < 3 && rng.gen_bool(0.5)) {
                let slot = &self.slots[rng.gen_range(0..self.slots.len())];
                let key = uuid::Uuid::new_v4().to_string();
                let answer = me
                    .try_send(
                        Method::POST,
                        "/appointments",
                        Some(json!({"slot_id": slot.slot_id, "reason": "workload"})),
                        &[("Idempotency-Key", &key)],
                    )
                    .await;
                let outcome = judge(answer, StatusCode::CREATED, |body, headers| {
                    assert_eq!(secs(body["start"].as_str().unwrap()), slot.start, "booked the slot asked for");
                    let id = body["id"].as_str().unwrap().to_string();
                    mine.push(Mine {
                        id: id.clone(),
                        doctor: slot.doctor.clone(),
                        start: slot.start,
                        etag: etag(headers),
                    });
                    Some(id)
                });
                Op::Book { patient: me.id.clone(), doctor: slot.doctor.clone(), start: slot.start }.record(c, outcome)
            } else {
                let i = rng.gen_range(0..mine.len());
                let a = &mine[i];
                let (op, answer) = if rng.gen_bool(self.reschedule_share) {
                    let same_doctor: Vec<&Slot> = self.slots.iter().filter(|s| s.doctor == a.doctor).collect();
                    let to = same_doctor[rng.gen_range(0..same_doctor.len())];
                    let answer = me
                        .try_send(
                            Method::POST,
                            &format!("/appointments/{}/reschedule", a.id),
                            Some(json!({"slot_id": to.slot_id})),
                            &[("If-Match", &a.etag)],
                        )
                        .await;
                    (Op::Reschedule { id: a.id.clone(), to: to.start }, answer)
                } else {
                    let answer = me
                        .try_send(
                            Method::POST,
                            &format!("/appointments/{}/cancel", a.id),
                            Some(json!({"reason": "workload"})),
                            &[("If-Match", &a.etag)],
                        )
                        .await;
                    (Op::Cancel { id: a.id.clone() }, answer)
                };
                let outcome = judge(answer, StatusCode::OK, |body, headers| {
                    match &op {
                        Op::Reschedule { to, .. } => {
                            assert_eq!(secs(body["start"].as_str().unwrap()), *to, "moved to the slot asked for");
                            assert_eq!(body["status"], "booked");
                            mine[i].start = *to;
                            mine[i].etag = etag(headers);
                        }
                        _ => {
                            assert_eq!(body["status"], "cancelled");
                            mine.swap_remove(i);
                        }
                    }
                    None
                });
                // After an unknown outcome the client no longer knows the
                // appointment's version: it leaves it alone from then on.
                if matches!(outcome, Outcome::Unknown(_)) {
                    let _ = mine.iter().position(|m| m.id == *op.id()).map(|j| mine.swap_remove(j));
                }
                op.record(c, outcome)
            };
            history.push(Record { sent, took: t0.elapsed(), ..record });
            if matches!(history.last().unwrap().outcome, Outcome::Unknown(_)) {
                // Back off a little, as a real client told "retry shortly" would.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        history
    }
}

/// A workload in progress.
pub struct Running {
    stop: Arc<AtomicBool>,
    /// What [`Record::sent`] counts from.
    pub began: Instant,
    task: tokio::task::JoinHandle<Vec<Record>>,
}

impl Running {
    /// Stops the clients and returns the whole history, in per-client order.
    pub async fn finish(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("workload panicked")
    }
}

impl Op {
    fn record(self, client: usize, outcome: Outcome) -> Record {
        Record { client, op: self, outcome, sent: Duration::ZERO, took: Duration::ZERO }
    }

    fn id(&self) -> &String {
        match self {
            Op::Reschedule { id, .. } | Op::Cancel { id } => id,
            Op::Book { .. } => unreachable!("a booking has no id before it is acknowledged"),
        }
    }
}

fn etag(h: &HeaderMap) -> String {
    h.get("etag").expect("ETag on a changed appointment").to_str().unwrap().to_string()
}

/// Classifies an answer: `on_ok` reads a success, 409 (the slot taken, or the
/// patient already booked then with another doctor) is a definite failure,
/// 503 with Retry-After or no answer at all is unknown, anything else is a bug.
fn judge(
    answer: reqwest::Result<(StatusCode, Value, HeaderMap)>,
    ok: StatusCode,
    on_ok: impl FnOnce(&Value, &HeaderMap) -> Option<String>,
) -> Outcome {
    match answer {
        Err(e) => Outcome::Unknown(format!("no answer: {e}")),
        Ok((s, body, headers)) if s == ok => Outcome::Ok(on_ok(&body, &headers)),
        Ok((StatusCode::CONFLICT, body, _))
            if body["type"] == "https://medislot.dev/problems/slot-taken"
                || body["type"] == "https://medislot.dev/problems/patient-busy" =>
        {
            Outcome::Failed(409)
        }
        Ok((StatusCode::SERVICE_UNAVAILABLE, body, headers)) if headers.contains_key("retry-after") => {
            Outcome::Unknown(format!("503 {}", body["type"]))
        }
        Ok((s, body, _)) => Outcome::Unexpected(format!("{s} {body}")),
    }
}

/// One appointment row as the database holds it at the end.
#[derive(Debug)]
pub struct Row {
    pub id: String,
    pub patient: String,
    pub doctor: String,
    pub start: i64,
    pub status: String,
}

/// The appointments of these doctors.
pub fn rows(database_url: &str, doctors: &[String]) -> Vec<Row> {
    let ids = doctors.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(", ");
    query(
        database_url,
        &format!(
            "SELECT id, patient_id, doctor_id, extract(epoch FROM start_at)::bigint, status
             FROM appointments WHERE doctor_id IN ({ids})"
        ),
    )
    .into_iter()
    .map(|r| Row {
        id: r[0].clone(),
        patient: r[1].clone(),
        doctor: r[2].clone(),
        start: r[3].parse().unwrap(),
        status: r[4].clone(),
    })
    .collect()
}

/// Pairs of active appointments of one doctor (P1), or of one patient, whose
/// times overlap: there are none, ever.
pub fn overlapping_pairs(database_url: &str) -> usize {
    let active = "('held', 'pending', 'booked', 'arrived')";
    let n = query(
        database_url,
        &format!(
            "SELECT count(*) FROM appointments a JOIN appointments b
               ON (a.doctor_id = b.doctor_id OR a.patient_id = b.patient_id) AND a.id < b.id AND a.start_at < b.end_at AND b.start_at < a.end_at
             WHERE a.status IN {active} AND b.status IN {active}"
        ),
    );
    n[0][0].parse().unwrap()
}

/// What the history says and what was found.
#[derive(Debug, Default)]
pub struct Summary {
    pub by_kind: BTreeMap<String, usize>,
    pub acknowledged_bookings: usize,
    pub unknown: usize,
    pub active_at_end: usize,
}

/// Checks the final rows against the history: every acknowledged change is
/// there, every appointment was asked for, and each appointment's final state
/// is one the history allows. Panics with the first violations found.
pub fn check(history: &[Record], rows: &[Row]) -> Summary {
    let mut s = Summary::default();
    let mut violations = Vec::new();
    // The final states each acknowledged appointment may be in: (start, status).
    let mut allowed: HashMap<String, Vec<(i64, &str)>> = HashMap::new();
    let mut unknown_books: HashSet<(&str, &str, i64)> = HashSet::new();
    for r in history {
        let kind = match &r.op {
            Op::Book { .. } => "book",
            Op::Reschedule { .. } => "reschedule",
            Op::Cancel { .. } => "cancel",
        };
        let outcome = match &r.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "unknown",
            Outcome::Unexpected(_) => "unexpected",
        };
        *s.by_kind.entry(format!("{kind} {outcome}")).or_default() += 1;
        if let Outcome::Unexpected(what) = &r.outcome {
            violations.push(format!("client {} {:?}: unexpected answer {what}", r.client, r.op));
        }
        if matches!(r.outcome, Outcome::Unknown(_)) {
            s.unknown += 1;
        }
        match (&r.op, &r.outcome) {
            (Op::Book { start, .. }, Outcome::Ok(Some(id))) => {
                s.acknowledged_bookings += 1;
                allowed.insert(id.clone(), vec![(*start, "booked")]);
            }
            (Op::Book { patient, doctor, start }, Outcome::Unknown(_)) => {
                unknown_books.insert((patient, doctor, *start));
            }
            (Op::Reschedule { id, to }, outcome) => {
                let now = allowed.get_mut(id).expect("rescheduled an acknowledged appointment");
                match outcome {
                    Outcome::Ok(_) => *now = vec![(*to, "booked")],
                    Outcome::Unknown(_) => now.push((*to, "booked")),
                    _ => {}
                }
            }
            (Op::Cancel { id }, outcome) => {
                let now = allowed.get_mut(id).expect("cancelled an acknowledged appointment");
                let start = now[0].0;
                match outcome {
                    Outcome::Ok(_) => *now = vec![(start, "cancelled")],
                    Outcome::Unknown(_) => now.push((start, "cancelled")),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let found: HashMap<&str, &Row> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    for (id, states) in &allowed {
        match found.get(id.as_str()) {
            None => violations.push(format!("acknowledged appointment {id} is missing")),
            Some(row) if !states.contains(&(row.start, row.status.as_str())) => violations.push(format!(
                "appointment {id} ends as ({}, {}), but the history allows only {states:?}",
                row.start, row.status
            )),
            Some(_) => {}
        }
    }
    for row in rows {
        if row.status != "cancelled" {
            s.active_at_end += 1;
        }
        if allowed.contains_key(&row.id) {
            continue;
        }
        let asked = unknown_books.contains(&(row.patient.as_str(), row.doctor.as_str(), row.start));
        if !asked || row.status != "booked" {
            violations.push(format!("appointment nobody was told about and nobody could have asked for: {row:?}"));
        }
    }
    assert!(
        violations.is_empty(),
        "{} violations in a history of {} operations, for example:\n{}",
        violations.len(),
        history.len(),
        violations.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    s
}

// The checker itself must be able to fail: each kind of violation is caught.
fn book(id: &str, start: i64, outcome: Outcome) -> Record {
    let op = Op::Book { patient: "p".into(), doctor: "d".into(), start };
    let outcome = match outcome {
        Outcome::Ok(_) => Outcome::Ok(Some(id.into())),
        other => other,
    };
    op.record(0, outcome)
}

fn row(id: &str, start: i64, status: &str) -> Row {
    Row { id: id.into(), patient: "p".into(), doctor: "d".into(), start, status: status.into() }
}

#[test]
#[should_panic(expected = "acknowledged appointment a is missing")]
fn checker_catches_a_lost_acknowledged_booking() {
    check(&[book("a", 100, Outcome::Ok(None))], &[]);
}

#[test]
#[should_panic(expected = "nobody was told about")]
fn checker_catches_an_appointment_nobody_asked_for() {
    check(&[book("a", 100, Outcome::Failed(409))], &[row("x", 100, "booked")]);
}

#[test]
#[should_panic(expected = "the history allows only")]
fn checker_catches_an_acknowledged_cancel_that_did_not_stick() {
    let h = [book("a", 100, Outcome::Ok(None)), Op::Cancel { id: "a".into() }.record(0, Outcome::Ok(None))];
    check(&h, &[row("a", 100, "booked")]);
}

#[test]
#[should_panic(expected = "the history allows only")]
fn checker_catches_a_refused_reschedule_that_moved_anyway() {
    let h =
        [book("a", 100, Outcome::Ok(None)), Op::Reschedule { id: "a".into(), to: 200 }.record(0, Outcome::Failed(409))];
    check(&h, &[row("a", 200, "booked")]);
}

#[test]
fn checker_lets_an_unknown_outcome_go_either_way() {
    let moved = [
        book("a", 100, Outcome::Ok(None)),
        Op::Reschedule { id: "a".into(), to: 200 }.record(0, Outcome::Unknown("503".into())),
    ];
    check(&moved, &[row("a", 100, "booked")]);
    check(&moved, &[row("a", 200, "booked")]);
    let unknown_book = [book("a", 100, Outcome::Unknown("no answer".into()))];
    check(&unknown_book, &[]);
    check(&unknown_book, &[row("x", 100, "booked")]);
}
