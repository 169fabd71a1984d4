//! The OpenAPI document is the API: schemathesis (a property-based tester
//! nobody here wrote) generates valid and invalid requests from
//! `/api/v1/openapi.json` and checks every answer against it, as an anonymous
//! caller, a patient and a doctor. Then the failures it found once, pinned.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Test cases per operation and phase: bounded, with a fixed seed, so a run is
/// repeatable and takes about a minute per caller.
const EXAMPLES: &str = "25";

/// One schemathesis run over the whole document, every check and phase.
fn schemathesis(srv: &TestServer, who: &str, token: Option<&str>) -> std::thread::JoinHandle<(String, bool, String)> {
    let bin = std::env::var("MEDISLOT_TEST_SCHEMATHESIS").expect(
        "MEDISLOT_TEST_SCHEMATHESIS is not set: run scripts/test, which installs schemathesis in target/test-venv-conformance",
    );
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml");
    let mut args: Vec<String> = ["--config-file", config, "--no-color", "run", &srv.api("/openapi.json")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(
        [
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            EXAMPLES,
            "--seed",
            "20261202",
        ]
        .map(String::from),
    );
    // One worker: CPython 3.11 before 3.11.8 can fail `ast.parse` when two threads
    // call it at once (Hypothesis does, to describe its strategies).
    args.extend(["--generation-database", "none", "--workers", "1", "--request-timeout", "30"].map(String::from));
    if let Some(token) = token {
        // Signed in: everything but signing out, which would end the run's session.
        args.extend([
            "-H".into(),
            format!("Authorization: Bearer {token}"),
            "--exclude-path".into(),
            "/auth/logout".into(),
        ]);
    }
    let who = who.to_string();
    std::thread::spawn(move || {
        // Its working directory gets Hypothesis' and schemathesis' own files: a throwaway one.
        let scratch = tempfile::tempdir().unwrap();
        let out =
            std::process::Command::new(bin).args(&args).current_dir(scratch.path()).output().expect("run schemathesis");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (who, out.status.success(), text)
    })
}

#[tokio::test]
async fn schemathesis_finds_nothing_as_an_anonymous_caller_a_patient_and_a_doctor() {
    let srv = TestServer::start_with(&["--demo", "--logins-per-minute", "1000", "--public-reads-per-second", "1000"]);
    let patient = demo_token(&srv, "patient@demo.medislot.test").await;
    let doctor = demo_token(&srv, "doctor1@demo.medislot.test").await;
    let runs = [
        schemathesis(&srv, "anonymous", None),
        schemathesis(&srv, "patient", Some(&patient)),
        schemathesis(&srv, "doctor", Some(&doctor)),
    ];
    let mut failed = Vec::new();
    for run in runs {
        let (who, ok, text) = run.join().unwrap();
        let summary = text.lines().rev().find(|l| l.starts_with("====")).unwrap_or("(no summary)").to_string();
        eprintln!("schemathesis as {who}: {summary}");
        if !ok {
            failed.push(format!("as {who}:\n{text}"));
        }
        let cases = text.lines().find(|l| l.contains(" generated, ")).unwrap_or("");
        assert!(!cases.is_empty(), "schemathesis as {who} generated test cases:\n{text}");
    }
    assert!(failed.is_empty(), "schemathesis found failures:\n{}", failed.join("\n\n"));
}

#[tokio::test]
async fn anonymous_callers_get_401_before_their_input_is_looked_at() {
    let srv = TestServer::start().await;
    let http = client();
    for (method, path, body) in [
        ("POST", "/doctors", Some(json!({}))),
        ("GET", "/appointments/0", None),
        ("POST", "/appointments/not-an-id/cancel", Some(json!(null))),
        ("GET", "/notifications?limit=-1", None),
        ("PUT", "/doctors/0/schedule", Some(json!({"weekly": "nope"}))),
    ] {
        let mut req = http.request(method.parse().unwrap(), srv.api(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, v, headers) = decode(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
        assert_eq!(v["type"], "https://medislot.dev/problems/unauthenticated", "{method} {path}: {v}");
        assert!(headers.contains_key("www-authenticate"), "{method} {path}");
    }
}

#[tokio::test]
async fn out_of_range_and_empty_parameters_are_refused_never_clamped_or_ignored() {
    let srv = TestServer::start().await;
    let http = client();
    let patient = register(&srv, &http, "range@example.org", "patient").await;
    for (path, field) in [
        ("/notifications?limit=2147483648", "limit"),
        ("/notifications?limit=0", "limit"),
        ("/notifications?limit=201", "limit"),
        ("/appointments?page=0", "page"),
        ("/appointments?status=", "status"),
    ] {
        let (status, v) = patient.get(path).await;
        assert_eq!(status, 422, "{path}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{path}: {v}");
    }
    let (status, v) = patient.get("/notifications?limit=200").await;
    assert_eq!(status, 200, "the largest limit is served: {v}");
    let (status, v, _) = decode(http.get(srv.api("/doctors?mode=&specialty=cardiology")).send().await.unwrap()).await;
    assert_eq!(status, 422, "an empty search parameter: {v}");
    assert_eq!(v["errors"][0]["field"], "mode");
}

#[tokio::test]
async fn a_null_cancel_body_cancels_without_a_reason() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "nullcancel").await;
    let patient = register(&srv, &http, "nullcancel@example.org", "patient").await;
    let slot = free_slots(&patient, &w.doctor_id).await[0]["slot_id"].as_str().unwrap().to_string();
    let (status, a) = patient.post("/appointments", json!({"slot_id": slot})).await;
    assert_eq!(status, 201, "{a}");
    let id = a["id"].as_str().unwrap();
    let (status, v, _) = patient
        .send(reqwest::Method::POST, &format!("/appointments/{id}/cancel"), Some(Value::Null), &[("if-match", "*")])
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "cancelled");
}

#[tokio::test]
async fn the_document_types_ids_and_documents_every_error_with_its_problem() {
    let srv = TestServer::start().await;
    let (status, doc, _) = decode(client().get(srv.api("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    assert_eq!(p["schema"]["format"], "uuid", "{name}: path parameter {}", p["name"]);
                }
                if p["name"] == "page" || p["name"] == "per_page" || p["name"] == "limit" {
                    assert_eq!(p["schema"]["minimum"], 1, "{name}: {}", p["name"]);
                }
            }
            let responses = op["responses"].as_object().unwrap();
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                secured += 1;
                assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object(), "{name} documents 401");
            }
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(code), "{name} documents {code}");
                }
            }
            for (code, r) in responses.iter().filter(|(c, _)| c.starts_with(['4', '5'])) {
                assert_eq!(
                    r["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{name} {code}"
                );
            }
        }
    }
    assert!(secured >= 26, "{secured} secured operations");
    let body = &doc["components"]["schemas"]["BookRequest"];
    assert_eq!(body["additionalProperties"], false, "bodies refuse unknown fields: {body}");
}
