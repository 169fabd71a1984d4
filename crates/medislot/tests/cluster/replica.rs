//! Reads from a read replica (`--read-database-url`): search and slot lists
//! come from the standby, marked with `as_of`, while it keeps up; a patient's
//! own booking shows at once (read from the primary); and when the standby is
//! gone, the same reads are answered by the primary.

use crate::{fixture, helpers::*, pg::PgCluster};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// This node's figure for `name` (its first sample), from /metrics.
async fn metric(http: &reqwest::Client, srv: &TestServer, name: &str) -> Option<f64> {
    let text = http.get(format!("{}/metrics", srv.url)).bearer_auth(OPS_TOKEN).send().await.ok()?.text().await.ok()?;
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !check().await {
        assert!(t0.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_tolerant_reads_come_from_the_replica_and_fall_back_to_the_primary() {
    let _turn = crate::one_at_a_time().await;
    let (pg, primary, standby) = PgCluster::replicated();
    let srv = TestServer::start_on_url(&primary, &["--read-database-url", &standby, "--read-max-lag-ms", "5000"]);
    let http = client();
    let f = fixture(&srv, &http, "replica", 1, 1).await;
    let (p, doctor) = (&f.patients[0], &f.doctors[0]);
    until("the replica is measured and keeps up", Duration::from_secs(10), async || {
        metric(&http, &srv, "medislot_db_replica_up").await == Some(1.0)
    })
    .await;
    let lag = metric(&http, &srv, "medislot_db_replica_lag_seconds").await.expect("the lag is exported");
    assert!(lag < 5.0, "a synchronous standby keeps up: {lag} s");

    // Search and slot lists are read on the replica, and say as of when.
    let (s, found) = p.get("/doctors?specialty=cardiology").await;
    assert_eq!(s, 200, "{found}");
    let hit = found["items"].as_array().unwrap().iter().find(|h| h["doctor"]["id"] == *doctor).cloned();
    let hit = hit.unwrap_or_else(|| panic!("the doctor is found: {found}"));
    let as_of: jiff::Timestamp = hit["as_of"].as_str().expect("as_of on a replica's answer").parse().unwrap();
    assert!(jiff::Timestamp::now().duration_since(as_of).as_secs() < 10, "recent: {as_of}");
    let (s, listed) = p.get(&format!("/doctors/{doctor}/slots")).await;
    assert_eq!(s, 200, "{listed}");
    assert!(listed["as_of"].is_string(), "{listed}");
    let served = metric(&http, &srv, "medislot_db_replica_reads_total{outcome=\"served\"}").await.unwrap_or(0.0);
    assert!(served >= 2.0, "the replica served those reads: {served}");

    // The standby stops applying what it receives (it still confirms it, so
    // commits go on): its data falls behind.
    query(&standby, "SELECT pg_wal_replay_pause()");
    // A patient's own booking shows at once: that doctor is read from the primary for a while.
    let slot = listed["slots"][0]["slot_id"].as_str().unwrap().to_string();
    let (s, booked, _) = p.send(Method::POST, "/appointments", Some(json!({"slot_id": slot})), &[]).await;
    assert_eq!(s, 201, "{booked}");
    let after = free_slots(p, doctor).await;
    assert!(after.iter().all(|s| s["slot_id"] != slot.as_str()), "the booked slot is no longer offered");
    // Past the bound (5 s here), the replica serves nothing; reads are the primary's.
    until("the lagging replica is left alone", Duration::from_secs(20), async || {
        metric(&http, &srv, "medislot_db_replica_up").await == Some(0.0)
    })
    .await;
    let (s, listed) = p.get(&format!("/doctors/{doctor}/slots")).await;
    assert_eq!(s, 200, "{listed}");
    assert!(listed.get("as_of").is_none(), "from the primary: {listed}");
    query(&standby, "SELECT pg_wal_replay_resume()");
    until("the replica caught up serves again", Duration::from_secs(10), async || {
        metric(&http, &srv, "medislot_db_replica_up").await == Some(1.0)
    })
    .await;

    // The standby goes away: the same reads are answered by the primary.
    pg.server("kill", Some("standby"));
    for path in ["/doctors?specialty=cardiology".to_string(), format!("/doctors/{doctor}/slots")] {
        let (s, v) = p.get(&path).await;
        assert_eq!(s, 200, "{path} answers without the replica: {v}");
    }
    until("the replica is marked down", Duration::from_secs(10), async || {
        metric(&http, &srv, "medislot_db_replica_up").await == Some(0.0)
    })
    .await;
    let (s, found) = p.get("/doctors?specialty=cardiology").await;
    assert_eq!(s, 200, "{found}");
    assert!(found["items"][0].get("as_of").is_none(), "from the primary, nothing to qualify: {found}");
}
