//! Backups that restore: a backup taken while a node keeps booking holds every
//! booking acknowledged before it began, and a node started on the restored
//! copy serves them. The embedded default is backed up with `medislot backup`
//! (SQLite's online backup); PostgreSQL with `pg_dump` and `pg_restore`, as
//! docs/operations.md tells operators to.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;
use std::{
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_booking_restores_every_acknowledged_booking() {
    let srv = TestServer::start_with(&[]);
    let http = client();
    let w = world(&srv, &http, "backup").await;
    let patients = futures::future::join_all((0..6).map(|i| {
        let (srv, http) = (&srv, &http);
        async move { register(srv, http, &format!("p{i}-backup@example.org"), "patient").await }
    }))
    .await;
    let slots = free_slots(&patients[0], &w.doctor_id).await;

    // Patients book on, each acknowledged booking noted with when its answer came.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let bookers: Vec<_> = patients
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let (p, stop, acknowledged) = (p.clone(), stop.clone(), acknowledged.clone());
            let mine: Vec<String> =
                slots.iter().skip(k).step_by(patients.len()).map(|s| s["slot_id"].as_str().unwrap().into()).collect();
            tokio::spawn(async move {
                for slot in mine {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = uuid::Uuid::new_v4().to_string();
                    let (s, body, _) = p
                        .send(
                            Method::POST,
                            "/appointments",
                            Some(json!({"slot_id": slot})),
                            &[("Idempotency-Key", &key)],
                        )
                        .await;
                    assert_eq!(s, 201, "booking a free slot: {body}");
                    acknowledged.lock().unwrap().push((body["id"].as_str().unwrap().to_string(), Instant::now()));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;

    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let backup = {
        let (srv_dir, srv_url, to) = (srv.data_dir.clone(), srv.database_url.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || take_backup(&srv_dir, srv_url.as_deref(), &to)).await.unwrap()
    };
    let took = began.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for b in bookers {
        b.await.expect("a booker failed");
    }
    let all = acknowledged.lock().unwrap().clone();
    let before: Vec<&String> = all.iter().filter(|(_, at)| *at < began).map(|(id, _)| id).collect();
    let during = all.iter().filter(|(_, at)| *at >= began).count();
    assert!(before.len() >= 5, "bookings were acknowledged before the backup: {}", before.len());

    // Restore, and serve from the copy.
    let (restored, _keep) = restore(&backup, dir.path());
    for id in &before {
        let (s, a) = patients[0].via(&restored).get(&format!("/appointments/{id}")).await;
        let (s, a) = if s == 404 {
            // Not this patient's: ask as the doctor, who sees every one of theirs.
            w.doctor.via(&restored).get(&format!("/appointments/{id}")).await
        } else {
            (s, a)
        };
        assert_eq!(s, 200, "acknowledged booking {id} is in the restored copy: {a}");
        assert_eq!(a["status"], "booked", "{a}");
    }
    eprintln!(
        "backup: {} bookings acknowledged before it began all restored; {during} more acknowledged while it ran ({took:?})",
        before.len()
    );
}

/// The operator's backup of the database the node at `data_dir`/`database_url` serves, into `to`.
fn take_backup(data_dir: &Path, database_url: Option<&str>, to: &Path) -> std::path::PathBuf {
    match database_url {
        Some(url) if url.starts_with("postgres") => {
            let file = to.join("medislot.dump");
            run(Command::new("pg_dump").args(["-Fc", "-d", url, "-f"]).arg(&file));
            file
        }
        _ => {
            let file = to.join("medislot-backup.db");
            let out = run(Command::new(BIN).args(["backup", "--data-dir"]).arg(data_dir).arg("--to").arg(&file));
            assert!(out.contains("backed up"), "medislot backup says what it copied: {out}");
            file
        }
    }
}

/// A node serving the restored backup, and what keeps its database alive.
fn restore(backup: &Path, dir: &Path) -> (TestServer, Box<dyn std::any::Any>) {
    if backup.extension().is_some_and(|e| e == "dump") {
        let db = PgDatabase::create();
        run(Command::new("pg_restore").args(["--no-owner", "-d", db.url.as_str()]).arg(backup));
        (TestServer::start_on_url(&db.url, &["--workers", "false"]), Box::new(db))
    } else {
        let restored = dir.join("restored");
        std::fs::create_dir_all(&restored).unwrap();
        std::fs::copy(backup, restored.join("medislot.db")).unwrap();
        let url = format!("sqlite:{}", restored.join("medislot.db").display());
        (TestServer::start_on_url(&url, &["--workers", "false"]), Box::new(()))
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
