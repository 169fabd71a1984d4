//! P4: bad input gets problem+json naming the field, and writes nothing.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn field(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

fn assert_problem(status: StatusCode, body: &Value, want_status: u16, want_field: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    assert!(
        body["type"].as_str().is_some() && body["title"].as_str().is_some() && body["detail"].as_str().is_some(),
        "{body}"
    );
    assert!(field(body).iter().any(|f| f == want_field), "field {want_field} not named in {body}");
}

/// A slot id at 10:00 Paris time `days` from today (on the test doctor's grid).
fn slot_at_days(doctor_id: &str, days: i64) -> String {
    let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let date = jiff::Zoned::now().with_time_zone(tz.clone()).date() + jiff::Span::new().days(days);
    let start = date.at(10, 0, 0, 0).to_zoned(tz).unwrap().timestamp();
    medislot_domain::SlotId::new(doctor_id.parse().unwrap(), start).encode()
}

#[tokio::test]
async fn p4_every_kind_of_bad_input_names_its_field() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "p4").await;
    let p = register(&srv, &http, "p-p4@example.org", "patient").await;
    let raw = |method: Method, path: &str, body: &'static str| {
        let req = http
            .request(method, srv.api(path))
            .bearer_auth(&p.token)
            .header("content-type", "application/json")
            .body(body);
        async move { decode(req.send().await.unwrap()).await }
    };

    // Malformed JSON.
    let (s, b, _) = raw(Method::POST, "/appointments", "{\"slot_id\": ").await;
    assert_problem(s, &b, 400, "body");
    // Wrong types, nested: the path to the field is named.
    let (s, b) = w.doctor.put(&format!("/doctors/{}/schedule", w.doctor_id), json!({"weekly": [{"weekday": "monday", "start": "09:00", "end": "10:00", "mode": "online", "slot_minutes": "thirty"}]})).await;
    assert_problem(s, &b, 422, "weekly[0].slot_minutes");
    let (s, b) = p.post("/appointments", json!({"slot_id": 42})).await;
    assert_problem(s, &b, 422, "slot_id");
    // Unknown time zone.
    let (s, b) = w
        .clinic_admin
        .post(
            "/clinics",
            json!({"name": "X", "address": "Y", "latitude": 1.0, "longitude": 2.0, "time_zone": "Europe/Atlantis"}),
        )
        .await;
    assert_problem(s, &b, 422, "time_zone");
    // Out-of-range coordinates, several fields at once.
    let (s, b) = w
        .clinic_admin
        .post(
            "/clinics",
            json!({"name": "", "address": "Y", "latitude": 91.0, "longitude": 2.0, "time_zone": "Europe/Paris"}),
        )
        .await;
    assert_problem(s, &b, 422, "latitude");
    assert!(field(&b).contains(&"name".to_string()));
    // Coordinates too small for the database's geometry are zero, not a 500.
    let (s, b) = w
        .clinic_admin
        .post(
            "/clinics",
            json!({"name": "Null Island", "address": "Y", "latitude": 5e-324, "longitude": -1e-310, "time_zone": "Europe/London"}),
        )
        .await;
    assert_eq!((s.as_u16(), b["latitude"].as_f64()), (201, Some(0.0)), "{b}");
    // End before start: a schedule range and a time-off period.
    let (s, b) = w.doctor.put(&format!("/doctors/{}/schedule", w.doctor_id), json!({"weekly": [{"weekday": "monday", "start": "12:00", "end": "09:00", "mode": "online", "slot_minutes": 30}]})).await;
    assert_problem(s, &b, 422, "weekly[0].end");
    let (s, b) = w
        .doctor
        .post(
            &format!("/doctors/{}/time-off", w.doctor_id),
            json!({"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_problem(s, &b, 422, "end");
    // Nothing was half-written: the schedule is still the one that was set.
    let (_, d) = p.get(&format!("/doctors/{}", w.doctor_id)).await;
    assert_eq!(d["schedule"]["weekly"].as_array().unwrap().len(), 7);
    // Slot in the past, beyond the horizon (30 days), not on the schedule.
    let (s, b) = p.post("/appointments", json!({"slot_id": slot_at_days(&w.doctor_id, -1)})).await;
    assert_problem(s, &b, 422, "slot_id");
    assert!(b["detail"].as_str().unwrap().contains("past"), "{b}");
    let (s, b) = p.post("/appointments", json!({"slot_id": slot_at_days(&w.doctor_id, 40)})).await;
    assert_problem(s, &b, 422, "slot_id");
    assert!(b["detail"].as_str().unwrap().contains("horizon"), "{b}");
    let (s, b) = p.post("/appointments", json!({"slot_id": "slot_garbage"})).await;
    assert_problem(s, &b, 422, "slot_id");
    // Inside the minimum notice: the doctor now asks for 7 days' notice.
    let (s, _) = w
        .doctor
        .put(
            &format!("/doctors/{}/schedule", w.doctor_id),
            json!({"weekly": every_day("00:00", "23:30", 30), "min_notice_minutes": 10080, "horizon_days": 30}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = p.post("/appointments", json!({"slot_id": slot_at_days(&w.doctor_id, 2)})).await;
    assert_problem(s, &b, 422, "slot_id");
    assert!(b["detail"].as_str().unwrap().contains("notice"), "{b}");
    // A 10 MB body.
    // Announced as 10 MB: the server answers 413 without reading it all, so the
    // test writes the headers and a first chunk by hand and reads the answer
    // (a client that insists on writing all 10 MB would see the connection close).
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = srv.url.trim_start_matches("http://").to_string();
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/v1/appointments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            p.token,
            10 * 1024 * 1024
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let _ = tcp.write_all(&[b' '; 512 * 1024]).await;
        let mut buf = vec![0u8; 16 * 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf)).await.unwrap().unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_lowercase().contains("content-type: application/problem+json"), "{answer}");
    // Absurd pagination.
    let (s, b) = p.get("/doctors?per_page=100000").await;
    assert_problem(s, &b, 422, "per_page");
    let (s, b) = p.get("/doctors?page=0").await;
    assert_problem(s, &b, 422, "page");
    let (s, b) = p.get("/appointments?per_page=-1").await;
    assert_problem(s, &b, 422, "per_page");
    let (s, b) = p.get("/doctors?near=abc&radius_km=5").await;
    assert_problem(s, &b, 422, "near");
    // The smallest radius there is: nothing near, and no error (PostgreSQL's
    // earth_box underflowed on it).
    for q in ["near=0,0&radius_km=5e-324&language=en&mode=online", "near=5e-324,-1e-310&radius_km=1"] {
        let (s, b) = p.get(&format!("/doctors?{q}")).await;
        assert_eq!((s.as_u16(), b["total"].as_u64()), (200, Some(0)), "{q}: {b}");
    }
    // A cursor search never handed out.
    for forged in ["nonsense", "eyJrIjoxfQ", "%00%ff", &"A".repeat(5000)] {
        let (s, b) = p.get(&format!("/doctors?cursor={forged}")).await;
        assert_problem(s, &b, 422, "cursor");
    }
    let (s, b) = p.get("/doctors?available_from=2030-01-10&available_to=2030-01-01").await;
    assert_problem(s, &b, 422, "available_to");
    // Unknown ids and non-UUID ids.
    let unknown = "01900000-0000-7000-8000-000000000000";
    let (s, b) = p.get(&format!("/appointments/{unknown}")).await;
    assert_eq!((s, b["status"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));
    let (s, b) = p.get(&format!("/doctors/{unknown}")).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = p.get(&format!("/clinics/{unknown}")).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = p.get("/appointments/not-a-uuid").await;
    assert_problem(s, &b, 400, "id");
    let (s, b) = p.get("/doctors/12345/slots").await;
    assert_problem(s, &b, 400, "id");
    // Unknown fields are refused, not silently dropped.
    let (s, b) = p
        .post("/auth/register", json!({"email": "x@example.org", "password": PASSWORD, "name": "X", "role": "admin"}))
        .await;
    assert_problem(s, &b, 422, "role");
    // A route that does not exist, or a method a route does not take, is problem+json too.
    let (s, _) = p.get("/nope").await;
    assert_eq!(s, 404);
    let (s, b, _) = p.send(Method::DELETE, "/holds", None, &[]).await;
    assert_eq!(s, 405, "{b}");
    // Nothing was booked by any of this.
    let (_, mine) = p.get("/appointments").await;
    assert_eq!(mine["total"], 0);
}

#[tokio::test]
async fn a_clinic_gives_its_postal_address_and_phone_and_fhir_publishes_them() {
    let srv = TestServer::start().await;
    let http = client();
    let w = world(&srv, &http, "postal").await;
    let clinic = json!({
        "name": "Hudson Health", "address": "250 Hudson St", "city": "New York", "district": "NY",
        "postal_code": "10013", "country": "us", "phone": "+1 (212) 555-0134",
        "latitude": 40.726, "longitude": -74.0079, "time_zone": "America/New_York",
    });
    let (s, c) = w.clinic_admin.post("/clinics", clinic.clone()).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(
        (c["city"].as_str(), c["country"].as_str(), c["phone"].as_str()),
        (Some("New York"), Some("US"), Some("+12125550134"))
    );
    let (s, again) = w.clinic_admin.get(&format!("/clinics/{}", c["id"].as_str().unwrap())).await;
    assert_eq!(s, 200);
    assert_eq!((again["district"].as_str(), again["postal_code"].as_str()), (Some("NY"), Some("10013")), "{again}");

    let (_, location, _) =
        decode(http.get(format!("{}/fhir/Location/{}", srv.url, c["id"].as_str().unwrap())).send().await.unwrap())
            .await;
    let a = &location["address"];
    assert_eq!(a["line"], json!(["250 Hudson St"]), "{location}");
    assert_eq!(
        (a["city"].as_str(), a["state"].as_str(), a["postalCode"].as_str(), a["country"].as_str()),
        (Some("New York"), Some("NY"), Some("10013"), Some("US"))
    );
    assert_eq!(a["text"], "250 Hudson St, 10013 New York");
    assert_eq!(location["telecom"], json!([{"system": "phone", "value": "+12125550134", "use": "work"}]));

    // Each wrong part is named; nothing is created.
    let mut bad = clinic.clone();
    bad["country"] = json!("USA");
    bad["phone"] = json!("212 555 0134");
    bad["postal_code"] = json!("<10013>");
    let (s, b) = w.clinic_admin.post("/clinics", bad).await;
    assert_problem(s, &b, 422, "country");
    assert_eq!(field(&b), ["postal_code", "country", "phone"], "{b}");
    // Without the parts (as before they existed), a clinic is still created, and FHIR leaves them out.
    let (s, plain) = w.clinic_admin.get(&format!("/clinics/{}", w.clinic_id)).await;
    assert_eq!(s, 200);
    assert!(plain.get("phone").is_none() && plain.get("city").is_none(), "{plain}");
    let (_, loc, _) =
        decode(http.get(format!("{}/fhir/Location/{}", srv.url, w.clinic_id)).send().await.unwrap()).await;
    assert!(loc.get("telecom").is_none() && loc["address"].get("city").is_none(), "{loc}");
}
