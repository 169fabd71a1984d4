//! Black-box tests of many medislot nodes on PostgreSQL: one database shared
//! by several nodes, the database going away and coming back, failing over to
//! a synchronous standby by hand and under Patroni. These always run on PostgreSQL.

#[path = "../api/helpers.rs"]
mod helpers;

mod history;
mod patroni;
mod pg;

mod failover;
mod ha;
mod multi_node;
mod outage;
mod replica;

use helpers::*;

/// The tests here each load the machine on purpose (hundreds of clients, several
/// nodes, database servers): they take turns, so that one's load is not another's timeout.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// A clinic, `doctors` verified doctors and `patients` patient accounts, made through `srv`.
pub struct Fixture {
    pub world: World,
    pub doctors: Vec<String>,
    pub patients: Vec<User>,
}

pub async fn fixture(srv: &TestServer, http: &reqwest::Client, tag: &str, doctors: usize, patients: usize) -> Fixture {
    let world = world(srv, http, tag).await;
    let mut ids = vec![world.doctor_id.clone()];
    for i in 1..doctors {
        let dr = register(srv, http, &format!("dr{i}-{tag}@example.org"), "doctor").await;
        ids.push(add_doctor(&dr, &world.admin, &world.clinic_id, "cardiology").await);
    }
    let patients = futures::future::join_all(
        (0..patients).map(|i| async move { register(srv, http, &format!("p{i}-{tag}@example.org"), "patient").await }),
    )
    .await;
    Fixture { world, doctors: ids, patients }
}

/// A light, steady load: 40 clients over these nodes, on the next 60 slots of each of `f`'s doctors.
pub async fn light_workload(nodes: &[&TestServer], f: &Fixture) -> std::sync::Arc<history::Workload> {
    std::sync::Arc::new(history::Workload {
        nodes: nodes.iter().map(|n| n.url.clone()).collect(),
        patients: f.patients.clone(),
        slots: slot_pool(&f.patients[0], &f.doctors, 60).await,
        clients: 40,
        reschedule_share: 0.5,
    })
}

/// Free slots of these doctors starting at least an hour from now, up to `per_doctor` each.
pub async fn slot_pool(u: &User, doctors: &[String], per_doctor: usize) -> Vec<history::Slot> {
    let soon = jiff::Timestamp::now().as_second() + 3600;
    let mut pool = Vec::new();
    for d in doctors {
        let slots = free_slots(u, d).await;
        pool.extend(slots.iter().map(|s| history::Slot::from_json(d, s)).filter(|s| s.start >= soon).take(per_doctor));
    }
    pool
}
