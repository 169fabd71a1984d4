//! How SQLite keeps the store's values: ids as text, instants as Unix
//! seconds, bookkeeping times as RFC 3339 text (which sorts as time does),
//! structured fields as JSON text.

use crate::{Result, StoreError};
use jiff::Timestamp;
use uuid::Uuid;

/// Statuses that occupy a doctor's time (P1).
pub(super) const ACTIVE: &str = "('held', 'pending', 'booked', 'arrived')";

pub(super) fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

pub(super) fn from_secs(s: i64) -> Result<Timestamp> {
    Timestamp::from_second(s).map_err(|e| StoreError::Internal(format!("bad instant {s}: {e}")))
}

pub(super) fn text_ts(s: &str) -> Result<Timestamp> {
    s.parse().map_err(|e| StoreError::Internal(format!("bad timestamp {s:?}: {e}")))
}

pub(super) fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Internal(format!("bad id {s:?}: {e}")))
}

pub(super) fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("bad JSON column: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// `?, ?, …` for an `IN` list of `n` values.
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
