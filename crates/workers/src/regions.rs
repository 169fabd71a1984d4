//! Links to peer regions over HTTP (`/internal/v1`, authenticated by the
//! shared region secret), and the loops that keep them useful:
//!
//! - **heartbeats** (every `heartbeat`): a peer is `up` after an answer,
//!   `suspect` after one failure, `down` after two; while down, forwarded
//!   bookings fail at once (the circuit is open) instead of waiting for timeouts;
//! - **replication**: each peer's snapshot (its clinics, doctors, busy times,
//!   and its answers about bookings forwarded from here) is pulled and applied
//!   in one transaction, so search and slot lists of remote doctors are local;
//! - **forwarding**: bookings accepted here as `pending` (clinics with the
//!   `available` policy) are sent to their home region once it answers, and
//!   settled `booked` or `conflict`.

use jiff::Timestamp;
use medislot_app::{
    App, ChangeAnswer, ForwardedBooking, HomeAnswer, LinkError, LinkState, PeerStatus, RegionLink, RemoteChange,
};
use medislot_domain::AppointmentId;
use medislot_store::{AppointmentRecord, RegionSnapshot};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub const SECRET_HEADER: &str = "x-medislot-region-secret";

#[derive(Debug, Clone)]
pub struct RegionConfig {
    pub region: String,
    /// Peer name → base URL (`http://host:port`).
    pub peers: BTreeMap<String, String>,
    pub secret: String,
    pub heartbeat: Duration,
    /// How long a forwarded booking may wait for the home region's answer.
    pub forward_timeout: Duration,
    pub replication: Duration,
}

#[derive(Debug)]
struct Link {
    url: String,
    state: LinkState,
    failures: u32,
    last_ok: Option<Instant>,
}

pub struct PeerLinks {
    config: RegionConfig,
    http: reqwest::Client,
    links: Mutex<BTreeMap<String, Link>>,
    /// Per peer: as of when the last applied snapshot was, and when the last full one came.
    cursors: Mutex<BTreeMap<String, (Timestamp, Instant)>>,
}

/// A full snapshot at least this often instead of the changes: anti-entropy
/// for a change the cursor could have missed (a transaction that committed late).
const FULL_EVERY: Duration = Duration::from_secs(30);
/// How far before the cursor changes are asked for again (late commits, clock steps).
const CURSOR_OVERLAP: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

impl PeerLinks {
    pub fn new(config: RegionConfig) -> Arc<Self> {
        let links = config
            .peers
            .iter()
            .map(|(name, url)| {
                let link = Link {
                    url: url.trim_end_matches('/').to_string(),
                    state: LinkState::Suspect,
                    failures: 0,
                    last_ok: None,
                };
                (name.clone(), link)
            })
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Arc::new(Self { config, http, links: Mutex::new(links), cursors: Mutex::default() })
    }

    fn url(&self, region: &str) -> Option<String> {
        self.links.lock().unwrap().get(region).map(|l| l.url.clone())
    }

    fn record(&self, region: &str, ok: bool) {
        let mut links = self.links.lock().unwrap();
        if let Some(l) = links.get_mut(region) {
            if ok {
                l.failures = 0;
                l.state = LinkState::Up;
                l.last_ok = Some(Instant::now());
            } else {
                l.failures += 1;
                l.state = if l.failures >= 2 { LinkState::Down } else { LinkState::Suspect };
            }
        }
    }

    fn request(&self, method: reqwest::Method, url: String, timeout: Duration) -> reqwest::RequestBuilder {
        self.http.request(method, url).header(SECRET_HEADER, &self.config.secret).timeout(timeout)
    }

    async fn heartbeat_once(&self, region: &str) {
        let Some(url) = self.url(region) else { return };
        let answer = self
            .request(reqwest::Method::GET, format!("{url}/internal/v1/heartbeat"), self.config.heartbeat * 2)
            .send()
            .await;
        let ok = matches!(&answer, Ok(r) if r.status().is_success());
        self.record(region, ok);
    }

    async fn pull(&self, app: &App, region: &str) -> Result<(), String> {
        let url = self.url(region).ok_or("no such peer")?;
        let me = &self.config.region;
        let cursor = self.cursors.lock().unwrap().get(region).copied();
        let since = match cursor {
            Some((as_of, full)) if full.elapsed() < FULL_EVERY => format!("&since={}", as_of - CURSOR_OVERLAP),
            _ => String::new(),
        };
        let r = self
            .request(
                reqwest::Method::GET,
                format!("{url}/internal/v1/snapshot?peer={me}{since}"),
                Duration::from_secs(10),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("snapshot answered {}", r.status()));
        }
        let snap: RegionSnapshot = r.json().await.map_err(|e| e.to_string())?;
        if snap.region != region {
            return Err(format!("peer {region} says it is {}", snap.region));
        }
        app.store().apply_replica(me, &snap, app.now()).await.map_err(|e| e.to_string())?;
        app.replica_changed(&snap);
        let last_full = if snap.full { Instant::now() } else { cursor.map_or_else(Instant::now, |(_, f)| f) };
        self.cursors.lock().unwrap().insert(region.to_string(), (snap.as_of, last_full));
        Ok(())
    }

    /// Runs heartbeats, replication and forwarding — three loops, so that a
    /// slow peer never delays the others — until `stop` resolves.
    pub async fn run(self: Arc<Self>, app: App, stop: impl std::future::Future<Output = ()>) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let peers: Vec<String> = self.config.peers.keys().cloned().collect();
        let (me, app, peers) = (&*self, &app, &peers);
        let heartbeats = every(me.config.heartbeat, rx.clone(), move || async move {
            futures::future::join_all(peers.iter().map(|p| me.heartbeat_once(p))).await;
            me.report(app).await;
        });
        let replication = every(me.config.replication, rx.clone(), move || async move {
            let pulls = peers.iter().filter(|p| me.state(p) != Some(LinkState::Down)).map(|p| async move {
                if let Err(e) = me.pull(app, p).await {
                    tracing::debug!(peer = %p, error = %e, "replication pull failed");
                }
            });
            futures::future::join_all(pulls).await;
        });
        let forwarding = every(me.config.heartbeat, rx, move || me.forward_pending(app));
        let stopper = async move {
            stop.await;
            let _ = tx.send(true);
        };
        tokio::join!(heartbeats, replication, forwarding, stopper);
    }

    async fn forward_pending(&self, app: &App) {
        let pending = match app.store().pending_forwards(50).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the forwarding queue");
                return;
            }
        };
        for f in pending {
            if self.state(&f.region) == Some(LinkState::Down) {
                continue;
            }
            if let Err(e) = app.settle_forward(&f).await {
                tracing::warn!(appointment = %f.id, error = %e, "settling a forwarded booking failed");
            }
        }
    }

    async fn report(&self, app: &App) {
        let now = app.now();
        let replicas = app.store().replicas().await.unwrap_or_default();
        let links = self.peers();
        for l in &links {
            let lag = replicas.iter().find(|r| r.region == l.region).map(|r| now.duration_since(r.as_of));
            app.metrics().region_link(&l.region, l.state == LinkState::Up, lag.map(|d| d.as_secs_f64()));
        }
        if let Ok((n, oldest)) = app.store().forwarding_backlog().await {
            let age = oldest.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
            app.metrics().forwarding_queue(n, age);
        }
    }
}

#[async_trait::async_trait]
impl RegionLink for PeerLinks {
    fn peers(&self) -> Vec<PeerStatus> {
        self.links
            .lock()
            .unwrap()
            .iter()
            .map(|(name, l)| PeerStatus {
                region: name.clone(),
                url: l.url.clone(),
                state: l.state,
                last_contact_ms: l.last_ok.map(|t| t.elapsed().as_millis() as u64),
            })
            .collect()
    }

    fn state(&self, region: &str) -> Option<LinkState> {
        self.links.lock().unwrap().get(region).map(|l| l.state)
    }

    async fn book(&self, region: &str, booking: &ForwardedBooking) -> Result<HomeAnswer, LinkError> {
        let (status, body) = self.post(region, "/internal/v1/appointments", booking).await?;
        let no_answer = |why: String| LinkError::NoAnswer { region: region.to_string(), why };
        match status {
            200 | 201 => home_appointment(&body, &booking.origin_region)
                .map(|a| HomeAnswer::Booked(Box::new(a)))
                .ok_or_else(|| no_answer(format!("unreadable answer {body}"))),
            409 if is_slot_taken(&body) => Ok(HomeAnswer::Taken),
            // The home's own 503 (database busy, deadline) says nothing of the outcome.
            502..=504 => Err(no_answer(format!("home region answered {status}"))),
            _ => Ok(HomeAnswer::Refused { status, detail: body["detail"].as_str().unwrap_or("refused").to_string() }),
        }
    }

    async fn change(&self, region: &str, id: AppointmentId, change: &RemoteChange) -> Result<ChangeAnswer, LinkError> {
        let (status, body) = self.post(region, &format!("/internal/v1/appointments/{id}/change"), change).await?;
        let no_answer = |why: String| LinkError::NoAnswer { region: region.to_string(), why };
        match status {
            200 => home_appointment(&body, &self.config.region)
                .map(|a| ChangeAnswer::Done(Box::new(a)))
                .ok_or_else(|| no_answer(format!("unreadable answer {body}"))),
            409 if is_slot_taken(&body) => Ok(ChangeAnswer::Taken),
            502..=504 => Err(no_answer(format!("home region answered {status}"))),
            _ => Ok(ChangeAnswer::Refused { status, detail: body["detail"].as_str().unwrap_or("refused").to_string() }),
        }
    }
}

fn is_slot_taken(body: &serde_json::Value) -> bool {
    body["type"].as_str().is_some_and(|t| t.ends_with("/slot-taken"))
}

impl PeerLinks {
    /// POSTs JSON to a peer through the circuit breaker: the answer's status and
    /// body, or why there is none (never sent, or sent and unanswered).
    async fn post<T: serde::Serialize + Sync>(
        &self,
        region: &str,
        path: &str,
        body: &T,
    ) -> Result<(u16, serde_json::Value), LinkError> {
        let unreachable = |why: String| LinkError::Unreachable { region: region.to_string(), why };
        let Some(url) = self.url(region) else { return Err(unreachable("not a peer of this region".into())) };
        if self.state(region) == Some(LinkState::Down) {
            return Err(unreachable("link down (circuit open)".into()));
        }
        let answer = self
            .request(reqwest::Method::POST, format!("{url}{path}"), self.config.forward_timeout)
            .json(body)
            .send()
            .await;
        let no_answer = |why: String| LinkError::NoAnswer { region: region.to_string(), why };
        let r = match answer {
            Ok(r) => r,
            Err(e) => {
                self.record(region, false);
                // Not even connected: certainly not sent. Otherwise it may have arrived.
                return Err(if e.is_connect() { unreachable(e.to_string()) } else { no_answer(e.to_string()) });
            }
        };
        let status = r.status().as_u16();
        let body: serde_json::Value = match r.json().await {
            Ok(b) => b,
            Err(e) => {
                self.record(region, false);
                return Err(no_answer(format!("answer cut short: {e}")));
            }
        };
        self.record(region, true);
        Ok((status, body))
    }
}

/// Runs `pass` every `period` (a late tick waits, it does not pile up) until `stop` turns true.
async fn every<F: std::future::Future<Output = ()>>(
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut pass: impl FnMut() -> F,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
        }
        pass().await;
    }
}

/// The home region's appointment view, read back.
fn home_appointment(v: &serde_json::Value, origin_region: &str) -> Option<AppointmentRecord> {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str());
    let ts = |k: &str| text(k).and_then(|s| s.parse::<Timestamp>().ok());
    Some(AppointmentRecord {
        id: medislot_domain::AppointmentId(uuid::Uuid::parse_str(text("id")?).ok()?),
        doctor_id: medislot_domain::DoctorId(uuid::Uuid::parse_str(text("doctor_id")?).ok()?),
        patient_id: medislot_domain::UserId(uuid::Uuid::parse_str(text("patient_id")?).ok()?),
        start: ts("start")?,
        end: ts("end")?,
        mode: medislot_domain::Mode::parse("mode", text("mode")?).ok()?,
        reason: text("reason").unwrap_or_default().to_string(),
        status: medislot_domain::AppointmentStatus::parse("status", text("status")?).ok()?,
        version: v.get("version")?.as_i64()?,
        origin_region: origin_region.to_string(),
        hold_expires_at: None,
        cancel_reason: text("cancel_reason").map(str::to_string),
        cancelled_by: None,
        created_at: ts("created_at")?,
        updated_at: ts("updated_at")?,
        video_room: text("video_room").map(str::to_string),
        visit: v.get("visit_type").and_then(|t| {
            Some(medislot_store::Visit {
                code: t.get("code")?.as_str()?.to_string(),
                name: t.get("name")?.as_str()?.to_string(),
                intake: v.get("intake").and_then(|i| serde_json::from_value(i.clone()).ok()).unwrap_or_default(),
            })
        }),
        awaiting_clinic: text("awaiting") == Some("clinic"),
    })
}
