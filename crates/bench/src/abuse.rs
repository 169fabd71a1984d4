//! What an attacker does to a node, measured: a login flood's effect on a real
//! user's login, bulk-file downloads' effect on `/healthz`, and how many slow
//! clients still hold a connection after a while. Each prints one JSON object.
//!
//! The login flood tells attacker and victim apart by `X-Forwarded-For`, so the
//! node must trust this machine as a proxy (`serve --trusted-proxy 127.0.0.1`);
//! a node that does not sees one client and throttles both alike.

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

#[derive(clap::Args, Debug, Clone)]
pub struct FloodArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Attacking threads.
    #[arg(long, default_value_t = 32)]
    pub threads: usize,
    /// Length of each phase (without, then with the attack), in seconds.
    #[arg(long, default_value_t = 15.0)]
    pub seconds: f64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BulkArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bulk file downloads in all.
    #[arg(long, default_value_t = 60)]
    pub requests: usize,
    /// Downloads at once.
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
    /// How long to wait for the node's first publication of the file.
    #[arg(long, default_value_t = 1800)]
    pub publish_timeout_secs: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SlowArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Connections that send half a request and stop.
    #[arg(long, default_value_t = 3000)]
    pub clients: usize,
    /// How long to wait before counting the connections still open.
    #[arg(long, default_value_t = 30.0)]
    pub hold_seconds: f64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    (h.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({"count": h.len(), "p50_ms": ms(h, 0.5), "p99_ms": ms(h, 0.99), "max_ms": ms(h, 1.0)})
}

/// A real user's sign-ins, one after another, for `secs`.
async fn victim_logins(http: &reqwest::Client, url: &str, email: &str, secs: f64) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < until {
        let t0 = Instant::now();
        let r = http
            .post(format!("{url}/api/v1/auth/login"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"email": email, "password": "bench victim password"}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "the victim's own login failed: {}", r.status());
        h.record(t0.elapsed().as_micros() as u64)?;
        // A person signs in now and then: within any sane per-client budget.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    Ok(h)
}

pub async fn login_flood(a: &FloodArgs) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(a.threads + 4).build()?;
    let email = format!("bench-victim-{}@example.org", uuid::Uuid::new_v4().simple());
    let r = http
        .post(format!("{}/api/v1/auth/register", a.url))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"email": email, "password": "bench victim password", "name": "Victim", "role": "patient"}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "registering the victim: {}", r.status());
    let quiet = victim_logins(&http, &a.url, &email, a.seconds).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default()); // 401, 429, other, errors
    let mut attackers = vec![];
    for t in 0..a.threads {
        let (http, url, stop, counts) = (http.clone(), a.url.clone(), stop.clone(), counts.clone());
        attackers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = http
                    .post(format!("{url}/api/v1/auth/login"))
                    .header("x-forwarded-for", "203.0.113.9")
                    .json(&json!({"email": format!("guess-{t}-{i}@example.org"), "password": "not the password"}))
                    .send()
                    .await;
                let slot = match r.map(|r| r.status().as_u16()) {
                    Ok(401) => 0,
                    Ok(429) => 1,
                    Ok(_) => 2,
                    Err(_) => 3,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let attacked = victim_logins(&http, &a.url, &email, a.seconds).await;
    stop.store(true, Ordering::Relaxed);
    for t in attackers {
        let _ = t.await;
    }
    let attacked = attacked?;
    let n = |i: usize| counts[i].load(Ordering::Relaxed);
    Ok(json!({
        "scenario": "login-flood",
        "attacker_threads": a.threads,
        "victim_without_flood": summary(&quiet),
        "victim_during_flood": summary(&attacked),
        "attacker_answers": {"401": n(0), "429": n(1), "other": n(2), "errors": n(3)},
    }))
}

/// `/healthz` latencies at 20 per second for `secs`, or until `stop` is set.
async fn healthz(http: &reqwest::Client, url: &str, secs: f64, stop: &AtomicBool) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        http.get(format!("{url}/healthz")).send().await?.bytes().await?;
        h.record(t0.elapsed().as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(h)
}

/// The Slot file's status, without reading its body.
async fn slot_file_status(http: &reqwest::Client, url: &str) -> Option<u16> {
    Some(http.get(format!("{url}/fhir/$bulk-publish/Slot.ndjson")).send().await.ok()?.status().as_u16())
}

pub async fn bulk_flood(a: &BulkArgs) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    // A node that publishes in the background answers 503 until its first
    // publication is complete: wait for it, probing /healthz meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let (http2, url2, stop2) = (http.clone(), a.url.clone(), stop.clone());
    let probe = tokio::spawn(async move { healthz(&http2, &url2, 3600.0, &stop2).await });
    let waited = Instant::now();
    let mut first_answers = std::collections::BTreeMap::<u16, u64>::new();
    loop {
        let status = slot_file_status(&http, &a.url).await.unwrap_or(0);
        *first_answers.entry(status).or_default() += 1;
        if status == 200 || waited.elapsed() > Duration::from_secs(a.publish_timeout_secs) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let publishing = waited.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during_publication = summary(&probe.await??);
    let quiet = healthz(&http, &a.url, 5.0, &AtomicBool::new(false)).await?;
    let bytes = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut downloads = vec![];
    for _ in 0..a.concurrency {
        let (http, url, bytes, statuses, next, total) =
            (http.clone(), a.url.clone(), bytes.clone(), statuses.clone(), next.clone(), a.requests as u64);
        downloads.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let Ok(mut r) = http.get(format!("{url}/fhir/$bulk-publish/Slot.ndjson")).send().await else {
                    continue;
                };
                *statuses.lock().unwrap().entry(r.status().as_u16()).or_default() += 1;
                // Counted as it arrives: a file can be larger than this machine's memory.
                while let Ok(Some(chunk)) = r.chunk().await {
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (http2, url2, stop2) = (http.clone(), a.url.clone(), stop.clone());
    let probe = tokio::spawn(async move { healthz(&http2, &url2, 3600.0, &stop2).await });
    for d in downloads {
        let _ = d.await;
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = summary(&probe.await??);
    Ok(json!({
        "scenario": "bulk-flood",
        "downloads": a.requests,
        "concurrency": a.concurrency,
        "seconds": took.as_secs_f64(),
        "bytes_sent": bytes.load(Ordering::Relaxed),
        "statuses": *statuses.lock().unwrap(),
        "seconds_until_published": publishing.as_secs_f64(),
        "answers_while_publishing": first_answers,
        "healthz_while_publishing": during_publication,
        "healthz_without_downloads": summary(&quiet),
        "healthz_during_downloads": during,
    }))
}

pub async fn slow_clients(a: &SlowArgs) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = a.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut open = Vec::with_capacity(a.clients);
    let mut refused = 0u64;
    for _ in 0..a.clients {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(mut s) => {
                if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: ").await.is_ok() {
                    open.push(s);
                }
            }
            Err(_) => refused += 1,
        }
    }
    let opened = open.len();
    tokio::time::sleep(Duration::from_secs_f64(a.hold_seconds)).await;
    let mut still_open = 0u64;
    let mut buf = [0u8; 512];
    for s in &mut open {
        // A closed connection reads 0 bytes (or an answer then 0); an open one has nothing to read.
        match tokio::time::timeout(Duration::from_millis(5), s.read(&mut buf)).await {
            Err(_) => still_open += 1,
            Ok(Ok(n)) if n > 0 => {
                if !matches!(
                    tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await,
                    Ok(Ok(0)) | Ok(Err(_))
                ) {
                    still_open += 1;
                }
            }
            Ok(_) => {}
        }
    }
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let ok = http.get(format!("{}/healthz", a.url)).send().await.context("healthz after the slow clients")?.status();
    Ok(json!({
        "scenario": "slow-clients",
        "clients": a.clients,
        "connected": opened,
        "refused_at_connect": refused,
        "hold_seconds": a.hold_seconds,
        "still_open_after_hold": still_open,
        "healthz_after": {"status": ok.as_u16(), "ms": t0.elapsed().as_secs_f64() * 1000.0},
    }))
}
