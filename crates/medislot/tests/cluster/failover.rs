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
