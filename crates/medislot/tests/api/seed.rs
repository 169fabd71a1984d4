//! `medislot seed`: a generated data set, loaded in bulk, that users can search and book.

use crate::helpers::*;

#[tokio::test]
async fn seed_loads_a_searchable_bookable_data_set_and_refuses_bad_sizes() {
    let srv = TestServer::start().await;
    let seed = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("seed")
            .args(args)
            .arg("--data-dir")
            .arg(&srv.data_dir)
            .args(srv.database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
            .output()
            .unwrap()
    };
    let out = seed(&["--doctors", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--doctors"), "names the flag");
    let out = seed(&["--days", "0"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--days"));
    let out = seed(&["--doctors", "60", "--clinics", "10", "--patients", "5", "--days", "30"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("seeded 10 clinics, 60 doctors, 5 patients"));
    // What was loaded is what users see: searchable, with free slots, bookable.
    // The seed writes search's read model with the doctors; the running node may
    // have cached an empty answer for this search (at most the 10 s cache TTL).
    let http = client();
    let started = std::time::Instant::now();
    let v = loop {
        let r = http.get(srv.api("/doctors?per_page=100")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        if v["total"] == 60 || started.elapsed() > std::time::Duration::from_secs(20) {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(v["total"], 60, "every seeded doctor is searchable within the cache TTL: {v}");
    let p = register(&srv, &http, "p-seed@example.org", "patient").await;
    let doctor = v["items"][0]["doctor"]["id"].as_str().unwrap();
    let slot = free_slots(&p, doctor).await[0]["slot_id"].clone();
    let (s, a) = p.post("/appointments", serde_json::json!({"slot_id": slot})).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(v["total_relation"], "eq", "{v}");
    // Past a thousand matches a search counts only so far, and says so.
    let out = seed(&["--doctors", "1000", "--clinics", "10", "--patients", "5", "--days", "30"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = std::time::Instant::now();
    let v = loop {
        let r = http.get(srv.api("/doctors?per_page=5&language=en")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        if v["total_relation"] == "gte" || started.elapsed() > std::time::Duration::from_secs(20) {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!((v["total"].as_u64(), v["total_relation"].as_str()), (Some(1000), Some("gte")), "{v}");
    assert!(v["next_cursor"].is_string(), "{v}");
    let page = http.get(format!("{}/?language=en", srv.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("1000+ doctors found") && page.contains("More results"), "{page}");
}
