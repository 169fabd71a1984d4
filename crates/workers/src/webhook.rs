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
    Failed { status: Option<u16>, error: String },
}

pub async fn post(client: &reqwest::Client, url: &str, secret: &str, event_id: &str, body: &[u8], now: i64) -> Sent {
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, event_id)
        .header(SIGNATURE_HEADER, signature(secret, now, body))
        .body(body.to_vec())
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Sent::Ok(r.status().as_u16()),
        Ok(r) => Sent::Failed { status: Some(r.status().as_u16()), error: format!("answered {}", r.status()) },
        Err(e) => Sent::Failed { status: None, error: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
