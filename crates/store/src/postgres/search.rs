//! [`SearchStore`] on PostgreSQL: the read model's rows in `search_entries`
//! (B-tree indexes per mode in the order search reads them, a GiST index
//! over specialty and `earthdistance` place for radius searches, languages
//! as `text[]`), each doctor's free times in `search_free`. A search reads
//! in one REPEATABLE READ transaction, so its counts and rows agree.

use super::rows::*;
use super::{map_err, PgStore};
use crate::search::*;
use crate::{Result, StoreError};
use async_trait::async_trait;
use jiff::Timestamp;
use medislot_domain::{free_index::FreeIndex, Coordinates, DoctorId, Mode};
use sqlx::{postgres::PgRow, Row};

fn next_column(mode: Option<Mode>) -> &'static str {
    match mode {
        None => "next_any",
        Some(Mode::InPerson) => "next_in_person",
        Some(Mode::Online) => "next_online",
    }
}

/// A statement's parts with the values they bind, in placeholder order.
#[derive(Default, Clone)]
struct Sql {
    text: String,
    values: Vec<Bind>,
}

#[derive(Clone)]
enum Bind {
    Text(String),
    Float(f64),
    Int(i16),
    Time(Timestamp),
    Long(i64),
    Uuid(uuid::Uuid),
}

impl Sql {
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn bind(&mut self, v: Bind) -> &mut Self {
        self.values.push(v);
        self.text.push_str(&format!("${}", self.values.len()));
        self
    }
    fn query(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(&self.text);
        for v in &self.values {
            q = match v {
                Bind::Text(s) => q.bind(s.as_str()),
                Bind::Float(x) => q.bind(*x),
                Bind::Int(x) => q.bind(*x),
                Bind::Time(t) => q.bind(ts(*t)),
                Bind::Long(x) => q.bind(*x),
                Bind::Uuid(x) => q.bind(*x),
            };
        }
        q
    }
}

/// `FROM … WHERE …` for a filter.
fn filtered(f: &SearchFilter, with_free: bool) -> Sql {
    filtered_after(Sql::default(), f, with_free)
}

/// `head` followed by `FROM … WHERE …` for a filter (its values after head's).
fn filtered_after(mut s: Sql, f: &SearchFilter, with_free: bool) -> Sql {
    s.push("search_entries e");
    if with_free {
        s.push(" JOIN search_free f ON f.doctor_id = e.doctor_id");
    }
    s.push(" WHERE e.specialty = ").bind(Bind::Text(f.specialty.clone()));
    if let Some((c, km)) = f.near {
        // earthdistance's earth is a little larger than ours: a box a little
        // wider than the radius, and at least a metre (a radius of a few
        // hundred femtometres underflows in earth_box); callers check the
        // exact distance.
        s.push(" AND earth_box(ll_to_earth(")
            .bind(Bind::Float(c.lat))
            .push(", ")
            .bind(Bind::Float(c.lon))
            .push("), ")
            .bind(Bind::Float((km * 1010.0).max(1.0)))
            .push(") @> e.place");
    }
    if let Some(l) = &f.language {
        s.push(" AND e.languages @> ARRAY[").bind(Bind::Text(l.clone())).push("::text]");
    }
    if let Some(m) = f.mode {
        s.push(" AND (e.modes & ").bind(Bind::Int(mode_bit(m) as i16)).push("::smallint) <> 0");
    }
    s
}

const ROW: &str = "e.doctor_id, e.name, e.latitude, e.longitude";

fn row_of(r: &PgRow, with_free: bool, now: Option<Timestamp>) -> Result<SearchRow> {
    let next: Option<chrono::DateTime<chrono::Utc>> = r.try_get(4).map_err(map_err)?;
    let fresh_until: Option<chrono::DateTime<chrono::Utc>> = r.try_get(5).map_err(map_err)?;
    let fresh_until = fresh_until.map(from_ts).transpose()?;
    let bytes: Option<Vec<u8>> = if with_free { r.try_get(6).map_err(map_err)? } else { None };
    let free = match bytes {
        Some(b) => Some(FreeIndex::decode(&b).ok_or_else(|| StoreError::Internal("unreadable free times".into()))?),
        None => None,
    };
    Ok(SearchRow {
        doctor_id: DoctorId(r.try_get(0).map_err(map_err)?),
        name: r.try_get(1).map_err(map_err)?,
        position: Coordinates { lat: r.try_get(2).map_err(map_err)?, lon: r.try_get(3).map_err(map_err)? },
        next: next.map(from_ts).transpose()?,
        stale: matches!((now, fresh_until), (Some(now), Some(f)) if f < now),
        free,
    })
}

async fn fetch(
    tx: &mut sqlx::PgConnection,
    sql: &Sql,
    with_free: bool,
    now: Option<Timestamp>,
) -> Result<Vec<SearchRow>> {
    let rows = sql.query().fetch_all(&mut *tx).await.map_err(map_err)?;
    rows.iter().map(|r| row_of(r, with_free, now)).collect()
}

/// The rows `SELECT 1 FROM …` gives, counted up to [`COUNT_CAP`] + 1.
async fn count(tx: &mut sqlx::PgConnection, rows: &Sql) -> Result<u64> {
    let sql = Sql {
        text: format!("SELECT count(*) FROM ({} LIMIT {}) AS counted", rows.text, COUNT_CAP + 1),
        values: rows.values.clone(),
    };
    let row = sql.query().fetch_one(&mut *tx).await.map_err(map_err)?;
    let n: i64 = row.try_get(0).map_err(map_err)?;
    Ok(n as u64)
}

/// `SELECT <head> FROM <filter>`, to which conditions and an order are added.
fn select(head: &str, from: &Sql) -> Sql {
    Sql { text: format!("SELECT {head} FROM {}", from.text), values: from.values.clone() }
}

impl PgStore {
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }
}

#[async_trait]
impl SearchStore for PgStore {
    async fn search_candidates(&self, filter: &SearchFilter, fresh_at: Option<Timestamp>) -> Result<Vec<SearchRow>> {
        let next = next_column(filter.mode);
        let sql = match fresh_at {
            None => select(&format!("{ROW}, e.{next}, e.fresh_until, f.free"), &filtered(filter, true)),
            Some(at) => {
                // Free times only for the stale rows: the subquery runs for them alone.
                let mut head = Sql::default();
                head.push(&format!("SELECT {ROW}, e.{next}, e.fresh_until, CASE WHEN e.fresh_until < "))
                    .bind(Bind::Time(at))
                    .push(" THEN (SELECT s.free FROM search_free s WHERE s.doctor_id = e.doctor_id) END FROM ");
                filtered_after(head, filter, false)
            }
        };
        let mut tx = self.snapshot().await?;
        let rows = fetch(&mut tx, &sql, true, fresh_at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(rows)
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
        let next = next_column(filter.mode);
        let from = filtered(filter, false);
        let cols = format!("{ROW}, e.{next}, e.fresh_until");
        let fresh = |s: &mut Sql| {
            s.push(" AND (e.fresh_until IS NULL OR e.fresh_until >= ").bind(Bind::Time(now)).push(")");
        };
        let soon = |head: &str| {
            let mut s = select(head, &from);
            s.push(&format!(" AND e.{next} >= ")).bind(Bind::Time(now));
            s.push(&format!(" AND e.{next} < ")).bind(Bind::Time(to));
            fresh(&mut s);
            s
        };
        let mut soonest_sql = soon(&cols);
        match after {
            // Past the rows with a start: none of them left.
            Some(SearchAfter { next: None, .. }) => soonest_sql.push(" AND false"),
            Some(SearchAfter { next: Some(t), name, doctor_id }) => soonest_sql
                .push(&format!(" AND e.{next} >= "))
                .bind(Bind::Time(*t))
                .push(&format!(" AND (e.{next}, e.name, e.doctor_id) > ("))
                .bind(Bind::Time(*t))
                .push(", ")
                .bind(Bind::Text(name.clone()))
                .push(", ")
                .bind(Bind::Uuid(doctor_id.0))
                .push(")"),
            None => &mut soonest_sql,
        };
        soonest_sql.push(&format!(" ORDER BY e.{next}, e.name, e.doctor_id LIMIT ")).bind(Bind::Long(i64::from(limit)));
        let mut stale_sql = select(&format!("{cols}, f.free"), &filtered(filter, true));
        stale_sql.push(" AND e.fresh_until < ").bind(Bind::Time(now));
        let mut tx = self.snapshot().await?;
        let soonest = fetch(&mut tx, &soonest_sql, false, Some(now)).await?;
        let soonest_count = if without_slot.is_none() { count(&mut tx, &soon("1")).await? } else { 0 };
        let stale = fetch(&mut tx, &stale_sql, true, Some(now)).await?;
        let without = match without_slot {
            Some(n) if soonest.len() < limit as usize => {
                let mut s = select(&cols, &from);
                fresh(&mut s);
                s.push(&format!(" AND (e.{next} IS NULL OR e.{next} >= ")).bind(Bind::Time(to)).push(")");
                if let Some(SearchAfter { next: None, name, doctor_id }) = after {
                    s.push(" AND (e.name, e.doctor_id) > (")
                        .bind(Bind::Text(name.clone()))
                        .push(", ")
                        .bind(Bind::Uuid(doctor_id.0))
                        .push(")");
                }
                s.push(" ORDER BY e.name, e.doctor_id LIMIT ").bind(Bind::Long(i64::from(n)));
                fetch(&mut tx, &s, false, Some(now)).await?
            }
            _ => vec![],
        };
        let total = if without_slot.is_some() { count(&mut tx, &select("1", &from)).await? } else { 0 };
        tx.commit().await.map_err(map_err)?;
        Ok(IndexedSearch { soonest, soonest_count, stale, without_slot: without, total })
    }

    async fn put_search_entries(&self, entries: &[SearchEntry]) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        for e in entries {
            put(&mut tx, e).await?;
        }
        self.commit(tx).await
    }

    async fn search_entries_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DueEntry>> {
        let rows =
            sqlx::query("SELECT doctor_id, free FROM search_free WHERE refresh_at <= $1 ORDER BY refresh_at LIMIT $2")
                .bind(ts(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let bytes: Vec<u8> = r.try_get(1).map_err(map_err)?;
                let free =
                    FreeIndex::decode(&bytes).ok_or_else(|| StoreError::Internal("unreadable free times".into()))?;
                Ok(DueEntry { doctor_id: DoctorId(r.try_get(0).map_err(map_err)?), free })
            })
            .collect()
    }

    async fn advance_search_entries(&self, advances: &[Advance]) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        for a in advances {
            let moved = sqlx::query("UPDATE search_free SET refresh_at = $1 WHERE doctor_id = $2 AND computed_at = $3")
                .bind(ts(a.refresh_at))
                .bind(a.doctor_id.0)
                .bind(ts(a.computed_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if moved.rows_affected() == 1 {
                let c = indexed_columns(a.next, a.notice);
                sqlx::query(
                    "UPDATE search_entries SET next_any = $1, next_in_person = $2, next_online = $3, fresh_until = $4
                     WHERE doctor_id = $5",
                )
                .bind(c.any.map(ts))
                .bind(c.in_person.map(ts))
                .bind(c.online.map(ts))
                .bind(c.fresh_until.map(ts))
                .bind(a.doctor_id.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        self.commit(tx).await
    }

    async fn doctors_missing_from_search(&self, limit: u32) -> Result<Vec<DoctorId>> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT d.id FROM doctors d WHERE d.verification = 'verified'
               AND NOT EXISTS (SELECT 1 FROM search_free f WHERE f.doctor_id = d.id) LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(ids.into_iter().map(DoctorId).collect())
    }

    async fn doctors_by_id(&self, ids: &[DoctorId]) -> Result<Vec<(crate::DoctorRecord, crate::ClinicRecord)>> {
        super::directory::doctors_with_clinics(&self.pool, ids).await
    }

    async fn hold_expiries(&self, ids: &[DoctorId], now: Timestamp) -> Result<Vec<(DoctorId, Timestamp)>> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|d| d.0).collect();
        let rows = sqlx::query(
            "SELECT doctor_id, min(hold_expires_at) FROM appointments
             WHERE status = 'held' AND doctor_id = ANY($1) AND hold_expires_at > $2 GROUP BY doctor_id",
        )
        .bind(&ids)
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((DoctorId(r.try_get(0).map_err(map_err)?), from_ts(r.try_get(1).map_err(map_err)?)?)))
            .collect()
    }

    async fn search_entries_as_of(&self) -> Result<Option<Timestamp>> {
        let t: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar("SELECT max(computed_at) FROM search_free")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        t.map(from_ts).transpose()
    }
}

/// One doctor's rows replaced, unless fresher free times are stored; the
/// doctor's row of `search_free` is locked first, so two keepers of the
/// same doctor take turns.
async fn put(tx: &mut sqlx::PgConnection, e: &SearchEntry) -> Result<()> {
    let computed_at = ts(e.at);
    let placeholder = sqlx::query(
        "INSERT INTO search_free (doctor_id, computed_at, refresh_at, free) VALUES ($1, $2, 'infinity', '')
         ON CONFLICT (doctor_id) DO NOTHING",
    )
    .bind(e.doctor_id.0)
    .bind(computed_at);
    placeholder.execute(&mut *tx).await.map_err(map_err)?;
    let stored: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT computed_at FROM search_free WHERE doctor_id = $1 FOR UPDATE")
            .bind(e.doctor_id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
    if stored > computed_at {
        return Ok(());
    }
    sqlx::query("DELETE FROM search_entries WHERE doctor_id = $1")
        .bind(e.doctor_id.0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let Some(l) = &e.listing else {
        // A tombstone: a put computed before the doctor left cannot bring them back.
        sqlx::query("UPDATE search_free SET computed_at = $2, refresh_at = 'infinity', free = '' WHERE doctor_id = $1")
            .bind(e.doctor_id.0)
            .bind(computed_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        return Ok(());
    };
    let c = l.columns();
    let keys: Vec<&str> = l.specialty_keys().collect();
    sqlx::query(
        "INSERT INTO search_entries (doctor_id, specialty, name, latitude, longitude, languages, modes,
           next_any, next_in_person, next_online, fresh_until)
         SELECT $1, s, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM unnest($2::text[]) AS s",
    )
    .bind(e.doctor_id.0)
    .bind(&keys)
    .bind(&l.name)
    .bind(l.position.lat)
    .bind(l.position.lon)
    .bind(&l.languages)
    .bind(l.mode_bits() as i16)
    .bind(c.any.map(ts))
    .bind(c.in_person.map(ts))
    .bind(c.online.map(ts))
    .bind(c.fresh_until.map(ts))
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query("UPDATE search_free SET computed_at = $2, refresh_at = $3, free = $4 WHERE doctor_id = $1")
        .bind(e.doctor_id.0)
        .bind(ts(l.free.computed_at))
        .bind(ts(l.free.refresh_at(l.free.computed_at)))
        .bind(l.free.encode())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}
