//! Regions as separate processes on loopback, each with its own database, and
//! a fault-injecting TCP proxy on every directed link between two regions:
//! region A reaches region B only through the proxy `A→B`, which can pass,
//! refuse (connections reset), blackhole (accepted, never answered) or delay.

use crate::helpers::*;
use serde_json::{json, Value};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SECRET: &str = "test-region-secret-0123456789";
pub const NAMES: [&str; 3] = ["eu", "us", "ap"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass = 0,
    /// Connections are accepted and reset at once.
    Refuse = 1,
    /// Connections are accepted and never answered.
    Blackhole = 2,
}

/// One direction of one link.
pub struct Proxy {
    pub port: u16,
    fault: Arc<AtomicU8>,
    latency_ms: Arc<AtomicU64>,
    /// Bumped on every change: connections opened before it are dropped.
    generation: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (fault, latency_ms, generation) =
            (Arc::new(AtomicU8::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (f, l, g) = (fault.clone(), latency_ms.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let (f, l, g) = (f.clone(), l.clone(), g.clone());
                tokio::spawn(async move {
                    let born = g.load(Ordering::SeqCst);
                    match f.load(Ordering::SeqCst) {
                        1 => {
                            drop(client);
                            return;
                        }
                        2 => {
                            // Hold it open, say nothing, until the link changes.
                            while g.load(Ordering::SeqCst) == born {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            return;
                        }
                        _ => {}
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await else { return };
                    pipe(client, server, l, g, born).await;
                });
            }
        });
        Proxy { port, fault, latency_ms, generation }
    }

    pub fn set(&self, fault: Fault, latency_ms: u64) {
        self.fault.store(fault as u8, Ordering::SeqCst);
        self.latency_ms.store(latency_ms, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies both ways (with the link's latency on each chunk) until either side
/// closes or the link changes.
async fn pipe(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    latency: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    born: u64,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let copy = |mut r: tokio::net::tcp::OwnedReadHalf,
                mut w: tokio::net::tcp::OwnedWriteHalf,
                latency: Arc<AtomicU64>| async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = latency.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let changed = async {
        while generation.load(Ordering::SeqCst) == born {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let up = copy(cr, sw, latency.clone());
    let down = copy(sr, cw, latency);
    // Either way ends the connection: the halves are dropped with the futures.
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = changed => {}
    }
}

/// One region: a medislot node with its own SQLite database.
pub struct Region {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    pub url: String,
    peers: Vec<String>,
    child: Option<Child>,
}

impl Region {
    fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port), "--region", &self.name, "--data-dir"])
            .arg(&self.dir)
            .args(["--region-secret", SECRET, "--heartbeat-ms", "100", "--replication-ms", "200"])
            .args([
                "--forward-timeout-ms",
                "800",
                "--logins-per-minute",
                "100000",
                "--client-attempts-per-minute",
                "100000",
                "--reminders",
                "",
            ])
            .args(["--notify-poll-ms", "100", "--ops-token", crate::helpers::OPS_TOKEN])
            .args(["--public-reads-per-second", "100000"]);
        for p in &self.peers {
            cmd.args(["--peer", p]);
        }
        let mut child = cmd
            .env("MEDISLOT_LOG", if std::env::var("TEST_LOG").is_ok() { "info" } else { "error" })
            .stdout(Stdio::piped())
            .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start medislot");
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("medislot exited before listening").unwrap();
            if line.starts_with("medislot listening on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// `GET /api/v1/regions` as an operator (the ops token).
    pub async fn regions(&self, http: &reqwest::Client) -> Value {
        http.get(self.api("/regions"))
            .bearer_auth(crate::helpers::OPS_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// This region's database, opened beside the running node (for the checker).
    pub async fn store(&self) -> medislot_store::DynStore {
        let url = format!("sqlite:{}", self.dir.join("medislot.db").display());
        let options = medislot_store::ConnectOptions { migrate: false, max_connections: 2, ..Default::default() };
        medislot_store::connect(&url, &options).await.unwrap()
    }

    pub fn create_admin(&self, email: &str) {
        let out = Command::new(BIN)
            .args(["admin", "create", "--email", email, "--password", PASSWORD, "--data-dir"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Three regions, fully meshed through proxies.
pub struct Mesh {
    pub regions: Vec<Region>,
    /// (from, to) → the proxy `from` uses to reach `to`.
    pub links: BTreeMap<(String, String), Proxy>,
    _tmp: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Mesh {
    pub async fn start() -> Mesh {
        let tmp = tempfile::tempdir().unwrap();
        let ports: BTreeMap<&str, u16> = NAMES.iter().map(|n| (*n, free_port())).collect();
        let mut links = BTreeMap::new();
        for from in NAMES {
            for to in NAMES.iter().filter(|t| **t != from) {
                links.insert((from.to_string(), to.to_string()), Proxy::start(ports[to]).await);
            }
        }
        let mut regions = Vec::new();
        for name in NAMES {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let peers = NAMES
                .iter()
                .filter(|t| **t != name)
                .map(|t| format!("{t}=http://127.0.0.1:{}", links[&(name.to_string(), t.to_string())].port))
                .collect();
            let port = ports[name];
            let mut r =
                Region { name: name.into(), port, dir, url: format!("http://127.0.0.1:{port}"), peers, child: None };
            r.spawn();
            regions.push(r);
        }
        Mesh { regions, links, _tmp: tmp }
    }

    pub fn region(&self, name: &str) -> &Region {
        self.regions.iter().find(|r| r.name == name).unwrap()
    }

    pub fn region_mut(&mut self, name: &str) -> &mut Region {
        self.regions.iter_mut().find(|r| r.name == name).unwrap()
    }

    /// Sets both directions between `a` and every other region.
    pub fn isolate(&self, a: &str, fault: Fault) {
        for ((from, to), p) in &self.links {
            if from == a || to == a {
                p.set(fault, 0);
            }
        }
    }

    pub fn link(&self, from: &str, to: &str) -> &Proxy {
        &self.links[&(from.to_string(), to.to_string())]
    }

    pub fn heal(&self) {
        for p in self.links.values() {
            p.set(Fault::Pass, 0);
        }
    }
}

/// A user of one region (the helpers' `User`, pointed at that region).
pub async fn user(r: &Region, http: &reqwest::Client, email: &str, role: &str) -> User {
    let resp = http
        .post(r.api("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": format!("User {email}"), "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "register {email} in {}", r.name);
    login_at(r, http, email).await
}

pub async fn login_at(r: &Region, http: &reqwest::Client, email: &str) -> User {
    let v: Value = http
        .post(r.api("/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    User {
        id: v["user"]["id"].as_str().unwrap().into(),
        token: v["token"].as_str().unwrap().into(),
        base: r.url.clone(),
        http: http.clone(),
    }
}

/// A clinic of `policy` homed in `r`, with one verified doctor working every
/// day around the clock in 30-minute slots; returns (clinic id, doctor id).
pub async fn clinic_with_doctor(r: &Region, http: &reqwest::Client, admin: &User, policy: &str) -> (String, String) {
    let ca = user(r, http, &format!("ca-{policy}@{}.example", r.name), "clinic_admin").await;
    let (s, clinic) = ca
        .post("/clinics", json!({"name": format!("{} {policy}", r.name), "address": "1 Main St", "latitude": 48.85, "longitude": 2.35, "time_zone": "Europe/Paris", "policy": policy}))
        .await;
    assert_eq!(s, 201, "{clinic}");
    let clinic_id = clinic["id"].as_str().unwrap().to_string();
    let dr = user(r, http, &format!("dr-{policy}@{}.example", r.name), "doctor").await;
    let (s, d) = dr
        .post("/doctors", json!({"clinic_id": clinic_id, "name": format!("Dr {} {policy}", r.name), "specialties": ["cardiology"], "modes": ["in_person"], "licence_number": format!("L-{}-{policy}", r.name)}))
        .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let (s, v) = dr
        .put(
            &format!("/doctors/{id}/schedule"),
            json!({"weekly": every_day("00:00", "23:30", 30), "min_notice_minutes": 0, "horizon_days": 30}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The clinic accepts the doctor's request to join it (a platform admin may answer for it).
    let (s, v) = admin.post(&format!("/doctors/{id}/membership"), json!({"decision": "accept"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = admin.post(&format!("/doctors/{id}/verification"), json!({"decision": "verified"})).await;
    assert_eq!(s, 200, "{v}");
    (clinic_id, id)
}

/// Waits until every region's search lists `n` doctors and every link is up.
pub async fn converged(mesh: &Mesh, http: &reqwest::Client, n: usize, within: Duration) {
    let t0 = std::time::Instant::now();
    loop {
        let mut ok = true;
        for r in &mesh.regions {
            let v: Value = http
                .get(r.api("/doctors?specialty=cardiology&per_page=100"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let links = r.regions(http).await;
            let up = links["peers"].as_array().unwrap().iter().all(|p| p["state"] == "up");
            ok &= v["total"].as_u64() == Some(n as u64) && up;
        }
        if ok {
            return;
        }
        assert!(t0.elapsed() < within, "regions did not converge within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
