//! PostgreSQL's values and the store's: instants as timestamptz (through
//! chrono, which sqlx speaks), and the row decoders.

use crate::decode::{row_decoders, Cells};
use crate::*;
use chrono::{DateTime, Utc};
use sqlx::{postgres::PgRow, Row};

/// An instant as PostgreSQL's timestamptz (microseconds; the app's clock
/// keeps no finer time).
pub(super) fn ts(t: Timestamp) -> DateTime<Utc> {
    let ns = t.as_nanosecond();
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    DateTime::from_timestamp(secs as i64, nanos as u32).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(super) fn from_ts(t: DateTime<Utc>) -> Result<Timestamp> {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .map_err(|e| StoreError::Internal(format!("bad instant {t}: {e}")))
}

pub(super) fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T> {
    row.try_get(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

pub(super) fn time_of(row: &PgRow, col: &str) -> Result<Timestamp> {
    from_ts(get(row, col)?)
}

pub(super) fn opt_time(row: &PgRow, col: &str) -> Result<Option<Timestamp>> {
    get::<Option<DateTime<Utc>>>(row, col)?.map(from_ts).transpose()
}

impl Cells for PgRow {
    fn text(&self, col: &str) -> Result<Option<String>> {
        get(self, col)
    }

    /// bigint, or integer (status codes).
    fn int(&self, col: &str) -> Result<Option<i64>> {
        match self.try_get::<Option<i64>, _>(col) {
            Ok(v) => Ok(v),
            Err(_) => Ok(get::<Option<i32>>(self, col)?.map(i64::from)),
        }
    }

    fn real(&self, col: &str) -> Result<f64> {
        get(self, col)
    }

    fn id(&self, col: &str) -> Result<Option<uuid::Uuid>> {
        get(self, col)
    }

    fn time(&self, col: &str) -> Result<Option<Timestamp>> {
        opt_time(self, col)
    }

    fn list(&self, col: &str) -> Result<Vec<String>> {
        get(self, col)
    }

    fn json(&self, col: &str) -> Result<Option<serde_json::Value>> {
        get(self, col)
    }

    fn flag(&self, col: &str) -> Result<bool> {
        get(self, col)
    }
}

row_decoders!(PgRow);

/// `$1`, `$2`…: numbered placeholders for a statement assembled from parts.
#[derive(Default)]
pub(super) struct Placeholders(usize);

impl Placeholders {
    pub fn next(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }
}
