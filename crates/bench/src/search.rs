//! Search at scale: the mix of queries patients send (a specialty, with or
//! without a radius, a language, a mode, a date window), offered over HTTP
//! or straight to the store (the database's own limit for the same queries,
//! no HTTP and no application code); and how soon a booking through one node
//! stops showing in another node's search.

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{Coordinates, Mode};
use medislot_store::search::SearchFilter;
use rand::{seq::SliceRandom, Rng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The specialties `medislot seed` uses.
const SPECIALTIES: [&str; 12] = medislot_domain::people::COMMON_SPECIALTIES;
const LANGUAGES: [&str; 6] = ["en", "fr", "de", "es", "it", "ar"];
/// Where patients search from: the seed's cities.
const PLACES: [(f64, f64); 10] = [
    (48.8566, 2.3522),
    (45.7640, 4.8357),
    (43.2965, 5.3698),
    (52.5200, 13.4050),
    (40.4168, -3.7038),
    (51.5072, -0.1276),
    (40.7128, -74.0060),
    (41.8781, -87.6298),
    (43.6532, -79.3832),
    (-33.8688, 151.2093),
];

/// One query of the mix.
#[derive(Debug, Clone)]
pub struct Query {
    pub specialty: String,
    pub near: Option<(f64, f64)>,
    pub language: Option<String>,
    pub mode: Option<Mode>,
    /// `[from, to)`, from a UTC midnight.
    pub window: Option<(Timestamp, Timestamp)>,
}

impl Query {
    /// A specialty always; a radius of 50 km one time in three, a language
    /// one in four, a mode one in four, a date window one in three.
    pub fn random(rng: &mut impl Rng) -> Self {
        let today = Timestamp::now().as_second() / 86_400;
        Query {
            specialty: SPECIALTIES.choose(rng).copied().unwrap_or("cardiology").to_string(),
            near: rng.gen_bool(1.0 / 3.0).then(|| *PLACES.choose(rng).unwrap_or(&PLACES[0])),
            language: rng.gen_bool(0.25).then(|| LANGUAGES.choose(rng).copied().unwrap_or("en").to_string()),
            mode: rng.gen_bool(0.25).then(|| if rng.gen_bool(0.5) { Mode::Online } else { Mode::InPerson }),
            window: rng.gen_bool(1.0 / 3.0).then(|| {
                let from = Timestamp::from_second((today + rng.gen_range(1..21)) * 86_400).unwrap_or(Timestamp::MIN);
                (from, from + SignedDuration::from_hours(24 * rng.gen_range(1..8)))
            }),
        }
    }

    pub fn url(&self, api: &str) -> String {
        let mut u = format!("{api}/doctors?specialty={}&per_page=20", self.specialty);
        if let Some((lat, lon)) = self.near {
            u.push_str(&format!("&near={lat},{lon}&radius_km=50"));
        }
        if let Some(l) = &self.language {
            u.push_str(&format!("&language={l}"));
        }
        if let Some(m) = self.mode {
            u.push_str(&format!("&mode={}", m.as_str()));
        }
        if let Some((from, to)) = self.window {
            u.push_str(&format!("&available_from={from}&available_to={to}"));
        }
        u
    }

    fn filter(&self) -> SearchFilter {
        SearchFilter {
            specialty: self.specialty.clone(),
            language: self.language.clone(),
            mode: self.mode,
            near: self.near.map(|(lat, lon)| (Coordinates { lat, lon }, 50.0)),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct LimitArgs {
    /// The seeded database (`sqlite:PATH` or `postgres://…`), not in use by a server.
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Queries in flight at once (a closed loop).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
}

/// The store's own rate for the mix: each query the index read search makes
/// for it (the index in its order for a window starting now, every
/// candidate with its free times otherwise), in a closed loop.
pub async fn limit(a: &LimitArgs) -> anyhow::Result<Value> {
    let options = medislot_store::ConnectOptions { max_connections: a.clients as u32, ..Default::default() };
    let store = medislot_store::connect(&a.database_url, &options).await.context("opening the database")?;
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let mut tasks = vec![];
    for _ in 0..a.clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
            let mut errors = 0u64;
            while Instant::now() < until {
                let q = Query::random(&mut rng);
                let t = Instant::now();
                let now = Timestamp::now();
                let ok = if q.near.is_some() || q.window.is_some() {
                    store.search_candidates(&q.filter(), q.window.is_none().then_some(now)).await.is_ok()
                } else {
                    let to = now + SignedDuration::from_hours(24 * 14);
                    store.search_indexed(&q.filter(), now, to, 20, Some(20), None).await.is_ok()
                };
                if !ok {
                    errors += 1;
                }
                h.saturating_record(t.elapsed().as_micros().max(1) as u64);
            }
            (h, errors)
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        all.add(&h)?;
        errors += e;
    }
    let ms = |q: f64| (all.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    Ok(json!({
        "scenario": "search-limit",
        "backend": store.backend(),
        "clients": a.clients,
        "queries_per_second": (all.len() as f64 / a.seconds * 10.0).round() / 10.0,
        "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": (all.max() as f64 / 10.0).round() / 100.0},
        "errors": errors,
    }))
}

#[derive(clap::Args, Debug)]
pub struct FreshnessArgs {
    /// The node that books.
    #[arg(long)]
    pub book_url: String,
    /// The node that searches (another node on the same database).
    #[arg(long)]
    pub search_url: String,
    /// Bookings to time.
    #[arg(long, default_value_t = 20)]
    pub bookings: usize,
}

/// Books a doctor's next slot through one node, then searches through the
/// other until that slot is no longer shown as the doctor's next one.
pub async fn freshness(a: &FreshnessArgs) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let book = format!("{}/api/v1", a.book_url.trim_end_matches('/'));
    let search = format!("{}/api/v1", a.search_url.trim_end_matches('/'));
    let email = format!("fresh-{}@bench.medislot.test", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": "bench password 1", "name": "Fresh", "role": "patient"});
    http.post(format!("{book}/auth/register")).json(&body).send().await?.error_for_status()?;
    let login = json!({"email": email, "password": "bench password 1"});
    let v: Value =
        http.post(format!("{book}/auth/login")).json(&login).send().await?.error_for_status()?.json().await?;
    let token = v["token"].as_str().context("token")?.to_string();
    let mut waits = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let mut timed_out = 0;
    for _ in 0..a.bookings {
        let spec = SPECIALTIES.choose(&mut rng).copied().unwrap_or("cardiology");
        let (lat, lon) = *PLACES.choose(&mut rng).unwrap_or(&PLACES[0]);
        let url = format!("{search}/doctors?specialty={spec}&near={lat},{lon}&radius_km=50&per_page=1");
        let v: Value = http.get(&url).send().await?.error_for_status()?.json().await?;
        let Some(slot) = v["items"][0]["next_slot"]["slot_id"].as_str().map(String::from) else { continue };
        let r = http
            .post(format!("{book}/appointments"))
            .bearer_auth(&token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"slot_id": slot, "reason": "freshness"}))
            .send()
            .await?;
        if r.status() != 201 {
            continue;
        }
        let booked = Instant::now();
        let id = r.json::<Value>().await?["id"].as_str().map(String::from).context("the booking's id")?;
        loop {
            let v: Value = http.get(&url).send().await?.error_for_status()?.json().await?;
            let shown = v["items"].as_array().into_iter().flatten().any(|h| h["next_slot"]["slot_id"] == slot.as_str());
            if !shown {
                waits.saturating_record(booked.elapsed().as_micros().max(1) as u64);
                break;
            }
            if booked.elapsed() > Duration::from_secs(10) {
                timed_out += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One patient books them all, and a patient is never booked twice at
        // once: each booking is cancelled once timed, freeing the patient's time.
        http.post(format!("{book}/appointments/{id}/cancel"))
            .bearer_auth(&token)
            .header("If-Match", "*")
            .json(&json!({"reason": "freshness measured"}))
            .send()
            .await?
            .error_for_status()?;
    }
    if waits.is_empty() {
        bail!("no booking could be timed (no free slot found through search?)");
    }
    let ms = |q: f64| (waits.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    Ok(json!({
        "scenario": "freshness",
        "bookings": waits.len(),
        "gone_after_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": (waits.max() as f64 / 10.0).round() / 100.0},
        "timed_out": timed_out,
    }))
}

/// The first search a node answers: how long it took (the node was just started).
pub async fn first(url: &str) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let api = format!("{}/api/v1", url.trim_end_matches('/'));
    let t = Instant::now();
    let r = http.get(format!("{api}/doctors?specialty=dermatology&per_page=20")).send().await?;
    let status = r.status().as_u16();
    let v: Value = r.json().await?;
    Ok(json!({
        "scenario": "first-search",
        "status": status,
        "ms": (t.elapsed().as_secs_f64() * 100_000.0).round() / 100.0,
        "total": v["total"],
    }))
}
