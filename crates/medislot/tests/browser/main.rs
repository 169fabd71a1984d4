//! End-to-end tests in a real browser: headless Chromium (Debian's package)
//! driven over WebDriver (chromedriver) against the real binary. Screenshots
//! of each main page land in `target/tmp/screenshots/` for a reviewer.

#[path = "../api/helpers.rs"]
mod helpers;

mod patient;
mod staff;
mod visits;

use fantoccini::{Client, ClientBuilder, Locator};
use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

/// One chromedriver for a test; browsers (sessions) are opened through it.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub async fn start() -> Driver {
        Self::start_in_zone("Europe/Paris").await
    }

    /// A chromedriver whose browsers live in time zone `tz` (as a traveller's laptop would).
    pub async fn start_in_zone(tz: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver is needed for the browser tests ({e}); run scripts/test, which installs Debian's chromium and chromium-driver")
            });
        // Owned from here: dropped (killed and waited for) even if it never listens.
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start listening on port {port}");
    }

    /// A fresh headless browser with a phone-sized window (its own cookies).
    pub async fn browser(&self) -> Client {
        let binary = std::env::var("MEDISLOT_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=430,1100", "--lang=en-GB"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(&self.url).await.unwrap_or_else(|e| {
            panic!("could not open a Chromium session ({e}); run scripts/test, which installs Debian's chromium")
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves what the browser shows as `target/tmp/screenshots/{name}.png`.
pub async fn screenshot(b: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = b.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The page's visible text.
pub async fn text(b: &Client) -> String {
    for _ in 0..50 {
        if let Ok(main) = b.find(Locator::Css("main")).await {
            if let Ok(t) = main.text().await {
                return t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no page text at {:?}", b.current_url().await)
}

/// Clicks what `locator` finds and waits for the next page to replace this one.
pub async fn follow(b: &Client, locator: Locator<'_>) {
    let old = b.find(Locator::Css("main")).await.expect("a page is shown");
    b.find(locator).await.unwrap_or_else(|e| panic!("nothing to click at {locator:?}: {e}")).click().await.unwrap();
    for _ in 0..100 {
        // The old page's element goes stale once the browser has navigated.
        if old.text().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {locator:?} did not lead to another page");
}

pub async fn fill(b: &Client, css: &str, value: &str) {
    let el = b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

/// Clicks the button whose text contains `label` and waits for the next page.
pub async fn press(b: &Client, label: &str) {
    let xpath = format!("//button[contains(normalize-space(.), '{label}')]");
    follow(b, Locator::XPath(&xpath)).await;
}

/// The id of one of the demo's doctors, found by name through the search API.
pub async fn demo_doctor(srv: &helpers::TestServer, name: &str) -> String {
    let found: serde_json::Value = helpers::client()
        .get(srv.api("/doctors?specialty=general-practice&per_page=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["doctor"]["name"] == name)
        .map(|h| h["doctor"]["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{name} of the demo"))
}

/// Signs in on whatever sign-in form the page shows.
pub async fn sign_in(b: &Client, email: &str, password: &str) {
    fill(b, "#email", email).await;
    fill(b, "#password", password).await;
    press(b, "Sign in").await;
}
