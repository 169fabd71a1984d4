//! Failing over to a synchronous standby loses no acknowledged booking.

use crate::{fixture, helpers::*, history, light_workload, pg::PgCluster, slot_pool};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promoting_the_synchronous_standby_keeps_every_acknowledged_booking() {
    let _turn = crate::one_at_a_time().await;
    let (pg, primary, standby) = PgCluster::replicated();
    let mut first = TestServer::start_on_url(&primary, &[]);
    let mut second = first.sibling(&[]);
    let http = client();
    let f = fixture(&first, &http, "failover", 2, 20).await;
    let load = light_workload(&[&first, &second], &f).await.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The primary's machine dies mid-load.
    pg.server("kill", Some("primary"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let history = load.finish().await;

    // The operator promotes the standby and points the nodes at it.
    pg.server("promote", Some("standby"));
    first.kill9();
    second.kill9();
    let first = TestServer::start_on_url(&standby, &[]);
    let second = first.sibling(&[]);

    let summary = history::check(&history, &history::rows(&standby, &f.doctors));
    assert_eq!(history::overlapping_pairs(&standby), 0);
    assert!(summary.acknowledged_bookings >= 20, "there was load before the failover: {summary:?}");
    for r in &history {
        if let history::Outcome::Unknown(why) = &r.outcome {
            assert!(why.starts_with("503"), "nodes answer even when their primary is gone: {r:?}");
        }
    }
    // Service goes on, on the new primary, through both nodes.
    let free = slot_pool(&f.patients[0].via(&first), &f.doctors[..1], 2).await;
    for (node, slot) in [&first, &second].into_iter().zip(&free) {
        let (s, body, _) = f.patients[0]
            .via(node)
            .send(Method::POST, "/appointments", Some(json!({"slot_id": slot.slot_id})), &[])
            .await;
        assert_eq!(s, 201, "booking on the promoted standby: {body}");
    }
    eprintln!("failover: {summary:?}");
}

/// A booking whose COMMIT was sent but never answered may exist: the node says
/// so (503 "outcome unknown", never "nothing happened"), and the same
/// Idempotency-Key settles it once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_cut_off_while_it_waits_for_the_standby_is_outcome_unknown_and_the_key_settles_it() {
    let _turn = crate::one_at_a_time().await;
    let (pg, primary, _standby) = PgCluster::replicated();
    // No workers: fewer writers waiting on the standby beside the booking. The
    // deadlines are long so that only the cut, not a timeout, answers it.
    let srv = TestServer::start_on_url(
        &primary,
        &["--workers", "false", "--request-timeout-ms", "120000", "--idle-timeout-ms", "120000"],
    );
    let http = client();
    let f = fixture(&srv, &http, "unknown", 1, 1).await;
    let slot = slot_pool(&f.patients[0], &f.doctors, 1).await.remove(0);
    // A client of its own: no keep-alive connection the server may close as the booking is sent.
    let patient = &User { http: client(), ..f.patients[0].clone() };

    // No synchronous standby: the booking's COMMIT waits for one…
    pg.server("stop", Some("standby"));
    let key = uuid::Uuid::new_v4().to_string();
    let booking = {
        let (p, slot_id, key) = (patient.clone(), slot.slot_id.clone(), key.clone());
        tokio::spawn(async move {
            p.send(Method::POST, "/appointments", Some(json!({"slot_id": slot_id})), &[("Idempotency-Key", &key)]).await
        })
    };
    // …until its session is cut, as a primary's shutdown or a proxy cuts it. The
    // node's other writers (the search index, the workers) wait there too and are
    // cut alike: cut whoever waits until the booking has its answer.
    let admin = primary.replace("/medislot", "/postgres");
    let waiting = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    let mut cut = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cut += query(&admin, waiting)[0][0].parse::<usize>().unwrap();
        if booking.is_finished() {
            break;
        }
    }
    assert!(cut > 0, "a commit waited for the synchronous standby");
    let (s, body, headers) = booking.await.unwrap();
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["type"], "https://medislot.dev/problems/outcome-unknown", "{body}");
    assert!(headers.contains_key("retry-after"));

    // The standby is back; the retry with the same key finds the booking that was made.
    pg.server("start", Some("standby"));
    let mut answer = None;
    for _ in 0..50 {
        let (s, body, _) = patient
            .send(Method::POST, "/appointments", Some(json!({"slot_id": slot.slot_id})), &[("Idempotency-Key", &key)])
            .await;
        if s != 503 {
            answer = Some((s, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, body) = answer.expect("the node books again once the standby is back");
    assert_eq!(s, 201, "the retry answers with the booking the cut commit made: {body}");
    let rows = history::rows(&primary, &f.doctors);
    let active: Vec<_> = rows.iter().filter(|r| r.status != "cancelled").collect();
    assert_eq!(active.len(), 1, "one appointment, not two: {rows:?}");
    assert_eq!(active[0].id, body["id"].as_str().unwrap());
}
