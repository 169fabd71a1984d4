//! The physical limit: the booking transaction medislot runs (hold expiry,
//! idempotency key, overlap-checked insert, audit and outbox rows, commit)
//! called straight on the store, without HTTP, JSON, auth or the app layer.
//! For PostgreSQL, `scripts/bench` also runs pgbench with the same statements.

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{AppointmentId, AppointmentStatus, Role, UserId};
use medislot_store::{ConnectOptions, IdempotencyKey, PlaceAppointment, StoreError, UserRecord};
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `sqlite:PATH` or `postgres://…` of a seeded database (not in use by a server).
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent callers (SQLite has one writer at a time whatever this says).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

pub async fn run(a: &Args) -> anyhow::Result<Value> {
    let options = ConnectOptions { max_connections: a.concurrency as u32 + 1, ..ConnectOptions::default() };
    let store = medislot_store::connect(&a.database_url, &options).await?;
    let now = Timestamp::now();
    let patient = UserRecord {
        id: UserId::new(),
        email: format!("baseline-{}@bench.medislot.test", uuid::Uuid::new_v4().simple()),
        password_hash: "not used".into(),
        role: Role::Patient,
        name: "Baseline".into(),
        created_at: now,
    };
    store.create_user(&patient).await?;
    // Free slots of the seeded doctors, shuffled: each call books a different one.
    let mut slots = vec![];
    let window = medislot_domain::Interval {
        start: now + SignedDuration::from_hours(2),
        end: now + SignedDuration::from_hours(24 * 60),
    };
    for (d, c) in store.search_doctors(&Default::default()).await? {
        let busy: Vec<_> = store.busy(&[d.id], window, now).await?.into_iter().map(|(_, iv)| iv).collect();
        slots.extend(d.schedule.slots(d.id, &c.time_zone.tz(), window, &busy));
        if slots.len() > 2_000_000 {
            break;
        }
    }
    if slots.is_empty() {
        bail!("no free slots: seed the database first (medislot seed)");
    }
    slots.shuffle(&mut rand::thread_rng());
    let slots = Arc::new(Mutex::new(slots));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let outcomes = Arc::new(Mutex::new((0u64, 0u64, 0u64)));
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..a.concurrency.max(1))
        .map(|_| {
            let (store, slots, hist, outcomes, patient) =
                (store.clone(), slots.clone(), hist.clone(), outcomes.clone(), patient.id);
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let Some(s) = slots.lock().unwrap().pop() else { break };
                    let cmd = PlaceAppointment {
                        id: AppointmentId::new(),
                        doctor_id: s.id.doctor,
                        patient_id: patient,
                        start: s.start,
                        end: s.end,
                        mode: s.mode,
                        reason: "baseline".into(),
                        status: AppointmentStatus::Booked,
                        hold_expires_at: None,
                        origin_region: "local".into(),
                        now: Timestamp::now(),
                        idempotency: Some(IdempotencyKey {
                            key: uuid::Uuid::new_v4().to_string(),
                            fingerprint: "baseline".into(),
                        }),
                        max_holds: 3,
                    };
                    let t0 = Instant::now();
                    let r = store.place(&cmd).await;
                    hist.lock().unwrap().saturating_record(t0.elapsed().as_micros().max(1) as u64);
                    let mut o = outcomes.lock().unwrap();
                    match r {
                        Ok(_) => o.0 += 1,
                        Err(StoreError::SlotTaken) => o.1 += 1,
                        Err(_) => o.2 += 1,
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.context("baseline worker")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = hist.lock().unwrap();
    let (ok, taken, failed) = *outcomes.lock().unwrap();
    let ms = |q: f64| (h.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    Ok(json!({
        "scenario": "baseline",
        "backend": store.backend(),
        "concurrency": a.concurrency,
        "bookings_per_s": ((ok as f64) / elapsed * 10.0).round() / 10.0,
        "booked": ok, "slot_taken": taken, "failed": failed,
        "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": (h.max() as f64 / 10.0).round() / 100.0},
    }))
}
