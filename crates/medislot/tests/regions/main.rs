//! Several regions, each its own process and database, linked through
//! fault-injecting proxies: forwarding under each clinic's policy (P7),
//! replication of directories and busy times, and a partition test with a
//! history checker (P1, P2, P3, P7, convergence).

#[path = "../api/helpers.rs"]
mod helpers;

mod harness;
mod partition;
mod policies;

/// These tests each run three regions: they take turns.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
