//! Starts the real `medislot` binary on a free loopback port with a fresh
//! database, and talks to it over HTTP like any client would. Shared by the
//! `api` and `cluster` test binaries; each uses part of it.
#![allow(dead_code)]

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

pub const PASSWORD: &str = "correct horse battery";
/// The password of every account `serve --demo` seeds.
pub const DEMO_PASSWORD: &str = "demo-password";
/// The operators' token every test server takes (`--ops-token`), for /metrics and /regions.
pub const OPS_TOKEN: &str = "test-operators-token-0123456789";
pub const BIN: &str = env!("CARGO_BIN_EXE_medislot");

pub struct TestServer {
    pub url: String,
    /// The operators' address, when started with `--internal-listen`.
    pub internal_url: Option<String>,
    pub child: Child,
    pub data_dir: PathBuf,
    /// `--database-url` when the suite runs on PostgreSQL (`MEDISLOT_TEST_BACKEND=postgres`).
    pub database_url: Option<String>,
    _tmp: Option<tempfile::TempDir>,
    _pg: Option<std::sync::Arc<PgDatabase>>,
}

/// A fresh, uniquely named PostgreSQL database, dropped when the last server using it is.
pub struct PgDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// On the test PostgreSQL server (`MEDISLOT_TEST_POSTGRES_URL`, set by scripts/test).
    pub fn create() -> PgDatabase {
        let admin = std::env::var("MEDISLOT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        Self::create_on(&admin)
    }

    /// On the server whose `postgres` database `admin` points at.
    pub fn create_on(admin: &str) -> PgDatabase {
        let admin = admin.to_string();
        let name = format!("medislot_test_{}", uuid::Uuid::new_v4().simple());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        PgDatabase { admin, name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(url: &str, sql: &str) {
    query(url, sql);
}

/// Runs SQL with psql and returns the rows, columns separated by `|`.
pub fn query(url: &str, sql: &str) -> Vec<Vec<String>> {
    let out =
        Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtF|", "-c", sql]).output().unwrap_or_else(|e| {
            panic!("psql is needed for the PostgreSQL tests ({e}); run scripts/test, which provisions PostgreSQL")
        });
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

pub fn on_postgres() -> bool {
    std::env::var("MEDISLOT_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// A server on a fresh temporary data directory, with extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let pg = on_postgres().then(|| std::sync::Arc::new(PgDatabase::create()));
        let url = pg.as_ref().map(|p| p.url.clone());
        let mut s = Self::spawn(&dir, pg, url, extra);
        s._tmp = Some(tmp);
        s
    }

    /// A server on a fresh database of the test PostgreSQL server, whatever the suite's backend.
    pub fn start_on_postgres(extra: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let pg = std::sync::Arc::new(PgDatabase::create());
        let url = pg.url.clone();
        let mut s = Self::spawn(tmp.path(), Some(pg), Some(url), extra);
        s._tmp = Some(tmp);
        s
    }

    /// A server on the database at `database_url`, which the caller owns.
    pub fn start_on_url(database_url: &str, extra: &[&str]) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Self::spawn(tmp.path(), None, Some(database_url.to_string()), extra);
        s._tmp = Some(tmp);
        s
    }

    /// Another server on the same database as this one (restart, second node).
    pub fn sibling(&self, extra: &[&str]) -> TestServer {
        Self::spawn(&self.data_dir, self._pg.clone(), self.database_url.clone(), extra)
    }

    fn spawn(
        dir: &Path,
        pg: Option<std::sync::Arc<PgDatabase>>,
        database_url: Option<String>,
        extra: &[&str],
    ) -> TestServer {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
            .args(if extra.contains(&"--logins-per-minute") { &[][..] } else { &["--logins-per-minute", "1000"][..] })
            .args(if extra.contains(&"--ops-token") { &[][..] } else { &["--ops-token", OPS_TOKEN][..] })
            .args(if extra.contains(&"--public-reads-per-second") {
                &[][..]
            } else {
                &["--public-reads-per-second", "100000"][..]
            })
            .args(if extra.contains(&"--client-attempts-per-minute") {
                &[][..]
            } else {
                &["--client-attempts-per-minute", "100000"][..]
            })
            .args(extra)
            .env("MEDISLOT_LOG", if std::env::var("TEST_LOG").is_ok() { "info" } else { "error" })
            .stdout(Stdio::piped())
            .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start medislot");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut internal_url = None;
        let url = loop {
            let line = lines.next().expect("medislot exited before listening").unwrap();
            if let Some(rest) = line.strip_prefix("medislot internal listening on ") {
                internal_url = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("medislot listening on ") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        TestServer { url, internal_url, child, data_dir: dir.to_path_buf(), database_url, _tmp: None, _pg: pg }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.url, path)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Creates a platform admin with the CLI, as an operator would.
    pub fn create_admin(&self, email: &str) {
        let out = Command::new(BIN)
            .args(["admin", "create", "--email", email, "--password", PASSWORD, "--data-dir"])
            .arg(&self.data_dir)
            .args(self.database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
            .output()
            .unwrap();
        assert!(out.status.success(), "admin create failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(4).build().unwrap()
}

/// A logged-in user's handle.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub token: String,
    pub base: String,
    pub http: Client,
}

impl User {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.try_send(method, path, body, headers).await.unwrap()
    }

    /// Like [`Self::send`], but a dropped connection or a timeout is the caller's to judge.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<(StatusCode, Value, reqwest::header::HeaderMap)> {
        let mut req = self.http.request(method, format!("{}/api/v1{}", self.base, path)).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        try_decode(req.send().await?).await
    }

    /// The same account, talking to another node.
    pub fn via(&self, srv: &TestServer) -> User {
        User { base: srv.url.clone(), ..self.clone() }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.send(Method::GET, path, None, &[]).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.send(Method::POST, path, Some(body), &[]).await;
        (s, v)
    }

    /// A reschedule or cancel that does not care which version it changes (`If-Match: *`).
    pub async fn change(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.send(Method::POST, path, Some(body), &[("If-Match", "*")]).await;
        (s, v)
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.send(Method::PUT, path, Some(body), &[]).await;
        (s, v)
    }
}

pub async fn decode(r: Response) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    try_decode(r).await.unwrap()
}

/// The answer's status, JSON body and headers; every error must be problem+json.
pub async fn try_decode(r: Response) -> reqwest::Result<(StatusCode, Value, reqwest::header::HeaderMap)> {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await?;
    let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    if !status.is_success() {
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(ct, "application/problem+json", "error {status} without problem+json: {v}");
    }
    Ok((status, v, headers))
}

/// The value of the cookie `name` the answer sets, if it sets one.
pub fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or_default().to_string())
    })
}

/// A form post from the pages as `u`: the CSRF token read from `path`'s page first.
pub async fn post_form(srv: &TestServer, u: &User, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    post_form_from(srv, u, path, path, fields).await
}

/// A form post to `path` from the page at `page` (where its CSRF token is read).
pub async fn post_form_from(
    srv: &TestServer,
    u: &User,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let web = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let session = format!("medislot_session={}", u.token);
    let page = web.get(format!("{}{page}", srv.url)).header("cookie", &session).send().await.unwrap();
    let csrf = set_cookie(&page, "medislot_csrf").expect("a CSRF cookie");
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect()
    };
    let body: Vec<String> =
        [("csrf", csrf.as_str())].iter().chain(fields).map(|(k, v)| format!("{k}={}", encode(v))).collect();
    web.post(format!("{}{path}", srv.url))
        .header("cookie", format!("medislot_csrf={csrf}; {session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap()
}

pub async fn register(srv: &TestServer, http: &Client, email: &str, role: &str) -> User {
    let r = http
        .post(srv.api("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": format!("User {email}"), "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register {email}: {}", r.text().await.unwrap());
    login(srv, http, email).await
}

pub async fn login(srv: &TestServer, http: &Client, email: &str) -> User {
    let r =
        http.post(srv.api("/auth/login")).json(&json!({"email": email, "password": PASSWORD})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    User {
        id: v["user"]["id"].as_str().unwrap().into(),
        token: v["token"].as_str().unwrap().into(),
        base: srv.url.clone(),
        http: http.clone(),
    }
}

/// A bearer token for one of the accounts `serve --demo` seeds.
/// One of the demo's accounts, signed in.
pub async fn demo_user(srv: &TestServer, email: &str) -> User {
    User { id: String::new(), token: demo_token(srv, email).await, base: srv.url.clone(), http: client() }
}

pub async fn demo_token(srv: &TestServer, email: &str) -> String {
    let r = client()
        .post(srv.api("/auth/login"))
        .json(&json!({"email": email, "password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "demo login {email}: {v}");
    v["token"].as_str().unwrap().to_string()
}

/// A clinic with one verified doctor working every day, 00:00–23:30 Paris time, in 30-minute slots.
pub struct World {
    pub admin: User,
    pub clinic_admin: User,
    pub doctor: User,
    pub clinic_id: String,
    pub doctor_id: String,
}

pub fn every_day(start: &str, end: &str, slot: i64) -> Vec<Value> {
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": start, "end": end, "mode": "in_person", "slot_minutes": slot}))
        .collect()
}

pub async fn world(srv: &TestServer, http: &Client, tag: &str) -> World {
    let admin_email = format!("admin-{tag}@example.org");
    srv.create_admin(&admin_email);
    let admin = login(srv, http, &admin_email).await;
    let clinic_admin = register(srv, http, &format!("ca-{tag}@example.org"), "clinic_admin").await;
    let (s, clinic) = clinic_admin
        .post("/clinics", json!({"name": format!("Clinic {tag}"), "address": "1 rue de Rivoli, Paris", "latitude": 48.8566, "longitude": 2.3522, "time_zone": "Europe/Paris"}))
        .await;
    assert_eq!(s, 201, "{clinic}");
    let clinic_id = clinic["id"].as_str().unwrap().to_string();
    let doctor = register(srv, http, &format!("dr-{tag}@example.org"), "doctor").await;
    let doctor_id = add_doctor(&doctor, &admin, &clinic_id, "cardiology").await;
    World { admin, clinic_admin, doctor, clinic_id, doctor_id }
}

/// A doctor account creates its profile, publishes a schedule and is verified.
pub async fn add_doctor(doctor: &User, admin: &User, clinic_id: &str, specialty: &str) -> String {
    let (s, d) = doctor
        .post("/doctors", json!({"clinic_id": clinic_id, "name": "Dr Test", "specialties": [specialty], "languages": ["fr", "en"], "modes": ["in_person"], "licence_number": format!("LIC-{}", uuid::Uuid::new_v4().simple())}))
        .await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let (s, v) = doctor
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
    id
}

pub async fn free_slots(u: &User, doctor_id: &str) -> Vec<Value> {
    let (s, v) = u.get(&format!("/doctors/{doctor_id}/slots")).await;
    assert_eq!(s, 200, "{v}");
    v["slots"].as_array().unwrap().clone()
}
