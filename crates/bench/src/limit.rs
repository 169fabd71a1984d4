//! The database's own limit for a booking on SQLite: the four writes a booking
//! needs — an overlap-checked appointment (the schema's triggers), its audit
//! row, its outbox row and the idempotency record — in one transaction each,
//! prepared, from a plain rusqlite loop on the seeded file. Not a replay of
//! medislot's own statements: what SQLite can do, for the node to be held to.
//! (For PostgreSQL, `scripts/bench` runs `scripts/booking-minimal.pgbench`.)

use anyhow::Context;
use hdrhistogram::Histogram;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `sqlite:PATH` of a seeded database (not in use by a server).
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

pub fn sqlite(a: &Args) -> anyhow::Result<Value> {
    let path = a.database_url.strip_prefix("sqlite:").context("a sqlite:PATH URL")?;
    let conn = Connection::open(path)?;
    // As the node runs it: WAL, every commit on disk before it is acknowledged.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    let (doctors, patient): (Vec<String>, String) = (
        conn.prepare("SELECT id FROM doctors ORDER BY id")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?,
        conn.query_row("SELECT id FROM users WHERE role = 'patient' LIMIT 1", [], |r| r.get(0))?,
    );
    anyhow::ensure!(!doctors.is_empty(), "no doctors: seed the database first (medislot seed)");
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.seconds);
    let mut n: i64 = 0;
    while Instant::now() < until {
        let t = Instant::now();
        let id = uuid::Uuid::now_v7().to_string();
        let doctor = &doctors[n as usize % doctors.len()];
        // Far in the future, one 30-minute slot after another: never overlapping.
        let start = 4_000_000_000 + n * 1800;
        let now = jiff::Timestamp::now().to_string();
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached(
            "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                       origin_region, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'in_person', 'bench', 'booked', 1, 'local', ?, ?)",
        )?
        .execute(params![id, doctor, patient, start, start + 1800, now, now])?;
        tx.prepare_cached(
            "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start)
             VALUES (?, ?, ?, NULL, 'booked', NULL, ?)",
        )?
        .execute(params![id, patient, now, start])?;
        tx.prepare_cached(
            "INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, 'appointment.booked', '{}', ?)",
        )?
        .execute(params![uuid::Uuid::now_v7().to_string(), now])?;
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, appointment_id, status_code, created_at)
             VALUES (?, ?, 'f', ?, 201, ?)",
        )?
        .execute(params![patient, id, id, now])?;
        tx.commit()?;
        latency.saturating_record(t.elapsed().as_micros().max(1) as u64);
        n += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ms = |q: f64| (latency.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    Ok(json!({
        "scenario": "sqlite-limit",
        "bookings": n,
        "bookings_per_s": (n as f64 / elapsed * 10.0).round() / 10.0,
        "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": (latency.max() as f64 / 10.0).round() / 100.0},
    }))
}
