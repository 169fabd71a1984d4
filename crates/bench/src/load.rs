//! The HTTP scenarios: set-up through the public API, then an open-model run.

use crate::Target;
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::{seq::SliceRandom, Rng};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Book,
    Search,
    /// Search as patients mix it (see [`crate::search::Query`]).
    SearchMix,
    /// The mix without date windows: every search starts now.
    SearchNow,
    Slots,
    Mixed,
}

struct World {
    http: Client,
    api: String,
    tokens: Vec<String>,
    doctors: Vec<String>,
    /// Search criteria seen in the directory: (specialty, lat, lon).
    places: Vec<(String, f64, f64)>,
    /// Free slots not yet used by this run, per doctor.
    slots: Mutex<HashMap<String, Vec<String>>>,
    /// Appointments this run booked: (id, version, token index, doctor).
    booked: Mutex<Vec<(String, i64, usize, String)>>,
}

impl World {
    fn take_slot(&self, doctor: Option<&str>) -> Option<(String, String)> {
        let mut slots = self.slots.lock().unwrap();
        let doctor = match doctor {
            Some(d) => d.to_string(),
            None => {
                let with: Vec<&String> = slots.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k).collect();
                (*with.choose(&mut rand::thread_rng())?).clone()
            }
        };
        let slot = slots.get_mut(&doctor)?.pop()?;
        Some((doctor, slot))
    }
}

async fn json_of(r: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
    let status = r.status();
    let text = r.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Patients, the directory and (for bookings) a pool of free slots, through the API.
async fn prepare(t: &Target, slots_needed: usize) -> anyhow::Result<World> {
    let http = Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(4096).build()?;
    let api = format!("{}/api/v1", t.url.trim_end_matches('/'));
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut tokens = vec![];
    for i in 0..t.patients.max(1) {
        let email = format!("bench-{run}-{i}@bench.medislot.test");
        let body =
            json!({"email": email, "password": "bench password 1", "name": format!("Bench {i}"), "role": "patient"});
        let (s, v) = json_of(http.post(format!("{api}/auth/register")).json(&body).send().await?).await?;
        if s != 201 {
            bail!("registering a bench patient: {s} {v}");
        }
        let body = json!({"email": email, "password": "bench password 1"});
        let (s, v) = json_of(http.post(format!("{api}/auth/login")).json(&body).send().await?).await?;
        if s != 200 {
            bail!("logging in a bench patient: {s} {v} (raise --logins-per-minute on the server?)");
        }
        tokens.push(v["token"].as_str().context("token")?.to_string());
    }
    let mut doctors = vec![];
    let mut places = vec![];
    for page in 1..=5 {
        let (s, v) = json_of(http.get(format!("{api}/doctors?per_page=100&page={page}")).send().await?).await?;
        if s != 200 {
            bail!("reading the directory: {s} {v}");
        }
        let items = v["items"].as_array().cloned().unwrap_or_default();
        for h in &items {
            doctors.push(h["doctor"]["id"].as_str().context("doctor id")?.to_string());
            let spec = h["doctor"]["specialties"][0].as_str().unwrap_or("general-practice").to_string();
            let (lat, lon) =
                (h["clinic"]["latitude"].as_f64().unwrap_or(0.0), h["clinic"]["longitude"].as_f64().unwrap_or(0.0));
            places.push((spec, lat, lon));
        }
        if items.len() < 100 {
            break;
        }
    }
    if doctors.is_empty() {
        bail!("the server has no verified doctors: run `medislot seed` (or serve --demo) first");
    }
    let mut slots: HashMap<String, Vec<String>> = HashMap::new();
    let mut found = 0;
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 60)).to_string();
    for d in &doctors {
        if found >= slots_needed {
            break;
        }
        let (s, v) = json_of(http.get(format!("{api}/doctors/{d}/slots?to={to}")).send().await?).await?;
        if s != 200 {
            continue;
        }
        let mut ids: Vec<String> = v["slots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["slot_id"].as_str().map(String::from))
            .collect();
        ids.shuffle(&mut rand::thread_rng());
        found += ids.len();
        slots.insert(d.clone(), ids);
    }
    if found < slots_needed {
        bail!("only {found} free slots for {slots_needed} bookings: seed more doctors (medislot seed --doctors …)");
    }
    Ok(World { http, api, tokens, doctors, places, slots: Mutex::new(slots), booked: Mutex::default() })
}

/// One request of the scenario; returns its status, or None when no answer came.
async fn one(w: &World, kind: Kind) -> Option<u16> {
    // A Send generator: the task may move between threads at each await.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let kind = match kind {
        Kind::Mixed => match rng.gen_range(0..100) {
            0..40 => Kind::Search,
            40..80 => Kind::Slots,
            80..95 => Kind::Book,
            _ => return change(w).await,
        },
        k => k,
    };
    let r = match kind {
        Kind::Search => {
            let (spec, lat, lon) = w.places.choose(&mut rng)?.clone();
            let today = jiff::Timestamp::now();
            let to = today + jiff::SignedDuration::from_hours(24 * 7);
            let url = format!(
                "{}/doctors?specialty={spec}&near={lat},{lon}&radius_km=50&available_from={today}&available_to={to}&per_page=20",
                w.api
            );
            w.http.get(url).send().await
        }
        Kind::SearchMix => w.http.get(crate::search::Query::random(&mut rng).url(&w.api)).send().await,
        Kind::SearchNow => {
            let q = crate::search::Query { window: None, ..crate::search::Query::random(&mut rng) };
            w.http.get(q.url(&w.api)).send().await
        }
        Kind::Slots => {
            let d = w.doctors.choose(&mut rng)?;
            w.http.get(format!("{}/doctors/{d}/slots", w.api)).send().await
        }
        _ => {
            let (doctor, slot) = w.take_slot(None)?;
            let who = rng.gen_range(0..w.tokens.len());
            let r = w
                .http
                .post(format!("{}/appointments", w.api))
                .bearer_auth(&w.tokens[who])
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&json!({"slot_id": slot, "reason": "bench"}))
                .send()
                .await;
            if let Ok(resp) = r {
                let status = resp.status().as_u16();
                if status == 201 {
                    if let Ok(v) = resp.json::<Value>().await {
                        let id = v["id"].as_str().unwrap_or_default().to_string();
                        w.booked.lock().unwrap().push((id, v["version"].as_i64().unwrap_or(1), who, doctor));
                    }
                }
                return Some(status);
            }
            return None;
        }
    };
    let resp = r.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    Some(status)
}

/// Reschedule (to another free slot of the same doctor) or cancel one of this run's bookings.
async fn change(w: &World) -> Option<u16> {
    let (id, version, who, doctor) = w.booked.lock().unwrap().pop()?;
    let token = &w.tokens[who];
    let etag = format!("\"{version}\"");
    let (method, url, body) = match w.take_slot(Some(&doctor)) {
        Some((_, slot)) => (Method::POST, format!("{}/appointments/{id}/reschedule", w.api), json!({"slot_id": slot})),
        None => (Method::POST, format!("{}/appointments/{id}/cancel", w.api), json!({"reason": "bench"})),
    };
    let r = w.http.request(method, url).bearer_auth(token).header("If-Match", etag).json(&body).send().await.ok()?;
    Some(r.status().as_u16())
}

/// What was measured, for the report.
struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    errors: u64,
    shed: u64,
    last_done: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            statuses: BTreeMap::new(),
            errors: 0,
            shed: 0,
            last_done: None,
        }
    }
}

fn summary(kind: &str, offered: f64, t: &Tally, started: Instant, sent: u64) -> Value {
    let h = &t.latency_us;
    let ms = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0;
    let elapsed = t.last_done.map_or(0.0, |d| d.duration_since(started).as_secs_f64());
    let per_s = |n: u64| if elapsed > 0.0 { (n as f64 / elapsed * 10.0).round() / 10.0 } else { 0.0 };
    let succeeded: u64 = t.statuses.iter().filter(|(s, _)| s.starts_with('2')).map(|(_, n)| n).sum();
    json!({
        "scenario": kind,
        "rate_offered": offered,
        "rate_achieved": per_s(h.len()),
        // What was done per second: answers 2xx (an overloaded node also answers 503 at once).
        "goodput": per_s(succeeded),
        "requests": sent,
        "answered": h.len(),
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p99.9": ms(0.999), "max": (h.max() as f64 / 10.0).round() / 100.0},
        "status": t.statuses,
        "errors": t.errors,
        "shed": t.shed,
    })
}

/// An open-model run: request i is due at start + i / rate; its latency counts from then.
pub async fn run(kind: Kind, t: &Target) -> anyhow::Result<Value> {
    if !(t.rate > 0.0 && t.seconds > 0.0) {
        bail!("--rate and --seconds must be positive");
    }
    let warm = (t.rate * t.warmup).round() as u64;
    let total = warm + (t.rate * t.seconds).round() as u64;
    let bookings = match kind {
        Kind::Book => total as usize + 10,
        Kind::Mixed => (total as usize) / 4 + 10,
        _ => 0,
    };
    let w = Arc::new(prepare(t, bookings).await?);
    let tally = Arc::new(Mutex::new(Tally::new()));
    let start = Instant::now();
    let measured_from = start + Duration::from_secs_f64(warm as f64 / t.rate);
    let mut tasks = Vec::with_capacity(total as usize);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / t.rate);
        tokio::time::sleep_until(due.into()).await;
        if in_flight.load(std::sync::atomic::Ordering::Relaxed) >= t.max_in_flight {
            if i >= warm {
                tally.lock().unwrap().shed += 1;
            }
            continue;
        }
        in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (w, tally, in_flight) = (w.clone(), tally.clone(), in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let status = one(&w, kind).await;
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let done = Instant::now();
            if i < warm {
                return;
            }
            let mut t = tally.lock().unwrap();
            t.latency_us.saturating_record(done.duration_since(due).as_micros().max(1) as u64);
            match status {
                Some(s) => *t.statuses.entry(s.to_string()).or_default() += 1,
                None => t.errors += 1,
            }
            t.last_done = Some(t.last_done.map_or(done, |l| l.max(done)));
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let name = match kind {
        Kind::Book => "book",
        Kind::Search => "search",
        Kind::SearchMix => "search-mix",
        Kind::SearchNow => "search-now",
        Kind::Slots => "slots",
        Kind::Mixed => "mixed",
    };
    let measured = tally.lock().unwrap();
    Ok(summary(name, t.rate, &measured, measured_from, total - warm))
}

/// The node's capacity for bookings: `clients` callers, each sending its next
/// booking once the last is answered, for `--seconds` (after `--warmup`).
pub async fn saturate(t: &Target, clients: usize) -> anyhow::Result<Value> {
    if clients == 0 || t.seconds.is_nan() || t.seconds <= 0.0 {
        bail!("--clients and --seconds must be positive");
    }
    // Enough free slots for a generous guess at the capacity.
    let w = Arc::new(prepare(t, ((t.seconds + t.warmup) * 5000.0) as usize).await?);
    let tally = Arc::new(Mutex::new(Tally::new()));
    let start = Instant::now();
    let measured_from = start + Duration::from_secs_f64(t.warmup);
    let until = measured_from + Duration::from_secs_f64(t.seconds);
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let callers: Vec<_> = (0..clients)
        .map(|_| {
            let (w, tally, sent) = (w.clone(), tally.clone(), sent.clone());
            tokio::spawn(async move {
                loop {
                    let began = Instant::now();
                    if began >= until {
                        break;
                    }
                    let status = one(&w, Kind::Book).await;
                    let done = Instant::now();
                    if began < measured_from {
                        continue;
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut t = tally.lock().unwrap();
                    t.latency_us.saturating_record(done.duration_since(began).as_micros().max(1) as u64);
                    match status {
                        Some(s) => *t.statuses.entry(s.to_string()).or_default() += 1,
                        None => t.errors += 1,
                    }
                    t.last_done = Some(t.last_done.map_or(done, |l| l.max(done)));
                }
            })
        })
        .collect();
    for caller in callers {
        let _ = caller.await;
    }
    let measured = tally.lock().unwrap();
    let mut out =
        summary("book-capacity", 0.0, &measured, measured_from, sent.load(std::sync::atomic::Ordering::Relaxed));
    out["clients"] = json!(clients);
    Ok(out)
}

/// `clients` bookings of one slot at once: exactly one 201, the rest 409.
pub async fn race(t: &Target, clients: usize) -> anyhow::Result<Value> {
    let w = Arc::new(prepare(t, 1).await?);
    let (_, slot) = w.take_slot(None).context("a free slot")?;
    let tally = Arc::new(Mutex::new(Tally::new()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (w, tally, slot) = (w.clone(), tally.clone(), slot.clone());
            tokio::spawn(async move {
                let r = w
                    .http
                    .post(format!("{}/appointments", w.api))
                    .bearer_auth(&w.tokens[i % w.tokens.len()])
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({"slot_id": slot}))
                    .send()
                    .await;
                let done = Instant::now();
                let mut t = tally.lock().unwrap();
                t.latency_us.saturating_record(done.duration_since(start).as_micros().max(1) as u64);
                match r {
                    Ok(resp) => *t.statuses.entry(resp.status().as_u16().to_string()).or_default() += 1,
                    Err(_) => t.errors += 1,
                }
                t.last_done = Some(t.last_done.map_or(done, |l| l.max(done)));
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let t = tally.lock().unwrap();
    let mut out = summary("race", clients as f64, &t, start, clients as u64);
    let winners = t.statuses.get("201").copied().unwrap_or(0);
    let losers = t.statuses.get("409").copied().unwrap_or(0);
    out["winners"] = json!(winners);
    out["exactly_one_winner"] = json!(winners == 1 && losers == clients as u64 - 1);
    Ok(out)
}
