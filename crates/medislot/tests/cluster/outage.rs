//! The database goes away under load and comes back: nodes answer 503 with
//! Retry-After quickly, report not-ready, and recover on their own.

use crate::{fixture, helpers::*, history, light_workload, pg::PgCluster};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// What each node's `/readyz` answers, with the Retry-After header when not ready.
async fn readiness(http: &reqwest::Client, nodes: &[&TestServer]) -> Vec<(StatusCode, bool)> {
    let mut out = Vec::new();
    for n in nodes {
        let r = http.get(format!("{}/readyz", n.url)).send().await.expect("/readyz answers even without a database");
        out.push((r.status(), r.headers().contains_key("retry-after")));
    }
    out
}

async fn until_ready_is(http: &reqwest::Client, nodes: &[&TestServer], want: StatusCode, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let now = readiness(http, nodes).await;
        if now.iter().all(|(s, _)| *s == want) {
            if want == StatusCode::SERVICE_UNAVAILABLE {
                assert!(now.iter().all(|(_, retry_after)| *retry_after), "503 /readyz carries Retry-After");
            }
            return t0.elapsed();
        }
        assert!(t0.elapsed() < within, "nodes did not become {want} within {within:?}: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_gives_fast_503s_then_recovery_without_restart() {
    let _turn = crate::one_at_a_time().await;
    let (pg, db) = PgCluster::single();
    let flags = ["--db-busy-timeout-ms", "2000"];
    let mut first = TestServer::start_on_url(&db, &flags);
    let mut second = first.sibling(&flags);
    let http = client();
    let f = fixture(&first, &http, "outage", 2, 20).await;
    let load = light_workload(&[&first, &second], &f).await.start();
    let began = load.began;
    tokio::time::sleep(Duration::from_secs(3)).await;

    pg.server("stop", None);
    // From here until it is started again, the database is down.
    let down_at = began.elapsed();
    let not_ready =
        until_ready_is(&http, &[&first, &second], StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let up_at = began.elapsed();
    pg.server("start", None);
    let recovered = until_ready_is(&http, &[&first, &second], StatusCode::OK, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let history = load.finish().await;

    // The same processes, never restarted.
    assert!(first.child.try_wait().unwrap().is_none() && second.child.try_wait().unwrap().is_none());
    let summary = history::check(&history, &history::rows(&db, &f.doctors));
    assert_eq!(history::overlapping_pairs(&db), 0);
    let during: Vec<_> = history.iter().filter(|r| r.sent > down_at && r.sent + r.took < up_at).collect();
    assert!(!during.is_empty(), "requests were made during the outage");
    for r in &during {
        assert!(
            matches!(&r.outcome, history::Outcome::Unknown(why) if why.starts_with("503")),
            "during the outage every answer is 503 with Retry-After: {r:?}"
        );
    }
    let slowest = history.iter().map(|r| r.took).max().unwrap();
    assert!(slowest < Duration::from_secs(10), "no request hangs: the slowest took {slowest:?}");
    let after: Vec<_> = history.iter().filter(|r| r.sent > up_at + recovered).collect();
    assert!(
        after.iter().any(|r| matches!(r.outcome, history::Outcome::Ok(_))),
        "bookings succeed again after recovery"
    );
    eprintln!(
        "outage: not ready after {not_ready:?}, {} requests answered during it (slowest request {slowest:?}), \
         ready again {recovered:?} after the database was; {summary:?}",
        during.len()
    );
}

#[tokio::test]
async fn a_request_stuck_on_the_database_is_answered_at_its_deadline() {
    let _turn = crate::one_at_a_time().await;
    let (_pg, db) = PgCluster::single();
    let srv = TestServer::start_on_url(&db, &["--request-timeout-ms", "700", "--db-busy-timeout-ms", "60000"]);
    let http = client();
    let w = world(&srv, &http, "stuck").await;
    let p = register(&srv, &http, "p-stuck@example.org", "patient").await;
    // Another session locks the appointments table and keeps its transaction open.
    let mut locker = std::process::Command::new("psql")
        .args([db.as_str(), "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let stdin = locker.stdin.as_mut().unwrap();
    stdin.write_all(b"BEGIN; LOCK TABLE appointments IN ACCESS EXCLUSIVE MODE;\n").unwrap();
    stdin.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t0 = Instant::now();
    let (s, body, h) = p.send(reqwest::Method::GET, &format!("/doctors/{}/slots", w.doctor_id), None, &[]).await;
    let took = t0.elapsed();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["type"], "https://medislot.dev/problems/timeout");
    assert!(h.contains_key("retry-after"));
    assert!(took < Duration::from_secs(10), "answered at the deadline, not when the lock went: {took:?}");

    // The lock goes away: the same node serves again.
    let _ = locker.kill();
    let _ = locker.wait();
    let (s, body) = p.get(&format!("/doctors/{}/slots", w.doctor_id)).await;
    assert_eq!(s, 200, "{body}");
}
