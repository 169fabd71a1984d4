//! Video consultations: every online appointment has a meeting link of its
//! own under the configured provider, shown to its patient, its doctor and the
//! doctor's clinic staff only — in the API, the pages, e-mails with their
//! invitations, calendar files and FHIR; a move changes it and a cancel ends it.

use crate::helpers::*;
use crate::notifications::{book, cancel, fast_workers, later_slots, str_args, SmtpSink};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const PROVIDER: &str = "https://video.example.org/rooms";

/// The world's doctor, consulting online every day as well as in person.
async fn online_world(srv: &TestServer, tag: &str) -> World {
    let w = world(srv, &client(), tag).await;
    let path = format!("/doctors/{}", w.doctor_id);
    let (s, d, _) = w.doctor.send(Method::PATCH, &path, Some(json!({"modes": ["in_person", "online"]})), &[]).await;
    assert_eq!(s, 200, "{d}");
    let mut weekly = every_day("00:00", "12:00", 30);
    for mut range in every_day("12:00", "23:30", 30) {
        range["mode"] = "online".into();
        weekly.push(range);
    }
    let (s, v) = w
        .doctor
        .put(&format!("{path}/schedule"), json!({"weekly": weekly, "min_notice_minutes": 0, "horizon_days": 30}))
        .await;
    assert_eq!(s, 200, "{v}");
    w
}

fn online(slots: &[Value]) -> Vec<Value> {
    later_slots(slots).into_iter().filter(|s| s["mode"] == "online").collect()
}

fn is_room_link(v: &Value) -> bool {
    v.as_str()
        .and_then(|u| u.strip_prefix(&format!("{PROVIDER}/medislot-")))
        .is_some_and(|room| room.len() == 32 && room.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn page(srv: &TestServer, u: &User, path: &str) -> String {
    let r = client()
        .get(format!("{}{path}", srv.url))
        .header("cookie", format!("medislot_session={}", u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn an_online_appointment_has_its_own_link_shown_to_its_parties_only() {
    let srv = TestServer::start_with(&["--video-url", &format!("{PROVIDER}/"), "--reminders", ""]);
    let http = client();
    let w = online_world(&srv, "video").await;
    let p = register(&srv, &http, "video-patient@example.org", "patient").await;
    let other = register(&srv, &http, "video-other@example.org", "patient").await;
    let slots = free_slots(&p, &w.doctor_id).await;
    let times = online(&slots);
    let a = book(&p, &times[0]).await;
    let b = book(&other, &times[2]).await;
    let id = a["id"].as_str().unwrap();
    assert!(is_room_link(&a["video_url"]), "{a}");
    assert_ne!(a["video_url"], b["video_url"], "each appointment has a room of its own");

    // The patient, the doctor and the clinic's admin see the same link; a
    // platform admin reads the appointment without it; another patient not at all.
    let link = a["video_url"].clone();
    for (who, u) in [("patient", &p), ("doctor", &w.doctor), ("clinic admin", &w.clinic_admin)] {
        let (s, v) = u.get(&format!("/appointments/{id}")).await;
        assert_eq!((s.as_u16(), &v["video_url"]), (200, &link), "{who}: {v}");
    }
    let (_, listed) = w.doctor.get("/appointments?per_page=100").await;
    let mine = listed["items"].as_array().unwrap().iter().find(|x| x["id"] == a["id"]).unwrap();
    assert_eq!(mine["video_url"], link, "the agenda's list carries it too");
    let (s, v) = w.admin.get(&format!("/appointments/{id}")).await;
    assert_eq!((s.as_u16(), &v["video_url"]), (200, &Value::Null), "{v}");
    assert_eq!(other.get(&format!("/appointments/{id}")).await.0, 404);

    // An appointment in person has none.
    let in_person = later_slots(&slots).into_iter().find(|s| s["mode"] == "in_person").unwrap();
    let c = book(&p, &in_person).await;
    assert_eq!(c["video_url"], Value::Null, "{c}");

    // Pages, the calendar file and FHIR carry the same link for the parties.
    let url = link.as_str().unwrap();
    assert!(page(&srv, &p, &format!("/appointments/{id}")).await.contains(url));
    let ics = page(&srv, &p, &format!("/appointments/{id}/calendar.ics")).await.replace("\r\n ", "");
    assert!(ics.contains(&format!("LOCATION:{url}")) && ics.contains(&format!("URL:{url}")), "{ics}");
    let start = a["start"].as_str().unwrap();
    let day = &start[..10];
    assert!(page(&srv, &w.doctor, &format!("/doctor/agenda?date={day}")).await.contains(url));
    assert!(!page(&srv, &w.admin, &format!("/appointments/{id}")).await.contains(url), "not the platform admin's");
    let fhir = |u: &User| {
        let (http, token) = (client(), u.token.clone());
        let path = format!("{}/fhir/Appointment/{id}", srv.url);
        async move {
            let r = http.get(path).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let resource = fhir(&p).await;
    let ext = &resource["extension"][0];
    assert_eq!(
        ext["url"], "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService",
        "{resource}"
    );
    assert_eq!(ext["extension"][0], json!({"url": "address", "valueUrl": url}));
    assert!(fhir(&w.admin).await.get("extension").is_none(), "not the platform admin's");

    // A move draws a new room; the old link is shown nowhere any more.
    let (s, moved, _) = p
        .send(
            Method::POST,
            &format!("/appointments/{id}/reschedule"),
            Some(json!({"slot_id": times[4]["slot_id"]})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    assert!(is_room_link(&moved["video_url"]) && moved["video_url"] != link, "{moved}");
    assert!(!page(&srv, &p, &format!("/appointments/{id}")).await.contains(url));

    // Cancelled: no link for anyone.
    let gone = cancel(&p, id, "").await;
    assert_eq!(gone["video_url"], Value::Null, "{gone}");
    let (_, v) = w.doctor.get(&format!("/appointments/{id}")).await;
    assert_eq!(v["video_url"], Value::Null);
    let ics = page(&srv, &p, &format!("/appointments/{id}/calendar.ics")).await;
    assert!(!ics.contains(PROVIDER), "{ics}");
}

#[tokio::test]
async fn emails_and_their_invitations_give_the_link_and_the_move_gives_the_new_one() {
    let smtp = SmtpSink::start();
    let mut args = fast_workers(&smtp.url());
    args.extend(["--video-url".into(), PROVIDER.into()]);
    let srv = TestServer::start_with(&str_args(&args));
    let w = online_world(&srv, "videomail").await;
    let p = register(&srv, &client(), "videomail-patient@example.org", "patient").await;
    let times = online(&free_slots(&p, &w.doctor_id).await);
    let a = book(&p, &times[0]).await;
    smtp.wait_for(2, Duration::from_secs(20)).await;
    let (s, moved) = p
        .change(
            &format!("/appointments/{}/reschedule", a["id"].as_str().unwrap()),
            json!({"slot_id": times[3]["slot_id"]}),
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    smtp.wait_for(4, Duration::from_secs(20)).await;
    cancel(&p, a["id"].as_str().unwrap(), "").await;
    smtp.wait_for(6, Duration::from_secs(20)).await;

    let mails = smtp.messages();
    let (first, second) = (a["video_url"].as_str().unwrap(), moved["video_url"].as_str().unwrap());
    for (to, m) in mails.iter().map(|m| (m["to"].as_str().unwrap(), m)) {
        assert!(to == "videomail-patient@example.org" || to == "dr-videomail@example.org", "{to}");
        let (text, invite) = (m["text"].as_str().unwrap(), &m["invite"]);
        let subject = m["subject"].as_str().unwrap();
        let expected = if subject.contains("confirmed") || subject.starts_with("New appointment") {
            Some(first)
        } else if subject.contains("moved") {
            Some(second)
        } else {
            assert!(subject.contains("cancelled"), "{subject}");
            None
        };
        match expected {
            Some(url) => {
                assert!(text.contains(&format!("Where: Online, by video: {url}")), "{subject}: {text}");
                assert_eq!((invite["location"].as_str(), invite["url"].as_str()), (Some(url), Some(url)), "{subject}");
            }
            None => {
                assert!(!text.contains(PROVIDER), "{subject}: {text}");
                assert_eq!(invite["url"], Value::Null, "{subject}");
            }
        }
    }
}

#[tokio::test]
async fn a_video_provider_that_is_not_an_http_address_stops_the_server_with_the_reason() {
    for bad in ["meet.example.org", "ftp://meet.example.org", "https://meet.example.org/?room=1"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_medislot"))
            .args(["serve", "--listen", "127.0.0.1:0", "--video-url", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--video-url") && err.contains("video_url"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_doctors_own_room_is_theirs_to_set_and_their_online_appointments_meet_there() {
    let srv = TestServer::start_with(&["--video-url", PROVIDER, "--reminders", ""]);
    let http = client();
    let w = online_world(&srv, "ownroom").await;
    let p = register(&srv, &http, "ownroom-patient@example.org", "patient").await;
    let times = online(&free_slots(&p, &w.doctor_id).await);
    let a = book(&p, &times[0]).await;
    let id = a["id"].as_str().unwrap();
    let per_appointment = a["video_url"].clone();
    let room = format!("/doctors/{}/video-room", w.doctor_id);

    // Only the doctor's side reads or sets it.
    let (s, v) = w.doctor.get(&room).await;
    assert_eq!((s.as_u16(), &v["url"]), (200, &Value::Null), "{v}");
    for (who, u) in [("patient", &p), ("platform admin", &w.admin)] {
        assert_eq!(u.get(&room).await.0, 403, "{who}");
        assert_eq!(u.put(&room, json!({"url": "https://evil.example/x"})).await.0, 403, "{who}");
    }

    // Bad addresses are refused naming the field, and change nothing.
    for bad in [
        "meet.example.org/x",
        "ftp://meet.example.org/x",
        "https://u@meet.example.org/",
        "https://m.example.org:70000/",
    ] {
        let (s, e) = w.doctor.put(&room, json!({"url": bad})).await;
        assert_eq!(s, 422, "{bad}: {e}");
        assert_eq!(e["errors"][0]["field"], "url", "{e}");
    }
    assert_eq!(w.doctor.get(&room).await.1["url"], Value::Null);

    // Set: every online appointment of the doctor, booked or still to come, meets there.
    let own = "https://meet.example.org/dr-ownroom?pwd=42";
    let (s, v, h) = w.clinic_admin.send(Method::PUT, &room, Some(json!({"url": own})), &[]).await;
    assert_eq!((s.as_u16(), v["url"].as_str()), (200, Some(own)), "{v}");
    let etag = h["etag"].to_str().unwrap().to_string();
    assert_eq!(p.get(&format!("/appointments/{id}")).await.1["video_url"], own);
    let b = book(&p, &times[3]).await;
    assert_eq!(b["video_url"], own, "{b}");
    let public: Value =
        http.get(srv.api(&format!("/doctors/{}", w.doctor_id))).send().await.unwrap().json().await.unwrap();
    assert!(!public.to_string().contains("dr-ownroom"), "the public profile does not show it: {public}");

    // A stale version is refused; clearing brings back a room per appointment.
    let (s, _, _) = w.doctor.send(Method::PUT, &room, Some(json!({"url": null})), &[("If-Match", "\"1\"")]).await;
    assert_eq!(s, 412);
    let (s, v, _) = w.doctor.send(Method::PUT, &room, Some(json!({"url": null})), &[("If-Match", &etag)]).await;
    assert_eq!((s.as_u16(), &v["url"]), (200, &Value::Null), "{v}");
    assert_eq!(p.get(&format!("/appointments/{id}")).await.1["video_url"], per_appointment);

    // The page: a bad address is a 422 page naming it; a good one is saved.
    let staff_page = format!("/doctor/video-room?doctor={}", w.doctor_id);
    let version = w.doctor.get(&room).await.1["version"].to_string();
    let r = post_form(&srv, &w.clinic_admin, &staff_page, &[("url", "not a url"), ("version", &version)]).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("must be an http(s) address"), "{html}");
    let r = post_form(&srv, &w.doctor, "/doctor/video-room", &[("url", own), ("version", &version)]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(w.doctor.get(&room).await.1["url"], own);
    assert!(page(&srv, &w.doctor, "/doctor/video-room").await.contains("dr-ownroom"));
}
