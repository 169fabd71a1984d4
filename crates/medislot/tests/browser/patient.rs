//! A patient finds a doctor, books, sees the booking, reschedules and
//! cancels; two browsers race for one slot and the loser sees alternatives.

use crate::{follow, helpers::*, press, screenshot, sign_in, text, Driver};
use fantoccini::Locator;

const DEMO_PASSWORD: &str = "demo-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_finds_a_doctor_books_reschedules_and_cancels() {
    let srv = TestServer::start_with(&["--demo"]);
    let driver = Driver::start().await;
    let b = driver.browser().await;

    // Search: cardiologists near Paris.
    b.goto(&format!("{}/", srv.url)).await.unwrap();
    crate::fill(&b, "#specialty", "cardiology").await;
    b.find(Locator::Css("#city")).await.unwrap().select_by_value("Paris").await.unwrap();
    press(&b, "Search").await;
    let results = text(&b).await;
    assert!(results.contains("doctors found") && results.contains("Next available"), "{results}");
    screenshot(&b, "search").await;

    // The first hit's week, in the clinic's zone, named.
    follow(&b, Locator::Css(".card a")).await;
    let week = text(&b).await;
    assert!(week.contains("Europe/Paris"), "{week}");
    screenshot(&b, "doctor-week").await;

    // Pick an in-person slot (whatever the time of day: online ones may come
    // first), sign in on the way, hold it (countdown), confirm.
    follow(&b, Locator::Css(".days a.slotlink[aria-label$='in person']")).await;
    assert!(text(&b).await.contains("Sign in to book"));
    sign_in(&b, "patient@demo.medislot.test", DEMO_PASSWORD).await;
    press(&b, "Hold this slot").await;
    let hold = text(&b).await;
    assert!(hold.contains("Confirm your appointment") && hold.contains("held for you"), "{hold}");
    let countdown = b.find(Locator::Id("countdown")).await.unwrap().text().await.unwrap();
    assert!(countdown.contains(':'), "the countdown runs: {countdown}");
    screenshot(&b, "hold").await;
    press(&b, "Confirm booking").await;
    let done = text(&b).await;
    assert!(done.contains("Your appointment is booked") && done.contains("Add to calendar (.ics)"), "{done}");
    screenshot(&b, "confirmation").await;
    let booked_url = b.current_url().await.unwrap().to_string();
    let booked_time = b.find(Locator::Css(".card time")).await.unwrap().text().await.unwrap();

    // It is in "My appointments"; reschedule it to another time.
    follow(&b, Locator::LinkText("All my appointments")).await;
    let id = booked_url.rsplit('/').next().unwrap().to_string();
    let card = format!("[data-appointment='{id}']");
    assert!(b.find(Locator::Css(&card)).await.unwrap().text().await.unwrap().contains("booked"));
    screenshot(&b, "my-appointments").await;
    follow(&b, Locator::Css(&format!("{card} a"))).await;
    let picker = text(&b).await;
    assert!(picker.contains("Pick a new time") && picker.contains("Showing in person times"), "{picker}");
    // The same week picker as booking, of the appointment's own mode only.
    let times = b.find_all(Locator::Css(".days a.slotlink")).await.unwrap();
    assert!(times.len() > 3, "a week of times: {picker}");
    for t in &times {
        let label = t.attr("aria-label").await.unwrap().unwrap_or_default();
        assert!(label.starts_with("Move to") && label.ends_with("in person"), "{label}");
    }
    screenshot(&b, "reschedule").await;
    follow(&b, Locator::Css(".days li:nth-child(3) a.slotlink")).await;
    let ask = text(&b).await;
    assert!(ask.contains("Move your appointment?") && ask.contains("From:") && ask.contains("To:"), "{ask}");
    follow(&b, Locator::LinkText("No, keep the current time")).await;
    assert_eq!(b.find(Locator::Css(&format!("{card} time"))).await.unwrap().text().await.unwrap(), booked_time);
    follow(&b, Locator::Css(&format!("{card} a"))).await;
    follow(&b, Locator::Css(".days li:nth-child(3) a.slotlink")).await;
    press(&b, "Yes, move it").await;
    let moved = text(&b).await;
    assert!(moved.contains("Your appointment is moved"), "{moved}");
    // A mangled link leads back to the picker, saying so.
    b.goto(&format!("{}/appointments/{id}/reschedule?slot_id=nonsense", srv.url)).await.unwrap();
    let mangled = text(&b).await;
    assert!(mangled.contains("not one of the times") && mangled.contains("Pick a new time"), "{mangled}");
    b.goto(&booked_url).await.unwrap();
    let new_time = b.find(Locator::Css(".card time")).await.unwrap().text().await.unwrap();
    assert_ne!(new_time, booked_time, "moved to another time");

    // Cancel it: one click only asks, with a way back.
    b.goto(&format!("{}/appointments", srv.url)).await.unwrap();
    follow(&b, Locator::Css(&format!("{card} a.danger"))).await;
    let ask = text(&b).await;
    assert!(ask.contains("Cancel this appointment?") && ask.contains("No, keep it"), "{ask}");
    follow(&b, Locator::LinkText("No, keep it")).await;
    assert!(b.find(Locator::Css(&card)).await.unwrap().text().await.unwrap().contains("booked"), "kept");
    follow(&b, Locator::Css(&format!("{card} a.danger"))).await;
    crate::fill(&b, "#reason", "feeling better").await;
    screenshot(&b, "cancel").await;
    press(&b, "Yes, cancel it").await;
    let cancelled = text(&b).await;
    assert!(cancelled.contains("Your appointment is cancelled") && cancelled.contains("feeling better"), "{cancelled}");
    assert!(!cancelled.contains("Add to calendar"), "a cancelled appointment is not offered to calendars: {cancelled}");
    // Asking again (a bookmark, the back button) shows it as it is; an unknown one is a page that says so.
    b.goto(&format!("{}/appointments/{id}/cancel", srv.url)).await.unwrap();
    assert!(text(&b).await.contains("Your appointment is cancelled"));
    b.goto(&format!("{}/appointments/{}/cancel", srv.url, uuid::Uuid::new_v4())).await.unwrap();
    let unknown = text(&b).await;
    assert!(unknown.contains("Not found") && unknown.contains("No such appointment"), "{unknown}");

    // My appointments: the next one on top, on its own; the cancelled one apart, with the past.
    b.goto(&format!("{}/appointments", srv.url)).await.unwrap();
    let headings: Vec<String> = {
        let mut out = vec![];
        for h in b.find_all(Locator::Css("main h2")).await.unwrap() {
            out.push(h.text().await.unwrap());
        }
        out
    };
    assert_eq!(headings.first().map(String::as_str), Some("Your next appointment"), "{headings:?}");
    assert!(headings.iter().any(|h| h == "Past and cancelled"), "{headings:?}");
    assert_eq!(b.find_all(Locator::Css(".next .card")).await.unwrap().len(), 1, "one next appointment");
    let next = b.find(Locator::Css(".next .card")).await.unwrap().text().await.unwrap();
    assert!(next.contains("booked") && next.contains("At "), "the next one says where: {next}");
    assert!(b.find(Locator::Css(&format!(".past {card}"))).await.is_ok(), "the cancelled one is with the past");
    assert!(b.find_all(Locator::Css(&format!(".next {card}"))).await.unwrap().is_empty());
    screenshot(&b, "my-appointments-sections").await;
    // The demo patient's past is long: it comes a page at a time, newest first.
    let pages = b.find(Locator::Css("nav.pages")).await.unwrap().text().await.unwrap();
    assert!(pages.starts_with("Page 1 of") && pages.contains("Older"), "{pages}");
    let newest = b.find(Locator::Css(".past .card time")).await.unwrap().attr("datetime").await.unwrap().unwrap();
    follow(&b, Locator::LinkText("Older")).await;
    let older = b.find(Locator::Css(".past .card time")).await.unwrap().attr("datetime").await.unwrap().unwrap();
    assert!(older.parse::<jiff::Timestamp>().unwrap() <= newest.parse::<jiff::Timestamp>().unwrap());
    let second = b.find(Locator::Css("nav.pages")).await.unwrap().text().await.unwrap();
    assert!(second.contains("Newer") && second.contains("Page 2 of"), "{second}");
    assert!(b.find_all(Locator::Css(".next")).await.unwrap().len() == 1, "the next one stays on top");

    // The same story in the notifications, newest first, in the clinic's time.
    let t0 = std::time::Instant::now();
    let inbox = loop {
        follow(&b, Locator::LinkText("Notifications")).await;
        let inbox = text(&b).await;
        if inbox.contains("Appointment cancelled") || t0.elapsed() > std::time::Duration::from_secs(15) {
            break inbox;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let at = |needle: &str| inbox.find(needle).unwrap_or_else(|| panic!("{needle:?} missing in {inbox}"));
    assert!(
        at("Appointment cancelled") < at("Appointment moved") && at("Appointment moved") < at("Appointment confirmed")
    );
    assert!(inbox.contains("Europe/Paris"), "{inbox}");
    screenshot(&b, "notifications").await;
    // The doctor's page offers the waitlist; joining it shows it under the notifications.
    b.goto(&format!("{}/?specialty=cardiology&city=Paris", srv.url)).await.unwrap();
    follow(&b, Locator::Css(".card a")).await;
    press(&b, "Tell me when an earlier slot frees up").await;
    let waiting = text(&b).await;
    assert!(waiting.contains("Waiting lists") && waiting.contains("waiting for a free slot"), "{waiting}");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_hold_says_so_and_offers_the_time_again_and_the_nearest_ones() {
    let srv = TestServer::start_with(&["--demo", "--hold-ttl-secs", "10"]);
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.goto(&format!("{}/?specialty=cardiology&city=Paris", srv.url)).await.unwrap();
    follow(&b, Locator::Css(".card a")).await;
    // The week's last time: far from the booking notice (the first one offered
    // could fall within it while the hold runs out, and no longer be bookable).
    let times = b.find_all(Locator::Css(".days a.slotlink")).await.unwrap();
    let last = times.last().expect("a week of times").attr("href").await.unwrap().expect("a link");
    b.goto(&format!("{}{last}", srv.url)).await.unwrap();
    sign_in(&b, "patient@demo.medislot.test", DEMO_PASSWORD).await;
    let length = b.find(Locator::Css(".card .length")).await.unwrap().text().await.unwrap();
    assert!(length.ends_with(" minutes"), "the visit's length is shown before holding: {length}");
    press(&b, "Hold this slot").await;
    assert!(text(&b).await.contains("held for you"));

    // The hold runs out (10 s here): the page says so, never "held for you for expired".
    let t0 = std::time::Instant::now();
    let notice = loop {
        let n = b.find(Locator::Id("hold-notice")).await.unwrap().text().await.unwrap();
        if n.contains("run out") || t0.elapsed() > std::time::Duration::from_secs(30) {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(notice.contains("Your hold on this time has run out") && !notice.contains("for expired"), "{notice}");
    screenshot(&b, "hold-ran-out").await;
    let form = b.find(Locator::Id("confirm-form")).await.unwrap();
    assert!(!form.is_displayed().await.unwrap(), "nothing left to confirm");
    // The page says so at the hold's very millisecond; a moment later the server agrees.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    follow(&b, Locator::Css("#hold-notice a")).await;
    let after = text(&b).await;
    assert!(
        after.contains("Your hold on this time ran out")
            && after.contains("hold it again")
            && after.contains("The nearest free times"),
        "{after}"
    );
    assert!(b.find_all(Locator::Css("main ul li a")).await.unwrap().len() >= 2, "nearest free times offered: {after}");
    follow(&b, Locator::LinkText("hold it again")).await;
    assert!(text(&b).await.contains("Hold this slot"), "the same time, to hold again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_in_another_time_zone_sees_both_times() {
    let srv = TestServer::start_with(&["--demo"]);
    let driver = Driver::start_in_zone("America/New_York").await;
    let b = driver.browser().await;
    b.goto(&format!("{}/?specialty=cardiology&city=Paris", srv.url)).await.unwrap();
    follow(&b, Locator::Css(".card a")).await;
    let week = text(&b).await;
    assert!(week.contains("Times are Europe/Paris time"), "{week}");
    assert!(week.contains("You are in America/New_York"), "the visitor's own zone is named: {week}");
    // Paris is six hours ahead of New York (both on standard time in late November).
    let first = b.find(Locator::Css(".days a.slotlink")).await.unwrap();
    let paris = first.text().await.unwrap();
    let yours = first.find(Locator::XPath("following-sibling::span[1]")).await.unwrap().text().await.unwrap();
    let hour = |s: &str| {
        let digits = s.trim_start_matches(|c: char| !c.is_ascii_digit());
        digits.split(':').next().unwrap().parse::<i32>().unwrap_or_else(|_| panic!("no hour in {s:?}"))
    };
    assert_eq!((hour(&paris) - hour(&yours)).rem_euclid(24), 6, "{paris} in Paris is {yours}");
    screenshot(&b, "doctor-week-other-zone").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_race_for_one_slot_and_the_loser_sees_alternatives() {
    let srv = TestServer::start_with(&["--demo"]);
    let driver = Driver::start().await;
    let (a, b) = (driver.browser().await, driver.browser().await);
    let http = client();
    let anyone = login_demo(&srv, &http, "patient@demo.medislot.test").await;
    let (_, found) = anyone.get("/doctors?specialty=dermatology").await;
    let slot = found["items"][0]["next_slot"]["slot_id"].as_str().unwrap().to_string();
    let link = format!("{}/book/{slot}", srv.url);
    for (browser, who) in [(&a, "patient2@demo.medislot.test"), (&b, "patient3@demo.medislot.test")] {
        browser.goto(&link).await.unwrap();
        sign_in(browser, who, DEMO_PASSWORD).await;
        assert!(text(browser).await.contains("Hold this slot"));
    }
    // Both press at once.
    tokio::join!(press(&a, "Hold this slot"), press(&b, "Hold this slot"));
    let (ta, tb) = (text(&a).await, text(&b).await);
    let won = [&ta, &tb].iter().filter(|t| t.contains("Confirm your appointment")).count();
    let lost: Vec<&String> = [&ta, &tb].into_iter().filter(|t| t.contains("just taken")).collect();
    assert_eq!((won, lost.len()), (1, 1), "one holds, one is told:\n{ta}\n---\n{tb}");
    assert!(lost[0].contains("here are the nearest free ones"));
    let loser = if ta.contains("just taken") { &a } else { &b };
    assert!(loser.find(Locator::Css("main ul li a")).await.is_ok(), "alternatives are offered as links");
    screenshot(loser, "slot-taken").await;
    a.close().await.unwrap();
    b.close().await.unwrap();
}

async fn login_demo(srv: &TestServer, http: &reqwest::Client, email: &str) -> User {
    let r = http
        .post(srv.api("/auth/login"))
        .json(&serde_json::json!({"email": email, "password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    User {
        id: v["user"]["id"].as_str().unwrap().into(),
        token: v["token"].as_str().unwrap().into(),
        base: srv.url.clone(),
        http: http.clone(),
    }
}
