//! The partition test: three regions, a `strict` and an `available` clinic in
//! each, patients in every region booking doctors of every region, and
//! cancelling and rescheduling what they booked (remote ones through the
//! doctor's home region), while a nemesis cuts,
//! delays, flaps and heals the links between regions and kills one region's
//! node. Every operation is recorded with its outcome; after the final heal
//! and a bounded settle time a checker reads every region's database:
//!
//! 1. no two active appointments of one doctor overlap (P1);
//! 2. every acknowledged booking not later cancelled is at home, and nothing
//!    is there that no client asked for (P2);
//! 3. no Idempotency-Key produced a second appointment (P3);
//! 4. every 202 ended booked or conflict; `strict` refusals came fast and
//!    none of them was booked (P7);
//! 5. every region shows the same busy times for every doctor.
//!
//! `REGIONS_SECONDS` sets the length (CI: 20 s), `REGIONS_SEED` replays a run.

use crate::harness::*;
use crate::helpers::*;
use medislot_store::{AppointmentQuery, AppointmentRecord, Scope};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    Booked,
    Pending,
    Taken,
    /// 503 home-region-unreachable: definitely not done.
    Refused,
    /// Another definite refusal (4xx).
    Failed,
    /// No answer, or a 5xx that does not say: maybe done.
    Unknown,
}

#[derive(Debug, Clone)]
struct Op {
    kind: &'static str,
    client: String,
    doctor: String,
    home: String,
    policy: String,
    key: String,
    appointment: Option<String>,
    outcome: Outcome,
    took: Duration,
}

struct Doctor {
    id: String,
    home: String,
    policy: String,
    slots: Vec<Value>,
}

fn outcome_of(status: u16, body: &Value) -> Outcome {
    match status {
        200 | 201 => Outcome::Booked,
        202 => Outcome::Pending,
        409 if body["type"].as_str().is_some_and(|t| t.ends_with("/slot-taken")) => Outcome::Taken,
        503 if body["type"].as_str().is_some_and(|t| t.ends_with("/home-region-unreachable")) => Outcome::Refused,
        400..=499 => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

async fn send(u: &User, path: &str, body: Value, key: Option<&str>) -> (Outcome, Value, Duration) {
    let t0 = Instant::now();
    // Moves and cancels here do not track versions: `If-Match: *` (a booking ignores it).
    let mut headers: Vec<(&str, &str)> = vec![("If-Match", "*")];
    headers.extend(key.map(|k| ("Idempotency-Key", k)));
    match u.try_send(reqwest::Method::POST, path, Some(body), &headers).await {
        Ok((s, v, _)) => (outcome_of(s.as_u16(), &v), v, t0.elapsed()),
        Err(_) => (Outcome::Unknown, Value::Null, t0.elapsed()),
    }
}

/// One patient's loop: book any region's doctors; cancel or move their own local bookings.
async fn client_loop(
    me: User,
    region: String,
    doctors: Arc<Vec<Doctor>>,
    history: Arc<Mutex<Vec<Op>>>,
    until: Instant,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<(String, usize)> = Vec::new(); // acknowledged bookings: (appointment id, doctor index)
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let roll = rng.gen_range(0..10);
        if roll < 7 || mine.is_empty() {
            let di = rng.gen_range(0..doctors.len());
            let d = &doctors[di];
            let slot = &d.slots[rng.gen_range(0..d.slots.len())];
            let key = format!("{}-{}-{n}", region, &me.id[me.id.len() - 6..]);
            let body = json!({"slot_id": slot["slot_id"], "reason": key});
            let mut attempt = send(&me, "/appointments", body.clone(), Some(&key)).await;
            let record = |outcome: Outcome, v: &Value, took: Duration, kind: &'static str| Op {
                kind,
                client: region.clone(),
                doctor: d.id.clone(),
                home: d.home.clone(),
                policy: d.policy.clone(),
                key: key.clone(),
                appointment: v["id"].as_str().map(str::to_string),
                outcome,
                took,
            };
            history.lock().unwrap().push(record(attempt.0, &attempt.1, attempt.2, "book"));
            if attempt.0 == Outcome::Unknown {
                // Retry with the same key: never a second appointment (P3).
                tokio::time::sleep(Duration::from_millis(300)).await;
                attempt = send(&me, "/appointments", body, Some(&key)).await;
                history.lock().unwrap().push(record(attempt.0, &attempt.1, attempt.2, "book"));
            }
            if attempt.0 == Outcome::Booked {
                if let Some(id) = attempt.1["id"].as_str() {
                    mine.push((id.to_string(), di));
                }
            }
        } else {
            let i = rng.gen_range(0..mine.len());
            let (id, di) = mine[i].clone();
            let d = &doctors[di];
            let (kind, path, body) = if roll < 9 {
                ("cancel", format!("/appointments/{id}/cancel"), json!({"reason": "test"}))
            } else {
                let slot = &d.slots[rng.gen_range(0..d.slots.len())];
                ("reschedule", format!("/appointments/{id}/reschedule"), json!({"slot_id": slot["slot_id"]}))
            };
            let (outcome, _, took) = send(&me, &path, body, None).await;
            if kind == "cancel" && outcome != Outcome::Failed {
                mine.swap_remove(i);
            }
            history.lock().unwrap().push(Op {
                kind,
                client: region.clone(),
                doctor: d.id.clone(),
                home: d.home.clone(),
                policy: d.policy.clone(),
                key: String::new(),
                appointment: Some(id),
                outcome,
                took,
            });
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..60))).await;
    }
}

/// Cuts, delays, flaps and heals links, and kills one region's node once.
async fn nemesis(mesh: Arc<tokio::sync::Mutex<Mesh>>, until: Instant, seed: u64, log: Arc<Mutex<Vec<String>>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut killed = false;
    while Instant::now() < until {
        let action = rng.gen_range(0..6);
        let a = NAMES[rng.gen_range(0..3)];
        let b = *NAMES.iter().filter(|n| **n != a).nth(rng.gen_range(0..2)).unwrap();
        let started = Instant::now();
        {
            let mut m = mesh.lock().await;
            match action {
                0 => {
                    let fault = if rng.gen_bool(0.5) { Fault::Blackhole } else { Fault::Refuse };
                    m.isolate(a, fault);
                    log.lock().unwrap().push(format!("isolate {a} ({fault:?})"));
                }
                1 => {
                    m.link(a, b).set(Fault::Blackhole, 0);
                    log.lock().unwrap().push(format!("one-way cut {a}→{b}"));
                }
                2 => {
                    log.lock().unwrap().push(format!("flapping {a}↔{b}"));
                    for i in 0..8 {
                        let f = if i % 2 == 0 { Fault::Refuse } else { Fault::Pass };
                        m.link(a, b).set(f, 0);
                        m.link(b, a).set(f, 0);
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                }
                3 => {
                    m.link(a, b).set(Fault::Pass, 300);
                    m.link(b, a).set(Fault::Pass, 300);
                    log.lock().unwrap().push(format!("latency 300 ms {a}↔{b}"));
                }
                4 if !killed => {
                    killed = true;
                    log.lock().unwrap().push(format!("kill -9 {a}, restart after 1 s"));
                    m.region_mut(a).kill9();
                    drop(m);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    mesh.lock().await.region_mut(a).restart();
                }
                _ => {
                    m.heal();
                    log.lock().unwrap().push("heal".into());
                }
            }
        }
        let hold = Duration::from_millis(rng.gen_range(800..2500));
        tokio::time::sleep(hold.saturating_sub(started.elapsed())).await;
    }
}

async fn all_appointments(store: &medislot_store::DynStore) -> Vec<AppointmentRecord> {
    let q = AppointmentQuery {
        scope: Scope::All,
        doctor: None,
        status: None,
        from: None,
        to: None,
        limit: 100_000,
        offset: 0,
    };
    store.list_appointments(&q).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_keep_every_promise() {
    let _turn = crate::one_at_a_time().await;
    let seconds: u64 = std::env::var("REGIONS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("REGIONS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("partition test: {seconds} s, seed {seed} (replay with REGIONS_SEED={seed} REGIONS_SECONDS={seconds})");
    let mesh = Mesh::start().await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(4)).build().unwrap();

    let mut doctors = Vec::new();
    let mut patients: Vec<(String, User)> = Vec::new();
    for r in &mesh.regions {
        r.create_admin(&format!("admin@{}.example", r.name));
        let admin = login_at(r, &http, &format!("admin@{}.example", r.name)).await;
        for policy in ["strict", "available"] {
            let (_, id) = clinic_with_doctor(r, &http, &admin, policy).await;
            doctors.push(Doctor { id, home: r.name.clone(), policy: policy.into(), slots: vec![] });
        }
        for i in 0..3 {
            patients.push((r.name.clone(), user(r, &http, &format!("p{i}@{}.example", r.name), "patient").await));
        }
    }
    converged(&mesh, &http, doctors.len(), Duration::from_secs(30)).await;
    for d in &mut doctors {
        let v: Value = http
            .get(mesh.region(&d.home).api(&format!("/doctors/{}/slots", d.id)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Two days of half-hour slots, from tomorrow: enough contention to collide.
        d.slots = v["slots"].as_array().unwrap().iter().skip(48).take(60).cloned().collect();
        assert_eq!(d.slots.len(), 60);
    }
    let doctors = Arc::new(doctors);
    let mesh = Arc::new(tokio::sync::Mutex::new(mesh));

    let history = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, (region, u)) in patients.into_iter().enumerate() {
        let u = User { http: http.clone(), ..u };
        tasks.push(tokio::spawn(client_loop(
            u,
            region,
            doctors.clone(),
            history.clone(),
            until,
            seed ^ (i as u64 + 1),
        )));
    }
    let nemesis_task = tokio::spawn(nemesis(mesh.clone(), until - Duration::from_secs(1), seed, log.clone()));
    for t in tasks {
        t.await.unwrap();
    }
    nemesis_task.await.unwrap();

    // Final heal; every pending request must settle within a bounded time.
    let healed = Instant::now();
    mesh.lock().await.heal();
    let mesh = mesh.lock().await;
    let settle_limit = Duration::from_secs(30);
    let mut settled_in = None;
    while healed.elapsed() < settle_limit {
        let mut pending = 0;
        for r in &mesh.regions {
            if let Ok(resp) = http.get(r.api("/regions")).bearer_auth(crate::helpers::OPS_TOKEN).send().await {
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                pending += v["forwarding_pending"].as_u64().unwrap_or(1);
            } else {
                pending += 1;
            }
        }
        if pending == 0 {
            settled_in = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Replication catches up within a few of its periods.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let history = history.lock().unwrap().clone();
    let mut violations: Vec<String> = Vec::new();
    let mut homes: BTreeMap<String, Vec<AppointmentRecord>> = BTreeMap::new();
    let mut stores = BTreeMap::new();
    for r in &mesh.regions {
        let store = r.store().await;
        homes.insert(r.name.clone(), all_appointments(&store).await);
        stores.insert(r.name.clone(), store);
    }
    let home_of: HashMap<&str, &str> = doctors.iter().map(|d| (d.id.as_str(), d.home.as_str())).collect();
    let by_id: HashMap<String, (&str, &AppointmentRecord)> =
        homes.iter().flat_map(|(r, list)| list.iter().map(move |a| (a.id.to_string(), (r.as_str(), a)))).collect();

    // 1. P1: no overlap among a doctor's active appointments, at home.
    for (region, list) in &homes {
        let mut by_doctor: HashMap<String, Vec<&AppointmentRecord>> = HashMap::new();
        for a in list.iter().filter(|a| a.status.is_active()) {
            by_doctor.entry(a.doctor_id.to_string()).or_default().push(a);
        }
        for (d, mut list) in by_doctor {
            list.sort_by_key(|a| a.start);
            for w in list.windows(2) {
                if w[1].start < w[0].end {
                    violations.push(format!("P1: doctor {d} in {region}: {} overlaps {}", w[0].id, w[1].id));
                }
            }
            if home_of.get(d.as_str()) != Some(&region.as_str()) {
                violations.push(format!("ownership: doctor {d} has appointments in {region}, not its home"));
            }
        }
    }

    // 2. P2: acknowledged bookings are at home; nothing unrequested.
    let keys: HashSet<&str> = history.iter().filter(|o| o.kind == "book").map(|o| o.key.as_str()).collect();
    let mut cancelled_ok: HashSet<&str> = HashSet::new();
    let mut cancel_unsure: HashSet<&str> = HashSet::new();
    for o in history.iter().filter(|o| o.kind == "cancel") {
        let id = o.appointment.as_deref().unwrap();
        match o.outcome {
            Outcome::Booked => {
                cancelled_ok.insert(id);
            }
            Outcome::Unknown => {
                cancel_unsure.insert(id);
            }
            _ => {}
        }
    }
    for o in history.iter().filter(|o| o.kind == "book" && o.outcome == Outcome::Booked) {
        let id = o.appointment.clone().unwrap();
        match by_id.get(&id) {
            None => violations.push(format!("P2: acknowledged booking {id} ({}) missing at home {}", o.key, o.home)),
            Some((region, a)) => {
                if a.doctor_id.to_string() != o.doctor {
                    violations.push(format!("P2: booking {id} is with another doctor than asked"));
                }
                if *region != o.home {
                    violations.push(format!("P2: booking {id} found in {region}, home is {}", o.home));
                }
                let should_be_active = !cancelled_ok.contains(id.as_str()) && !cancel_unsure.contains(id.as_str());
                if should_be_active && !a.status.is_active() {
                    violations
                        .push(format!("P2: booking {id} is {} without an acknowledged cancel", a.status.as_str()));
                }
                if cancelled_ok.contains(id.as_str()) && a.status.is_active() {
                    violations.push(format!("P2: acknowledged cancel of {id} not applied"));
                }
            }
        }
    }
    for (region, list) in &homes {
        for a in list {
            if !keys.contains(a.reason.as_str()) {
                violations.push(format!("P2: {} in {region} was asked for by no client (reason {:?})", a.id, a.reason));
            }
        }
    }

    // 3. P3: one appointment per Idempotency-Key.
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for a in homes.values().flatten() {
        *per_key.entry(a.reason.as_str()).or_default() += 1;
    }
    for (k, n) in per_key.iter().filter(|(_, n)| **n > 1) {
        violations.push(format!("P3: key {k} produced {n} appointments"));
    }

    // 4. P7: pending requests all settled; strict refusals fast and never booked.
    let (mut resolved_booked, mut resolved_conflict, mut max_resolve) = (0, 0, Duration::ZERO);
    for o in history.iter().filter(|o| o.kind == "book" && o.outcome == Outcome::Pending) {
        let id: medislot_domain::AppointmentId =
            medislot_domain::AppointmentId(o.appointment.as_deref().unwrap().parse().unwrap());
        match stores[&o.client].forward(id).await.unwrap() {
            None => violations.push(format!("P7: 202 {id} unknown in {}", o.client)),
            Some(f) => {
                if let Some(done) = f.resolved_at {
                    max_resolve =
                        max_resolve.max(Duration::from_millis(done.duration_since(f.created_at).as_millis() as u64));
                }
                match f.status {
                    medislot_store::ForwardStatus::Pending => violations.push(format!("P7: {id} still pending")),
                    medislot_store::ForwardStatus::Booked => {
                        resolved_booked += 1;
                        if !by_id.get(&id.to_string()).is_some_and(|(_, a)| a.status.is_active()) {
                            violations.push(format!("P7: {id} settled booked but is not active at home"));
                        }
                    }
                    medislot_store::ForwardStatus::Conflict => {
                        resolved_conflict += 1;
                        if by_id.get(&id.to_string()).is_some_and(|(_, a)| a.status.is_active()) {
                            violations.push(format!("P7: {id} settled conflict but is active at home"));
                        }
                    }
                }
            }
        }
    }
    // Bookings only: changes to appointments homed elsewhere are never queued, in either policy.
    let refusals: Vec<&Op> = history.iter().filter(|o| o.kind == "book" && o.outcome == Outcome::Refused).collect();
    let slowest_refusal = refusals.iter().map(|o| o.took).max().unwrap_or_default();
    for o in &refusals {
        if o.policy != "strict" {
            violations.push(format!("P7: an {} clinic refused {} instead of accepting it as pending", o.policy, o.key));
        }
        if o.took > Duration::from_millis(1500) {
            violations.push(format!("P7: refusal of {} took {:?} (forward timeout 800 ms)", o.key, o.took));
        }
        let retried_ok =
            history.iter().any(|x| x.key == o.key && matches!(x.outcome, Outcome::Booked | Outcome::Unknown));
        if !retried_ok && homes.values().flatten().any(|a| a.reason == o.key) {
            violations.push(format!("P7: strict refusal {} was booked anyway", o.key));
        }
    }

    // 5. Convergence: every region shows the home's busy times for every doctor.
    let now = jiff::Timestamp::now();
    let window = medislot_domain::Interval {
        start: now - jiff::SignedDuration::from_hours(1),
        end: now + jiff::SignedDuration::from_hours(24 * 40),
    };
    for d in doctors.iter() {
        let id = medislot_domain::DoctorId(d.id.parse().unwrap());
        let mut views: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
        for (region, store) in &stores {
            let mut busy: Vec<(i64, i64)> = store
                .busy(&[id], window, now)
                .await
                .unwrap()
                .into_iter()
                .map(|(_, iv)| (iv.start.as_second(), iv.end.as_second()))
                .collect();
            busy.sort();
            views.insert(region.as_str(), busy);
        }
        let home = &views[d.home.as_str()];
        for (region, v) in &views {
            if v != home {
                violations.push(format!(
                    "convergence: {region} shows {} busy ranges for doctor {}, home {} shows {}",
                    v.len(),
                    d.id,
                    d.home,
                    home.len()
                ));
            }
        }
    }

    let mut by_outcome: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for o in &history {
        *by_outcome.entry((o.kind, format!("{:?}", o.outcome))).or_default() += 1;
    }
    let remote = history.iter().filter(|o| o.kind == "book" && o.client != o.home).count();
    println!("nemesis: {}", log.lock().unwrap().join("; "));
    println!(
        "partition checker: {} operations ({remote} cross-region bookings); by outcome {:?}; pending settled: {resolved_booked} booked, {resolved_conflict} conflict, \
         longest pending {max_resolve:?}, all settled {settled_in:?} after the final heal; strict refusals {} (slowest {slowest_refusal:?}); violations {}",
        history.len(),
        by_outcome,
        refusals.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "violations (seed {seed}):\n{}", violations.join("\n"));
    assert!(settled_in.is_some(), "pending requests did not settle within {settle_limit:?} of the heal");
    assert!(remote > 0 && !refusals.is_empty() || seconds < 10, "the run never exercised a partition");
}
