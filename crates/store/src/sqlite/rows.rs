//! Running statements and decoding their rows into the store's records.

use super::map_err;
use super::values::*;
use crate::decode::{row_decoders, Cells};
use crate::*;
use rusqlite::{
    types::{FromSql, ValueRef},
    Connection, Params, Row,
};

/// Every row of a fixed statement (prepared once per connection), decoded.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    collect(&mut stmt, params, decode)
}

/// Every row of a statement whose text varies (`IN` lists of any length):
/// not kept prepared, or each length would hold a place in the cache.
pub(super) fn all_once<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).map_err(map_err)?;
    collect(&mut stmt, params, decode)
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The first row of a fixed statement, decoded, or `None`.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    rows.next().map_err(map_err)?.map(decode).transpose()
}

/// A fixed statement's single value (`count(*)`, `max(…)`).
pub(super) fn scalar<T: FromSql>(conn: &Connection, sql: &str, params: impl Params) -> Result<T> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.query_row(params, |r| r.get(0)).map_err(map_err)
}

/// Runs a fixed write statement; how many rows it changed.
pub(super) fn exec(conn: &Connection, sql: &str, params: impl Params) -> Result<usize> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.execute(params).map_err(map_err)
}

pub(super) fn get<T: FromSql>(row: &Row, col: &str) -> Result<T> {
    row.get(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

pub(super) fn id_of(row: &Row, col: &str) -> Result<uuid::Uuid> {
    uuid(&get::<String>(row, col)?)
}

pub(super) fn opt_time(row: &Row, col: &str) -> Result<Option<Timestamp>> {
    row.time(col)
}

pub(super) fn time_of(row: &Row, col: &str) -> Result<Timestamp> {
    row.time(col)?.ok_or_else(|| StoreError::Internal(format!("column {col} is NULL")))
}

impl Cells for Row<'_> {
    fn text(&self, col: &str) -> Result<Option<String>> {
        get(self, col)
    }

    fn int(&self, col: &str) -> Result<Option<i64>> {
        get(self, col)
    }

    fn real(&self, col: &str) -> Result<f64> {
        get(self, col)
    }

    fn id(&self, col: &str) -> Result<Option<uuid::Uuid>> {
        get::<Option<String>>(self, col)?.as_deref().map(uuid).transpose()
    }

    /// Instants are Unix seconds (what constraints compare), bookkeeping
    /// times RFC 3339 text; the cell's own type says which.
    fn time(&self, col: &str) -> Result<Option<Timestamp>> {
        match self.get_ref(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(s) => from_secs(s).map(Some),
            ValueRef::Text(t) => text_ts(std::str::from_utf8(t).unwrap_or_default()).map(Some),
            other => Err(StoreError::Internal(format!("column {col}: not a time ({:?})", other.data_type()))),
        }
    }

    fn list(&self, col: &str) -> Result<Vec<String>> {
        json(&get::<String>(self, col)?)
    }

    fn json(&self, col: &str) -> Result<Option<serde_json::Value>> {
        get::<Option<String>>(self, col)?.as_deref().map(json).transpose()
    }

    fn flag(&self, col: &str) -> Result<bool> {
        Ok(get::<i64>(self, col)? != 0)
    }
}

row_decoders!(Row<'_>);
