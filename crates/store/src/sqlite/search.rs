//! [`SearchStore`] on SQLite: the read model's rows in `search_entries`
//! (B-tree indexes per mode in the order search reads them), places in the
//! `search_places` R*Tree keyed by specialty code and box, and each doctor's
//! free times in `search_free`. Searches read in one transaction, so counts
//! and rows agree.

use super::rows::{all, exec, scalar};
use super::values::*;
use super::{map_err, SqliteStore};
use crate::search::*;
use crate::Result;
use async_trait::async_trait;
use jiff::Timestamp;
use medislot_domain::{free_index::FreeIndex, Coordinates, DoctorId, Mode};
use rusqlite::{params, params_from_iter, types::Value, Connection, OptionalExtension, Row};

/// The column holding the next start of the mode searched.
fn next_column(mode: Option<Mode>) -> &'static str {
    match mode {
        None => "next_any",
        Some(Mode::InPerson) => "next_in_person",
        Some(Mode::Online) => "next_online",
    }
}

/// The specialty's code in the R*Tree, if any row ever had it.
fn code_of(c: &Connection, specialty: &str) -> Result<Option<i64>> {
    c.prepare_cached("SELECT code FROM search_specialties WHERE name = ?")
        .and_then(|mut s| s.query_row([specialty], |r| r.get(0)).optional())
        .map_err(map_err)
}

/// `FROM …` and `WHERE …` for a filter, with its values; `None` when no row can match.
fn filtered(c: &Connection, f: &SearchFilter, with_free: bool) -> Result<Option<(String, Vec<Value>)>> {
    let mut from = String::new();
    let mut values = Vec::new();
    if let Some((lat0, lat1, lon0, lon1)) = f.near.map(|(c, km)| c.bounding_box(km)) {
        let Some(code) = code_of(c, &f.specialty)? else { return Ok(None) };
        // The R*Tree first: it finds the specialty inside the box in one lookup.
        from.push_str(
            "search_places p CROSS JOIN search_entries e ON e.id = p.id
             WHERE p.code_min <= ? AND p.code_max >= ? AND p.lat_max >= ? AND p.lat_min <= ?
               AND p.lon_max >= ? AND p.lon_min <= ? AND e.specialty = ?",
        );
        values.extend([
            Value::Integer(code),
            Value::Integer(code),
            Value::Real(lat0),
            Value::Real(lat1),
            Value::Real(lon0),
            Value::Real(lon1),
        ]);
    } else {
        from.push_str("search_entries e WHERE e.specialty = ?");
    }
    values.push(Value::Text(f.specialty.clone()));
    if with_free {
        from = from.replacen(" WHERE ", " JOIN search_free f ON f.doctor_id = e.doctor_id WHERE ", 1);
    }
    if let Some(l) = &f.language {
        from.push_str(" AND instr(e.languages, ?) > 0");
        values.push(Value::Text(format!(" {l} ")));
    }
    if let Some(m) = f.mode {
        from.push_str(" AND (e.modes & ?) <> 0");
        values.push(Value::Integer(mode_bit(m)));
    }
    Ok(Some((from, values)))
}

fn row_of(r: &Row, with_free: bool, now: Option<Timestamp>) -> Result<SearchRow> {
    let get = |i: usize| -> Result<Value> { r.get::<_, Value>(i).map_err(map_err) };
    let text = |i| match get(i)? {
        Value::Text(s) => Ok(s),
        other => Err(crate::StoreError::Internal(format!("search row column {i}: {other:?}"))),
    };
    let real = |i| match get(i)? {
        Value::Real(x) => Ok(x),
        Value::Integer(x) => Ok(x as f64),
        other => Err(crate::StoreError::Internal(format!("search row column {i}: {other:?}"))),
    };
    let int = |i| match get(i)? {
        Value::Integer(x) => Ok(Some(x)),
        Value::Null => Ok(None),
        other => Err(crate::StoreError::Internal(format!("search row column {i}: {other:?}"))),
    };
    let next = int(4)?.map(from_secs).transpose()?;
    let fresh_until = int(5)?.map(from_secs).transpose()?;
    let free = match with_free.then(|| r.get::<_, Option<Vec<u8>>>(6)).transpose().map_err(map_err)?.flatten() {
        Some(bytes) => {
            Some(FreeIndex::decode(&bytes).ok_or_else(|| crate::StoreError::Internal("unreadable free times".into()))?)
        }
        None => None,
    };
    Ok(SearchRow {
        doctor_id: DoctorId(uuid(&text(0)?)?),
        name: text(1)?,
        position: Coordinates { lat: real(2)?, lon: real(3)? },
        next,
        stale: match (now, fresh_until) {
            (Some(now), Some(f)) => f < now,
            _ => false,
        },
        free,
    })
}

fn rows(
    c: &Connection,
    sql: &str,
    values: Vec<Value>,
    with_free: bool,
    now: Option<Timestamp>,
) -> Result<Vec<SearchRow>> {
    // A handful of shapes (which filters are set): kept prepared.
    let mut stmt = c.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params_from_iter(values)).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(map_err)? {
        out.push(row_of(r, with_free, now)?);
    }
    Ok(out)
}

/// The rows of `FROM …`, counted up to [`COUNT_CAP`] + 1.
fn capped_count(c: &Connection, from: &str, values: Vec<Value>) -> Result<u64> {
    let sql = format!("SELECT count(*) FROM (SELECT 1 FROM {from} LIMIT {})", COUNT_CAP + 1);
    let mut stmt = c.prepare_cached(&sql).map_err(map_err)?;
    stmt.query_row(params_from_iter(values), |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(map_err)
}

const ROW: &str = "e.doctor_id, e.name, e.latitude, e.longitude";

fn candidates(c: &Connection, f: &SearchFilter, fresh_at: Option<Timestamp>) -> Result<Vec<SearchRow>> {
    let next = next_column(f.mode);
    let Some(at) = fresh_at else {
        let Some((from, values)) = filtered(c, f, true)? else { return Ok(vec![]) };
        let sql = format!("SELECT {ROW}, e.{next}, e.fresh_until, f.free FROM {from}");
        return rows(c, &sql, values, true, None);
    };
    let Some((from, values)) = filtered(c, f, false)? else { return Ok(vec![]) };
    // Free times only for the stale rows: the subquery runs for them alone.
    let sql = format!(
        "SELECT {ROW}, e.{next}, e.fresh_until,
           CASE WHEN e.fresh_until < ? THEN (SELECT s.free FROM search_free s WHERE s.doctor_id = e.doctor_id) END
         FROM {from}"
    );
    let values = std::iter::once(Value::Integer(secs(at))).chain(values).collect();
    rows(c, &sql, values, true, Some(at))
}

fn indexed(
    c: &Connection,
    f: &SearchFilter,
    now: Timestamp,
    to: Timestamp,
    limit: u32,
    without_slot: Option<u32>,
    after: Option<&SearchAfter>,
) -> Result<IndexedSearch> {
    let Some((from, values)) = filtered(c, f, false)? else { return Ok(IndexedSearch::default()) };
    let Some((from_free, values_free)) = filtered(c, f, true)? else { return Ok(IndexedSearch::default()) };
    let next = next_column(f.mode);
    let (now_s, to_s) = (Value::Integer(secs(now)), Value::Integer(secs(to)));
    let with = |extra: &[Value]| values.iter().cloned().chain(extra.iter().cloned()).collect::<Vec<_>>();
    let fresh = "(e.fresh_until IS NULL OR e.fresh_until >= ?)";
    let soon = format!("{from} AND e.{next} >= ? AND e.{next} < ? AND {fresh}");
    let soon_values = [now_s.clone(), to_s.clone(), now_s.clone()];
    let (past, past_values) = match after {
        // Past the rows with a start: none of them left.
        Some(SearchAfter { next: None, .. }) => (" AND 0".to_string(), vec![]),
        Some(SearchAfter { next: Some(t), name, doctor_id }) => (
            format!(" AND e.{next} >= ? AND (e.{next}, e.name, e.doctor_id) > (?, ?, ?)"),
            vec![
                Value::Integer(secs(*t)),
                Value::Integer(secs(*t)),
                Value::Text(name.clone()),
                Value::Text(doctor_id.to_string()),
            ],
        ),
        None => (String::new(), vec![]),
    };
    let soonest = rows(
        c,
        &format!(
            "SELECT {ROW}, e.{next}, e.fresh_until FROM {soon}{past} ORDER BY e.{next}, e.name, e.doctor_id LIMIT ?"
        ),
        with(&[soon_values.as_slice(), &past_values, &[Value::Integer(i64::from(limit))]].concat()),
        false,
        Some(now),
    )?;
    let soonest_count = if without_slot.is_none() { capped_count(c, &soon, with(&soon_values))? } else { 0 };
    let stale = rows(
        c,
        &format!("SELECT {ROW}, e.{next}, e.fresh_until, f.free FROM {from_free} AND e.fresh_until < ?"),
        values_free.iter().cloned().chain([now_s.clone()]).collect(),
        true,
        Some(now),
    )?;
    let asked_without = without_slot.is_some();
    let without_slot = match without_slot {
        Some(n) if soonest.len() < limit as usize => {
            let (past, past_values) = match after {
                Some(SearchAfter { next: None, name, doctor_id }) => (
                    " AND (e.name, e.doctor_id) > (?, ?)",
                    vec![Value::Text(name.clone()), Value::Text(doctor_id.to_string())],
                ),
                _ => ("", vec![]),
            };
            rows(
                c,
                &format!(
                    "SELECT {ROW}, e.{next}, e.fresh_until FROM {from} AND {fresh} AND (e.{next} IS NULL OR e.{next} >= ?){past}
                     ORDER BY e.name, e.doctor_id LIMIT ?"
                ),
                with(&[&[now_s, to_s][..], &past_values, &[Value::Integer(i64::from(n))]].concat()),
                false,
                Some(now),
            )?
        }
        _ => vec![],
    };
    let total = if asked_without { capped_count(c, &from, values.clone())? } else { 0 };
    Ok(IndexedSearch { soonest, soonest_count, stale, without_slot, total })
}

/// Reads in one transaction: every statement sees the same snapshot.
fn in_snapshot<T>(c: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    c.execute_batch("BEGIN").map_err(map_err)?;
    let out = f(c);
    c.execute_batch("COMMIT").map_err(map_err)?;
    out
}

fn specialty_code(c: &Connection, name: &str) -> Result<i64> {
    if let Some(code) = code_of(c, name)? {
        return Ok(code);
    }
    exec(c, "INSERT INTO search_specialties (name) VALUES (?)", [name])?;
    Ok(c.last_insert_rowid())
}

/// One doctor's rows replaced, unless fresher free times are stored.
pub(super) fn put(c: &Connection, entry: &SearchEntry, at: Timestamp) -> Result<()> {
    let id = entry.doctor_id.to_string();
    let stored: Option<i64> = c
        .prepare_cached("SELECT computed_at FROM search_free WHERE doctor_id = ?")
        .and_then(|mut s| s.query_row([&id], |r| r.get(0)).optional())
        .map_err(map_err)?;
    if stored.is_some_and(|s| s > at.as_microsecond()) {
        return Ok(());
    }
    exec(c, "DELETE FROM search_places WHERE id IN (SELECT id FROM search_entries WHERE doctor_id = ?)", [&id])?;
    exec(c, "DELETE FROM search_entries WHERE doctor_id = ?", [&id])?;
    insert(c, entry, at)
}

/// Writes the rows of a doctor who has none (a bulk load's new doctors; [`put`]
/// after it cleared the old ones).
pub(super) fn insert(c: &Connection, entry: &SearchEntry, at: Timestamp) -> Result<()> {
    let id = entry.doctor_id.to_string();
    let Some(l) = &entry.listing else {
        // A tombstone: a put computed before the doctor left cannot bring them back.
        exec(
            c,
            "INSERT INTO search_free (doctor_id, computed_at, refresh_at, free) VALUES (?, ?, ?, x'')
             ON CONFLICT (doctor_id) DO UPDATE SET computed_at = excluded.computed_at,
               refresh_at = excluded.refresh_at, free = excluded.free",
            params![id, at.as_microsecond(), i64::MAX],
        )?;
        return Ok(());
    };
    let cols = l.columns();
    let languages = format!(" {} ", l.languages.join(" "));
    for specialty in l.specialty_keys() {
        let code = specialty_code(c, specialty)?;
        exec(
            c,
            "INSERT INTO search_entries (doctor_id, specialty, name, latitude, longitude, languages, modes,
               next_any, next_in_person, next_online, fresh_until)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                id,
                specialty,
                l.name,
                l.position.lat,
                l.position.lon,
                languages,
                l.mode_bits(),
                cols.any.map(secs),
                cols.in_person.map(secs),
                cols.online.map(secs),
                cols.fresh_until.map(secs),
            ],
        )?;
        let row = c.last_insert_rowid();
        exec(
            c,
            "INSERT INTO search_places (id, code_min, code_max, lat_min, lat_max, lon_min, lon_max)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![row, code, code, l.position.lat, l.position.lat, l.position.lon, l.position.lon],
        )?;
    }
    exec(
        c,
        "INSERT INTO search_free (doctor_id, computed_at, refresh_at, free) VALUES (?, ?, ?, ?)
         ON CONFLICT (doctor_id) DO UPDATE SET computed_at = excluded.computed_at,
           refresh_at = excluded.refresh_at, free = excluded.free",
        params![id, l.free.computed_at.as_microsecond(), secs(l.free.refresh_at(l.free.computed_at)), l.free.encode()],
    )?;
    Ok(())
}

fn due(c: &Connection, now: Timestamp, limit: u32) -> Result<Vec<DueEntry>> {
    all(
        c,
        "SELECT doctor_id, free FROM search_free WHERE refresh_at <= ? ORDER BY refresh_at LIMIT ?",
        params![secs(now), limit],
        |r| {
            let id: String = r.get(0).map_err(map_err)?;
            let bytes: Vec<u8> = r.get(1).map_err(map_err)?;
            let free =
                FreeIndex::decode(&bytes).ok_or_else(|| crate::StoreError::Internal("unreadable free times".into()))?;
            Ok(DueEntry { doctor_id: DoctorId(uuid(&id)?), free })
        },
    )
}

fn advance(c: &Connection, a: &Advance) -> Result<()> {
    let id = a.doctor_id.to_string();
    let moved = exec(
        c,
        "UPDATE search_free SET refresh_at = ? WHERE doctor_id = ? AND computed_at = ?",
        params![secs(a.refresh_at), id, a.computed_at.as_microsecond()],
    )?;
    if moved == 1 {
        let cols = indexed_columns(a.next, a.notice);
        exec(
            c,
            "UPDATE search_entries SET next_any = ?, next_in_person = ?, next_online = ?, fresh_until = ? WHERE doctor_id = ?",
            params![
                cols.any.map(secs),
                cols.in_person.map(secs),
                cols.online.map(secs),
                cols.fresh_until.map(secs),
                id
            ],
        )?;
    }
    Ok(())
}

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_candidates(&self, filter: &SearchFilter, fresh_at: Option<Timestamp>) -> Result<Vec<SearchRow>> {
        let f = filter.clone();
        self.read(move |c| in_snapshot(c, |c| candidates(c, &f, fresh_at))).await
    }

    async fn search_indexed(
        &self,
        filter: &SearchFilter,
        now: Timestamp,
        to: Timestamp,
        limit: u32,
        without_slot: Option<u32>,
        after: Option<&SearchAfter>,
    ) -> Result<IndexedSearch> {
        let f = filter.clone();
        let after = after.cloned();
        self.read(move |c| in_snapshot(c, |c| indexed(c, &f, now, to, limit, without_slot, after.as_ref()))).await
    }

    async fn put_search_entries(&self, entries: &[SearchEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.write(move |c| {
            for e in &entries {
                put(c, e, e.at)?;
            }
            Ok(())
        })
        .await
    }

    async fn search_entries_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DueEntry>> {
        self.read(move |c| due(c, now, limit)).await
    }

    async fn advance_search_entries(&self, advances: &[Advance]) -> Result<()> {
        let advances = advances.to_vec();
        self.write(move |c| advances.iter().try_for_each(|a| advance(c, a))).await
    }

    async fn doctors_missing_from_search(&self, limit: u32) -> Result<Vec<DoctorId>> {
        self.read(move |c| {
            all(
                c,
                "SELECT d.id FROM doctors d WHERE d.verification = 'verified'
                   AND NOT EXISTS (SELECT 1 FROM search_free f WHERE f.doctor_id = d.id) LIMIT ?",
                [limit],
                |r| Ok(DoctorId(uuid(&r.get::<_, String>(0).map_err(map_err)?)?)),
            )
        })
        .await
    }

    async fn doctors_by_id(&self, ids: &[DoctorId]) -> Result<Vec<(crate::DoctorRecord, crate::ClinicRecord)>> {
        let ids = ids.to_vec();
        self.read(move |c| super::directory::doctors_with_clinics(c, &ids)).await
    }

    async fn hold_expiries(&self, ids: &[DoctorId], now: Timestamp) -> Result<Vec<(DoctorId, Timestamp)>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut out = Vec::new();
            for chunk in ids.chunks(400) {
                let sql = format!(
                    "SELECT doctor_id, min(hold_expires_at) FROM appointments
                     WHERE status = 'held' AND doctor_id IN ({}) AND hold_expires_at > ? GROUP BY doctor_id",
                    placeholders(chunk.len())
                );
                let mut values: Vec<Value> = chunk.iter().map(|d| Value::Text(d.to_string())).collect();
                values.push(Value::Integer(secs(now)));
                let mut stmt = c.prepare(&sql).map_err(map_err)?;
                let mut rows = stmt.query(params_from_iter(values)).map_err(map_err)?;
                while let Some(r) = rows.next().map_err(map_err)? {
                    let id: String = r.get(0).map_err(map_err)?;
                    out.push((DoctorId(uuid(&id)?), from_secs(r.get(1).map_err(map_err)?)?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn search_entries_as_of(&self) -> Result<Option<Timestamp>> {
        self.read(|c| {
            let us: Option<i64> = scalar(c, "SELECT max(computed_at) FROM search_free", [])?;
            us.map(|u| Timestamp::from_microsecond(u).map_err(|e| crate::StoreError::Internal(e.to_string())))
                .transpose()
        })
        .await
    }
}
