//! High availability on Patroni: three medislot nodes behind HAProxy on a
//! three-member Patroni cluster (synchronous_mode_strict; reads on HAProxy's
//! replica port), a booking,
//! rescheduling and cancelling load recorded operation by operation, and the
//! faults a hospital's database meets — the leader's PostgreSQL killed, the
//! leader frozen past its lease, one etcd member lost, then etcd's majority.
//! The nodes are never restarted nor re-pointed; afterwards no acknowledged
//! booking is missing, no appointment overlaps and none exists that nobody
//! asked for.

use crate::{fixture, helpers::*, history, light_workload, patroni::HaCluster};
use std::time::Duration;

/// The longest a request may take at the node (`--request-timeout-ms`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// From `fault` (since the load began) to the first booking sent after it
/// that succeeded, answer included.
fn until_first_booking(h: &[history::Record], fault: Duration) -> Option<Duration> {
    h.iter()
        .filter(|r| r.sent >= fault && matches!(r.op, history::Op::Book { .. }))
        .filter(|r| matches!(r.outcome, history::Outcome::Ok(_)))
        .map(|r| r.sent + r.took - fault)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patroni_failovers_under_load_lose_no_acknowledged_booking() {
    let _turn = crate::one_at_a_time().await;
    let ha = HaCluster::up();
    let timeout_ms = REQUEST_TIMEOUT.as_millis().to_string();
    let flags = [
        "--request-timeout-ms",
        timeout_ms.as_str(),
        "--db-busy-timeout-ms",
        "1000",
        "--read-database-url",
        ha.read_url.as_str(),
    ];
    let mut first = TestServer::start_on_url(&ha.write_url, &flags);
    let mut second = first.sibling(&flags);
    let mut third = first.sibling(&flags);
    let http = client();
    let f = fixture(&first, &http, "ha", 3, 30).await;
    let load = light_workload(&[&first, &second, &third], &f).await.start();
    let began = load.began;
    let pause = |secs: u64| tokio::time::sleep(Duration::from_secs(secs));
    pause(3).await;

    // 1. The leader's PostgreSQL dies; Patroni promotes the synchronous standby.
    let killed = ha.kill_leader();
    let killed_at = began.elapsed();
    let promoted = ha.new_leader_within(&killed, Duration::from_secs(60));
    let promotion = promoted.duration_since(began) - killed_at;
    ha.wait_healthy(90);
    pause(2).await;

    // 2. The leader hangs (Patroni and PostgreSQL stopped) for longer than its
    //    10 s lease; another member takes over; the old one comes back as a replica.
    let frozen = ha.pause_leader();
    let frozen_at = began.elapsed();
    pause(14).await;
    let thawed_at = began.elapsed();
    ha.resume(&frozen);
    ha.wait_healthy(120);
    let after_freeze = ha.leader().expect("a leader after the freeze");
    assert_ne!(after_freeze, frozen, "the frozen leader lost its lease and stays a replica: {}", ha.status());
    pause(2).await;

    // 3. One etcd member is lost: quorum holds, nothing changes.
    ha.kill_etcd(1);
    let etcd_one_at = began.elapsed();
    pause(5).await;
    assert_eq!(ha.leader().as_deref(), Some(after_freeze.as_str()), "one etcd member lost changes nothing");

    // 4. etcd's majority is lost: the leader cannot renew its lease and demotes
    //    itself; bookings are refused fast until etcd is back.
    ha.kill_etcd(2);
    let majority_lost_at = began.elapsed();
    pause(16).await;
    let majority_back_at = began.elapsed();
    ha.start_etcd(1);
    ha.start_etcd(2);
    let etcd_back_at = began.elapsed();
    ha.wait_healthy(90);
    pause(3).await;
    let history = load.finish().await;

    // The same processes throughout: never restarted, never re-pointed; searching on each.
    for n in [&mut first, &mut second, &mut third] {
        assert!(n.child.try_wait().unwrap().is_none(), "a node exited");
        let (s, found) = f.patients[0].via(n).get("/doctors?specialty=cardiology").await;
        assert_eq!(s, 200, "search after the faults: {found}");
        assert_eq!(found["items"].as_array().map(Vec::len), Some(3), "{found}");
    }
    let summary = history::check(&history, &history::rows(&ha.write_url, &f.doctors));
    assert_eq!(history::overlapping_pairs(&ha.write_url), 0);
    let slowest = history.iter().map(|r| r.took).max().unwrap();
    assert!(
        slowest < REQUEST_TIMEOUT + Duration::from_millis(1500),
        "every request is answered by the node's deadline: the slowest took {slowest:?}"
    );
    // Without etcd's majority no booking succeeds (the leader demoted itself
    // within its lease), and each refusal is fast.
    let leaderless: Vec<_> = history
        .iter()
        .filter(|r| r.sent > majority_lost_at + Duration::from_secs(11) && r.sent + r.took < majority_back_at)
        .collect();
    assert!(!leaderless.is_empty(), "requests were made while etcd had no majority");
    for r in &leaderless {
        assert!(
            matches!(&r.outcome, history::Outcome::Unknown(why) if why.starts_with("503")),
            "without etcd's majority every write is refused with 503 and Retry-After: {r:?}"
        );
    }
    let slowest_refusal = leaderless.iter().map(|r| r.took).max().unwrap();

    let report = [
        ("leader's PostgreSQL killed", killed_at),
        ("leader frozen", frozen_at),
        ("one etcd member killed", etcd_one_at),
        ("etcd majority restarted", etcd_back_at),
    ]
    .map(|(what, at)| {
        let until = until_first_booking(&history, at);
        assert!(until.is_some(), "bookings succeed again after: {what}");
        format!("{what}: first booking {:.1} s after", until.unwrap().as_secs_f64())
    });
    eprintln!(
        "patroni: killed {killed} (Patroni promoted another member {:.1} s later), froze {frozen} (thawed {:.1} s later), leader now {after_freeze}; {}; \
         etcd without a majority for {:.1} s (refusals took at most {slowest_refusal:?}); \
         slowest request {slowest:?}; {} operations, {summary:?}\n{}",
        promotion.as_secs_f64(),
        (thawed_at - frozen_at).as_secs_f64(),
        report.join("; "),
        (etcd_back_at - majority_lost_at).as_secs_f64(),
        history.len(),
        ha.status()
    );
}
