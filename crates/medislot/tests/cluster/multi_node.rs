//! Issue 3's multi-node proof: three nodes on one PostgreSQL, 300 concurrent clients.

use crate::{fixture, helpers::*, history, slot_pool};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::{collections::HashMap, sync::Arc, time::Duration};

const CLIENTS: usize = 300;

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(CLIENTS).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_three_hundred_clients_never_double_book() {
    let _turn = crate::one_at_a_time().await;
    let first = TestServer::start_on_postgres(&[]);
    let nodes = [first.sibling(&[]), first.sibling(&[])];
    let nodes: Vec<&TestServer> = std::iter::once(&first).chain(nodes.iter()).collect();
    let db = first.database_url.clone().unwrap();
    let http = http_client();
    let f = fixture(&first, &http, "multi", 3, 60).await;

    // (a) Every client races for one of the same 10 slots, through one of the three nodes.
    let race = slot_pool(&f.patients[0], &f.doctors[..1], 10).await;
    assert_eq!(race.len(), 10);
    let answers = join_all((0..CLIENTS).map(|c| {
        let me = f.patients[c % f.patients.len()].via(nodes[c % nodes.len()]);
        let slot = race[c % race.len()].clone();
        async move {
            let (s, body, _) =
                me.send(Method::POST, "/appointments", Some(json!({"slot_id": slot.slot_id})), &[]).await;
            (slot.start, s, body)
        }
    }))
    .await;
    let mut winners: HashMap<i64, Vec<String>> = HashMap::new();
    for (start, s, body) in &answers {
        match *s {
            StatusCode::CREATED => winners.entry(*start).or_default().push(body["id"].as_str().unwrap().into()),
            StatusCode::CONFLICT => assert_eq!(body["type"], "https://medislot.dev/problems/slot-taken"),
            other => panic!("a racer got {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 10, "every slot has a winner");
    assert!(winners.values().all(|w| w.len() == 1), "one winner per slot: {winners:?}");
    let rows = history::rows(&db, &f.doctors[..1]);
    assert_eq!(rows.len(), 10, "exactly the 10 winners' appointments exist");
    for r in &rows {
        assert_eq!(winners[&r.start], vec![r.id.clone()], "the stored appointment is the acknowledged one");
    }
    eprintln!("race: {CLIENTS} clients on 3 nodes for 10 slots: 10 × 201, {} × 409", CLIENTS - 10);

    // (b) 20 s of booking, rescheduling and cancelling random slots of two other doctors.
    let workload = Arc::new(history::Workload {
        nodes: nodes.iter().map(|n| n.url.clone()).collect(),
        patients: f.patients.iter().map(|p| User { http: http.clone(), ..p.clone() }).collect(),
        slots: slot_pool(&f.patients[0], &f.doctors[1..], 60).await,
        clients: CLIENTS,
        reschedule_share: 0.6,
    });
    let load = workload.start();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let history = load.finish().await;

    assert_eq!(
        history::overlapping_pairs(&db),
        0,
        "no two active appointments of one doctor, or of one patient, overlap"
    );
    let summary = history::check(&history, &history::rows(&db, &f.doctors[1..]));
    eprintln!("workload: {summary:?}");
    assert!(summary.by_kind.get("book ok").is_some_and(|n| *n >= 50), "the workload did book: {summary:?}");
    assert!(summary.by_kind.contains_key("reschedule ok"), "the workload did reschedule: {summary:?}");
    assert!(summary.by_kind.contains_key("cancel ok"), "the workload did cancel: {summary:?}");
}
