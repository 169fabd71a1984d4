//! Instants as the platform accepts them from outside: RFC 3339 with an offset
//! of at most ±23:59, within the years 2000–2199. Far enough back for any
//! history and ahead for any horizon, and far from the time library's own
//! limits, so that no arithmetic on an accepted instant (a slot's end, a
//! window, a reminder) can overflow.

use crate::error::Invalid;
use jiff::Timestamp;

/// 2000-01-01T00:00:00Z, the earliest instant accepted.
pub const EARLIEST: Timestamp = Timestamp::constant(946_684_800, 0);
/// 2200-01-01T00:00:00Z, the first instant no longer accepted.
pub const END: Timestamp = Timestamp::constant(7_258_118_400, 0);

const RANGE: &str = "must be between 2000-01-01T00:00:00Z and 2199-12-31T23:59:59Z";

/// Refuses an instant outside the accepted range.
pub fn check(field: &str, t: Timestamp) -> Result<Timestamp, Invalid> {
    if t < EARLIEST || t >= END {
        return Err(Invalid::field(field, RANGE));
    }
    Ok(t)
}

/// Parses an RFC 3339 instant (`2026-03-20T09:00:00Z`, `2026-03-20T10:00:00+01:00`).
pub fn parse(field: &str, raw: &str) -> Result<Timestamp, Invalid> {
    let bad = || Invalid::field(field, "must be an RFC 3339 instant such as 2026-03-20T09:00:00Z");
    let raw = raw.trim();
    if !offset_is_rfc3339(raw) {
        return Err(Invalid::field(field, "must end in Z or an offset from -23:59 to +23:59"));
    }
    let t = raw.parse::<Timestamp>().map_err(|_| bad())?;
    check(field, t)
}

/// RFC 3339's `time-offset`: `Z`, or `+HH:MM` / `-HH:MM` with HH ≤ 23 and MM ≤ 59.
/// (The time library itself accepts offsets up to ±25:59:59.)
fn offset_is_rfc3339(raw: &str) -> bool {
    if raw.ends_with(['Z', 'z']) {
        return true;
    }
    let Some(tail) = raw.len().checked_sub(6).and_then(|i| raw.get(i..)) else { return false };
    let b = tail.as_bytes();
    let digits = |i: usize, j: usize| -> Option<u8> {
        let s = tail.get(i..j)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
    };
    matches!(b[0], b'+' | b'-')
        && b[3] == b':'
        && digits(1, 3).is_some_and(|h| h <= 23)
        && digits(4, 6).is_some_and(|m| m <= 59)
}

/// An instant in a JSON body, checked as [`parse`] checks it; the JSON
/// extractor names the field when it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub Timestamp);

impl<'de> serde::Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        parse("instant", &raw).map(Instant).map_err(|e| serde::de::Error::custom(&e.0[0].message))
    }
}

impl serde::Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_rfc3339_in_range() {
        for ok in [
            "2026-03-20T09:00:00Z",
            "2026-03-20T10:00:00+01:00",
            "2000-01-01T00:00:00Z",
            "2199-12-31T23:59:59+23:59",
            "2026-06-01T00:00:00-09:30",
        ] {
            assert!(parse("t", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_offsets_and_years_outside_the_api() {
        for bad in [
            "2026-03-20T09:00:00+24:00",
            "2026-03-20T09:00:00-25:59",
            "2026-03-20T09:00:00+01:60",
            "2026-03-20T09:00:00",
            "1999-12-31T23:59:59Z",
            "2200-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "-009999-01-01T00:00:00Z",
            "",
            "now",
        ] {
            let e = parse("start", bad).unwrap_err();
            assert_eq!(e.0[0].field, "start", "{bad}");
        }
    }

    #[test]
    fn a_json_body_names_the_problem() {
        let e = serde_json::from_str::<Instant>("\"2026-03-20T09:00:00+25:00\"").unwrap_err();
        assert!(e.to_string().contains("offset"), "{e}");
        let ok: Instant = serde_json::from_str("\"2026-03-20T09:00:00Z\"").unwrap();
        assert_eq!(ok.0.to_string(), "2026-03-20T09:00:00Z");
    }

    proptest! {
        /// Whatever string comes in, parsing answers (never panics), and what it
        /// accepts leaves room for a day's arithmetic either way.
        #[test]
        fn any_string_is_answered(raw in "\\PC{0,40}") {
            if let Ok(t) = parse("t", &raw) {
                prop_assert!(t.checked_add(jiff::SignedDuration::from_hours(24 * 400)).is_ok());
                prop_assert!(t.checked_sub(jiff::SignedDuration::from_hours(24 * 400)).is_ok());
            }
        }

        #[test]
        fn any_second_is_checked(secs in i64::MIN..i64::MAX) {
            if let Ok(t) = Timestamp::from_second(secs) {
                let inside = check("t", t).is_ok();
                prop_assert_eq!(inside, (946_684_800..7_258_118_400).contains(&secs));
            }
        }
    }
}
