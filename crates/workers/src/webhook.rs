//! Webhook requests: a JSON body signed with the subscription's secret.
//!
//! `Medislot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`;
//! a receiver recomputes it, compares in constant time and refuses an old `t`
//! (replays). `Medislot-Event-Id` is the same on every retry of one event:
//! receivers deduplicate by it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "Medislot-Signature";
pub const EVENT_ID_HEADER: &str = "Medislot-Event-Id";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a signature header (what a receiver does); `max_age` bounds replays.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, max_age_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now - t).abs() > max_age_secs {
        return false;
    }
    let Some(given) = (0..v1.len())
        .step_by(2)
        .map(|i| v1.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// What became of one POST.
pub enum Sent {
    Ok(u16),
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// The receiver's address is not one we call (loopback, private…): never retried.
    Blocked,
}

/// Resolves receivers' names and keeps only public addresses (unless the
/// operator allows private ones): the address connected to is the address
/// checked, so a name that resolves to a public address when subscribed and
/// to an internal one later (DNS rebinding) still reaches nothing inside.
struct PublicOnly {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<std::net::SocketAddr> =
                found.into_iter().filter(|a| allow_private || medislot_domain::address::is_public(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(BlockedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug)]
struct BlockedAddress;

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the receiver's address is not a public one")
    }
}

impl std::error::Error for BlockedAddress {}

/// The client webhooks are sent with: public receivers only (unless allowed),
/// no redirects followed, no proxy from the environment, a 10 s limit.
pub fn client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(PublicOnly { allow_private }))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// An address written into the URL itself is checked here (no name to resolve).
fn literal_address_allowed(url: &str, allow_private: bool) -> bool {
    match reqwest::Url::parse(url).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Ipv4(ip)) => allow_private || medislot_domain::address::is_public(ip.into()),
        Some(url::Host::Ipv6(ip)) => allow_private || medislot_domain::address::is_public(ip.into()),
        Some(url::Host::Domain(_)) => true,
        None => false,
    }
}

pub async fn post(
    client: &reqwest::Client,
    allow_private: bool,
    url: &str,
    secret: &str,
    event_id: &str,
    body: &[u8],
    now: i64,
) -> Sent {
    if !literal_address_allowed(url, allow_private) {
        return Sent::Blocked;
    }
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, event_id)
        .header(SIGNATURE_HEADER, signature(secret, now, body))
        .body(body.to_vec())
        .send()
        .await;
    // The delivery log says what happened in coarse terms only: a status code, or
    // that no answer came — never transport details that would map the network.
    match answer {
        Ok(r) if r.status().is_success() => Sent::Ok(r.status().as_u16()),
        Ok(r) => Sent::Failed { status: Some(r.status().as_u16()), error: format!("answered {}", r.status().as_u16()) },
        Err(e) if std::error::Error::source(&e).is_some_and(is_blocked) => Sent::Blocked,
        Err(e) if e.is_timeout() => Sent::Failed { status: None, error: "timed out".into() },
        Err(_) => Sent::Failed { status: None, error: "connection failed".into() },
    }
}

/// Whether an error (or one of its causes) is our resolver's refusal.
fn is_blocked(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if e.is::<BlockedAddress>() {
            return true;
        }
        match e.source() {
            Some(next) => e = next,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_are_checked_before_any_connection() {
        for blocked in
            ["http://127.0.0.1:5432/", "http://[::1]/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/"]
        {
            assert!(!literal_address_allowed(blocked, false), "{blocked}");
            assert!(literal_address_allowed(blocked, true), "{blocked} when allowed");
        }
        assert!(literal_address_allowed("https://93.184.216.34/hook", false));
        assert!(literal_address_allowed("https://hooks.example.org/x", false), "names are checked when resolved");
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused_when_resolved() {
        let client = client(false);
        match post(&client, false, "http://localhost:9/hook", "s", "e", b"{}", 0).await {
            Sent::Blocked => {}
            Sent::Ok(_) | Sent::Failed { .. } => panic!("localhost resolves to loopback: refused"),
        }
    }

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = signature("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(verify("s3cret", &header, b"{\"a\":1}", 1_700_000_010, 300));
        assert!(!verify("s3cret", &header, b"{\"a\":2}", 1_700_000_010, 300), "another body");
        assert!(!verify("other", &header, b"{\"a\":1}", 1_700_000_010, 300), "another secret");
        assert!(!verify("s3cret", &header, b"{\"a\":1}", 1_700_001_000, 300), "too old: a replay");
        assert!(!verify("s3cret", "t=1700000000,v1=zz", b"{\"a\":1}", 1_700_000_010, 300));
    }
}
