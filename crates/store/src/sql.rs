//! Both SQL backends: SQLite (WAL, the embedded default) and PostgreSQL.
//!
//! P1 is the database's: SQLite triggers under `BEGIN IMMEDIATE` (one writer at
//! a time, across connections and processes), a PostgreSQL exclusion constraint
//! over time ranges. Both are named `appointments_no_overlap`.

use crate::values::*;
use crate::*;
use futures::TryStreamExt;
use jiff::Timestamp;
use medislot_domain::{
    AppointmentStatus, Coordinates, Membership, Mode, Policy, PostalAddress, Role, Schedule, TimeZoneName,
    VerificationState,
};
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    Any, AnyPool, Row, Transaction,
};
use std::str::FromStr;
use uuid::Uuid;

mod notifications;
mod regions;

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A write transaction.
struct WriteTx {
    tx: Transaction<'static, Any>,
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// The SQL text is written with `?` placeholders and numbered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
}

impl Dialect {
    /// The dialect's form of a statement: PostgreSQL numbers its placeholders
    /// (`$1`, `$2`…) and calls SQLite's `instr` `strpos`.
    pub fn sql(self, sql: &str) -> String {
        match self {
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out.replace("instr(", "strpos(")
            }
        }
    }
}

/// The PostgreSQL backend, over sqlx's runtime-generic driver.
pub struct SqlStore {
    pool: AnyPool,
    d: Dialect,
    /// Holds this process released because they ran out (committed), for metrics.
    holds_expired: std::sync::atomic::AtomicU64,
}

impl SqlStore {
    pub async fn connect(url: &str, options: &crate::ConnectOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let d = Dialect::Postgres;
        let busy_ms = options.busy_timeout.as_millis();
        let statement_ms = options.statement_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.busy_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    let setup =
                        [format!("SET statement_timeout = {statement_ms}"), format!("SET lock_timeout = {busy_ms}")];
                    for stmt in setup {
                        sqlx::query(&stmt).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(map_err)?;
        let store = Self { pool, d, holds_expired: Default::default() };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        POSTGRES_MIGRATIONS.run(&self.pool).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    /// One row by a text key, decoded, or `None`.
    async fn optional<T>(&self, sql: &str, key: String, decode: fn(&AnyRow) -> Result<T>) -> Result<Option<T>> {
        let sql = self.d.sql(sql);
        let row = sqlx::query(&sql).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(decode).transpose()
    }

    /// A write transaction: READ COMMITTED, with per-doctor advisory locks
    /// taken by the writes that read before they write (see [`Self::lock`]).
    async fn write_tx(&self) -> Result<WriteTx> {
        Ok(WriteTx { tx: self.pool.begin().await.map_err(map_err)? })
    }

    /// One autocommit write.
    async fn execute_write<'q>(
        &self,
        query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult> {
        query.execute(&self.pool).await.map_err(map_err)
    }

    async fn insert_user(&self, tx: &mut WriteTx, u: &UserRecord) -> Result<()> {
        sqlx::query(
            &self
                .d
                .sql("INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
        )
        .bind(u.id.to_string())
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(&u.name)
        .bind(u.created_at.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_clinic(&self, tx: &mut WriteTx, c: &ClinicRecord, admin: UserId) -> Result<()> {
        sqlx::query(&self.d.sql(
            "INSERT INTO clinics (id, name, address, city, district, postal_code, country, phone, latitude, longitude,
                                  time_zone, region, policy, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(&c.address)
        .bind(&c.postal.city)
        .bind(&c.postal.district)
        .bind(&c.postal.postal_code)
        .bind(&c.postal.country)
        .bind(&c.phone)
        .bind(c.position.lat)
        .bind(c.position.lon)
        .bind(c.time_zone.as_str())
        .bind(&c.region)
        .bind(c.policy.as_str())
        .bind(c.created_at.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        sqlx::query(&self.d.sql("INSERT INTO clinic_admins (clinic_id, user_id) VALUES (?, ?)"))
            .bind(c.id.to_string())
            .bind(admin.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_doctor(&self, tx: &mut WriteTx, d: &DoctorRecord) -> Result<()> {
        let sql = self.d.sql(
            "INSERT INTO doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                                  verification, verification_reason, membership, schedule, version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let query = sqlx::query(&sql);
        bind_profile(query.bind(d.id.to_string()), d)
            .bind(d.version)
            .bind(d.created_at.to_string())
            .bind(d.updated_at.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        self.write_tags(tx, d).await
    }

    /// A booked appointment from seed data: no audit or outbox rows (nothing happened to it).
    async fn insert_seeded_appointment(&self, tx: &mut WriteTx, a: &AppointmentRecord) -> Result<()> {
        sqlx::query(&self.d.sql(
            "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                       origin_region, hold_expires_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        ))
        .bind(a.id.to_string())
        .bind(a.doctor_id.to_string())
        .bind(a.patient_id.to_string())
        .bind(secs(a.start))
        .bind(secs(a.end))
        .bind(a.mode.as_str())
        .bind(&a.reason)
        .bind(a.status.as_str())
        .bind(a.version)
        .bind(&a.origin_region)
        .bind(a.created_at.to_string())
        .bind(a.updated_at.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Commits a write. On PostgreSQL the statement timeout is lifted for the
    /// COMMIT alone: a COMMIT cancelled while it waits for the synchronous
    /// standby still reports success — the change is committed on the primary
    /// but perhaps on no standby — and acknowledging that would let a failover
    /// lose a booking the patient was told about. A COMMIT that never returns
    /// is honest instead: the client sees no answer, and its retry with the same
    /// Idempotency-Key is answered from whatever the database really holds.
    async fn commit(&self, mut tx: WriteTx) -> Result<()> {
        {
            sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.tx.commit().await.map_err(map_err)
    }

    /// Whether the write would surely end in "slot taken": a committed, live
    /// appointment of someone else overlaps it, and neither an earlier use of
    /// the request's Idempotency-Key (a replay) nor the patient's own holds
    /// (a confirmation, or "too many holds") could decide otherwise. Read in
    /// one statement, so from one snapshot. The losers of a race for a slot
    /// are answered from this read instead of queueing for the write lock one
    /// after another; the write itself still relies on the database's overlap
    /// constraint alone (P1), whatever this read said.
    async fn plainly_taken(&self, cmd: &PlaceAppointment) -> Result<bool> {
        if !matches!(cmd.status, AppointmentStatus::Booked | AppointmentStatus::Held) {
            return Ok(false);
        }
        let row = sqlx::query(&self.d.sql(&format!(
            "SELECT
               (SELECT count(*) FROM idempotency_keys WHERE user_id = ? AND key = ?) AS seen,
               (SELECT count(*) FROM appointments WHERE patient_id = ? AND status = 'held') AS own_holds,
               (SELECT count(*) FROM appointments a
                 WHERE a.doctor_id = ? AND a.status IN {ACTIVE} AND a.start_at < ? AND a.end_at > ?
                   AND NOT (a.status = 'held' AND a.hold_expires_at <= ?)) AS taken"
        )))
        .bind(cmd.patient_id.to_string())
        .bind(cmd.idempotency.as_ref().map(|i| i.key.as_str()))
        .bind(cmd.patient_id.to_string())
        .bind(cmd.doctor_id.to_string())
        .bind(secs(cmd.end))
        .bind(secs(cmd.start))
        .bind(secs(cmd.now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let (seen, own_holds, taken): (i64, i64, i64) =
            (get(&row, "seen")?, get(&row, "own_holds")?, get(&row, "taken")?);
        Ok(seen == 0 && own_holds == 0 && taken > 0)
    }

    async fn place_once(&self, cmd: &PlaceAppointment) -> Result<Placed> {
        let mut tx = self.write_tx().await?;
        let patient = cmd.patient_id.to_string();
        // Same order everywhere (key, then doctor): concurrent retries of one key
        // wait for the first to commit, then replay it.
        if let Some(idem) = &cmd.idempotency {
            self.lock(&mut tx, &format!("idempotency:{patient}:{}", idem.key)).await?;
        }
        self.lock(&mut tx, &format!("doctor:{}", cmd.doctor_id)).await?;
        let expired = self.expire_holds(&mut tx, cmd.doctor_id, cmd.now).await?;
        if let Some(idem) = &cmd.idempotency {
            let seen = sqlx::query(&self.d.sql(
                "SELECT fingerprint, appointment_id, status_code FROM idempotency_keys WHERE user_id = ? AND key = ?",
            ))
            .bind(&patient)
            .bind(&idem.key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if let Some(seen) = seen {
                if get::<String>(&seen, "fingerprint")? != idem.fingerprint {
                    return Err(StoreError::IdempotencyMismatch);
                }
                let id = AppointmentId(uuid(&get::<String>(&seen, "appointment_id")?)?);
                let status_code: i64 = get(&seen, "status_code")?;
                let appointment = self.appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                self.commit(tx).await?;
                self.count_expired(expired);
                return Ok(Placed::Replayed { appointment, status_code: status_code as u16 });
            }
        }

        let own_hold = if cmd.status == AppointmentStatus::Booked {
            let row = sqlx::query(&self.d.sql(&format!(
                "SELECT {APPT_COLS} FROM appointments a
                 WHERE a.doctor_id = ? AND a.patient_id = ? AND a.start_at = ? AND a.status = 'held'"
            )))
            .bind(cmd.doctor_id.to_string())
            .bind(&patient)
            .bind(secs(cmd.start))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            row.as_ref().map(appointment_row).transpose()?
        } else {
            let holds: i64 = sqlx::query_scalar(&self.d.sql(
                "SELECT count(*) FROM appointments WHERE patient_id = ? AND status = 'held' AND hold_expires_at > ?",
            ))
            .bind(&patient)
            .bind(secs(cmd.now))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            if holds >= i64::from(cmd.max_holds) {
                return Err(StoreError::TooManyHolds(cmd.max_holds));
            }
            None
        };

        let now = cmd.now.to_string();
        let created = if let Some(hold) = own_hold {
            // Compare-and-swap: only a still-held row of this version becomes booked.
            let done = sqlx::query(&self.d.sql(
                "UPDATE appointments SET status = 'booked', end_at = ?, mode = ?, reason = ?, hold_expires_at = NULL,
                        version = version + 1, updated_at = ?
                 WHERE id = ? AND status = 'held' AND version = ?",
            ))
            .bind(secs(cmd.end))
            .bind(cmd.mode.as_str())
            .bind(&cmd.reason)
            .bind(&now)
            .bind(hold.id.to_string())
            .bind(hold.version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::SlotTaken);
            }
            let after = self.appointment_in(&mut tx, hold.id).await?.ok_or(StoreError::NotFound)?;
            let what = Event {
                actor: Some(cmd.patient_id),
                at: cmd.now,
                topic: "appointment.booked",
                detail: Some("hold confirmed"),
            };
            self.record_change(&mut tx, Some(&hold), &after, what).await?;
            after
        } else {
            sqlx::query(&self.d.sql(
                "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                           origin_region, hold_expires_at, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
            ))
            .bind(cmd.id.to_string())
            .bind(cmd.doctor_id.to_string())
            .bind(&patient)
            .bind(secs(cmd.start))
            .bind(secs(cmd.end))
            .bind(cmd.mode.as_str())
            .bind(&cmd.reason)
            .bind(cmd.status.as_str())
            .bind(&cmd.origin_region)
            .bind(cmd.hold_expires_at.map(secs))
            .bind(&now)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            let after = self.appointment_in(&mut tx, cmd.id).await?.ok_or(StoreError::NotFound)?;
            let event = if cmd.status == AppointmentStatus::Held { "appointment.held" } else { "appointment.booked" };
            let what = Event { actor: Some(cmd.patient_id), at: cmd.now, topic: event, detail: None };
            self.record_change(&mut tx, None, &after, what).await?;
            after
        };

        if let Some(idem) = &cmd.idempotency {
            sqlx::query(&self.d.sql(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, appointment_id, status_code, created_at)
                 VALUES (?, ?, ?, ?, 201, ?)",
            ))
            .bind(&patient)
            .bind(&idem.key)
            .bind(&idem.fingerprint)
            .bind(created.id.to_string())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        self.commit(tx).await?;
        self.count_expired(expired);
        Ok(Placed::Created(created))
    }

    async fn modify_once(
        &self,
        id: AppointmentId,
        now: Timestamp,
        actor: Option<UserId>,
        decide: &Decide,
    ) -> Result<AppointmentRecord> {
        let mut tx = self.write_tx().await?;
        let Some(first) = self.appointment_in(&mut tx, id).await? else {
            return Err(StoreError::NotFound);
        };
        self.lock(&mut tx, &format!("doctor:{}", first.doctor_id)).await?;
        let expired = self.expire_holds(&mut tx, first.doctor_id, now).await?;
        let before = self.appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let change = decide(&before)?;
        let cancelled = change.status == AppointmentStatus::Cancelled;
        let done = sqlx::query(&self.d.sql(
            "UPDATE appointments SET status = ?, start_at = ?, end_at = ?, cancel_reason = ?, cancelled_by = ?,
                    hold_expires_at = CASE WHEN ? = 'held' THEN hold_expires_at ELSE NULL END,
                    version = version + 1, updated_at = ?
             WHERE id = ? AND version = ?",
        ))
        .bind(change.status.as_str())
        .bind(secs(change.start))
        .bind(secs(change.end))
        .bind(if cancelled { change.cancel_reason.clone() } else { before.cancel_reason.clone() })
        .bind(if cancelled { actor.map(|a| a.to_string()) } else { None })
        .bind(change.status.as_str())
        .bind(now.to_string())
        .bind(id.to_string())
        .bind(before.version)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::VersionMismatch { current: before.version });
        }
        let after = self.appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let what = Event { actor, at: now, topic: change.event, detail: change.detail.as_deref() };
        self.record_change(&mut tx, Some(&before), &after, what).await?;
        self.commit(tx).await?;
        self.count_expired(expired);
        Ok(after)
    }

    /// Serializes writers of one key (a doctor, an idempotency key) for the rest
    /// of the transaction on PostgreSQL; SQLite already holds its write lock.
    /// The overlap constraint, not this lock, is what guarantees P1.
    async fn lock(&self, tx: &mut WriteTx, key: &str) -> Result<()> {
        {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))::text AS locked")
                .bind(key)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}

/// Runs a write transaction again when the database aborted it for a
/// transient conflict, a bounded number of times with a short backoff.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    const ATTEMPTS: u32 = 4;
    let mut n = 0;
    loop {
        n += 1;
        match attempt().await {
            Err(StoreError::Retry(why)) if n < ATTEMPTS => {
                tracing::debug!(attempt = n, %why, "retrying a transaction");
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(n))).await;
            }
            Err(StoreError::Retry(why)) => return Err(StoreError::Unavailable(why)),
            other => return other,
        }
    }
}

/// One place where the databases' errors become the store's: the overlap
/// constraint means "slot taken", a unique index names its field, a lock wait
/// or connection that gave out means "unavailable, retry".
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = db.message();
            let code = db.code().unwrap_or_default();
            let constraint = db.constraint().unwrap_or_default();
            let names = |needle: &str| msg.contains(needle) || constraint.contains(needle);
            if names("appointments_no_overlap") || code == "23P01" {
                StoreError::SlotTaken
            } else if names("users.email") || names("users_email_key") {
                StoreError::Duplicate("email")
            } else if names("doctors.user_id") || names("doctors_user_id_key") {
                StoreError::Duplicate("user_id")
            } else if matches!(code.as_ref(), "40001" | "40P01") {
                // serialization failure, deadlock: worth retrying at once
                StoreError::Retry(msg.to_string())
            } else if msg.contains("database is locked")
                || msg.contains("database is busy")
                // lock or statement timeout, shutting down, starting up, too many connections
                || matches!(code.as_ref(), "55P03" | "57014" | "57P01" | "57P03" | "53300")
            {
                StoreError::Unavailable(msg.to_string())
            } else {
                StoreError::Internal(msg.to_string())
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn get<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(row: &'r AnyRow, col: &str) -> Result<T> {
    row.try_get(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

fn user_row(row: &AnyRow) -> Result<UserRecord> {
    let role: String = get(row, "u_role")?;
    Ok(UserRecord {
        id: UserId(uuid(&get::<String>(row, "u_id")?)?),
        email: get(row, "u_email")?,
        password_hash: get(row, "u_password_hash")?,
        role: Role::from_str(&role).map_err(|e| StoreError::Internal(e.to_string()))?,
        name: get(row, "u_name")?,
        created_at: text_ts(&get::<String>(row, "u_created_at")?)?,
    })
}

fn clinic_row(row: &AnyRow) -> Result<ClinicRecord> {
    let internal = |e: medislot_domain::Invalid| StoreError::Internal(e.to_string());
    Ok(ClinicRecord {
        id: ClinicId(uuid(&get::<String>(row, "c_id")?)?),
        name: get(row, "c_name")?,
        address: get(row, "c_address")?,
        postal: PostalAddress {
            city: get(row, "c_city")?,
            district: get(row, "c_district")?,
            postal_code: get(row, "c_postal_code")?,
            country: get(row, "c_country")?,
        },
        phone: get(row, "c_phone")?,
        position: Coordinates { lat: get(row, "c_latitude")?, lon: get(row, "c_longitude")? },
        time_zone: TimeZoneName::parse("time_zone", &get::<String>(row, "c_time_zone")?).map_err(internal)?,
        region: get(row, "c_region")?,
        policy: Policy::parse("policy", &get::<String>(row, "c_policy")?).map_err(internal)?,
        created_at: text_ts(&get::<String>(row, "c_created_at")?)?,
    })
}

fn doctor_row(row: &AnyRow) -> Result<DoctorRecord> {
    let verification: String = get(row, "d_verification")?;
    let user_id: Option<String> = get(row, "d_user_id")?;
    Ok(DoctorRecord {
        id: DoctorId(uuid(&get::<String>(row, "d_id")?)?),
        user_id: user_id.map(|u| uuid(&u).map(UserId)).transpose()?,
        clinic_id: ClinicId(uuid(&get::<String>(row, "d_clinic_id")?)?),
        name: get(row, "d_name")?,
        specialties: json(&get::<String>(row, "d_specialties")?)?,
        languages: json(&get::<String>(row, "d_languages")?)?,
        modes: json(&get::<String>(row, "d_modes")?)?,
        licence_number: get(row, "d_licence_number")?,
        bio: get(row, "d_bio")?,
        verification: VerificationState::parse(&verification)
            .ok_or_else(|| StoreError::Internal(format!("bad verification {verification}")))?,
        verification_reason: get(row, "d_verification_reason")?,
        membership: {
            let m: String = get(row, "d_membership")?;
            Membership::parse(&m).ok_or_else(|| StoreError::Internal(format!("bad membership {m}")))?
        },
        schedule: json::<Schedule>(&get::<String>(row, "d_schedule")?)?,
        version: get(row, "d_version")?,
        created_at: text_ts(&get::<String>(row, "d_created_at")?)?,
        updated_at: text_ts(&get::<String>(row, "d_updated_at")?)?,
    })
}

fn appointment_row(row: &AnyRow) -> Result<AppointmentRecord> {
    let internal = |e: medislot_domain::Invalid| StoreError::Internal(e.to_string());
    let expires: Option<i64> = get(row, "a_hold_expires_at")?;
    let cancelled_by: Option<String> = get(row, "a_cancelled_by")?;
    Ok(AppointmentRecord {
        id: AppointmentId(uuid(&get::<String>(row, "a_id")?)?),
        doctor_id: DoctorId(uuid(&get::<String>(row, "a_doctor_id")?)?),
        patient_id: UserId(uuid(&get::<String>(row, "a_patient_id")?)?),
        start: from_secs(get(row, "a_start_at")?)?,
        end: from_secs(get(row, "a_end_at")?)?,
        mode: Mode::parse("mode", &get::<String>(row, "a_mode")?).map_err(internal)?,
        reason: get(row, "a_reason")?,
        status: AppointmentStatus::parse("status", &get::<String>(row, "a_status")?).map_err(internal)?,
        version: get(row, "a_version")?,
        origin_region: get(row, "a_origin_region")?,
        hold_expires_at: expires.map(from_secs).transpose()?,
        cancel_reason: get(row, "a_cancel_reason")?,
        cancelled_by: cancelled_by.map(|u| uuid(&u).map(UserId)).transpose()?,
        created_at: text_ts(&get::<String>(row, "a_created_at")?)?,
        updated_at: text_ts(&get::<String>(row, "a_updated_at")?)?,
    })
}

fn outbox_row(r: &AnyRow) -> Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: get(r, "id")?,
        event_id: uuid(&get::<String>(r, "event_id")?)?,
        topic: get(r, "topic")?,
        payload: json(&get::<String>(r, "payload")?)?,
        created_at: text_ts(&get::<String>(r, "created_at")?)?,
    })
}

type Query<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Binds a doctor's profile columns, `user_id` through `schedule`, in table order
/// (the INSERT and the UPDATE list them alike).
fn bind_profile<'q>(query: Query<'q>, d: &'q DoctorRecord) -> Query<'q> {
    query
        .bind(d.user_id.map(|u| u.to_string()))
        .bind(d.clinic_id.to_string())
        .bind(&d.name)
        .bind(to_json(&d.specialties))
        .bind(to_json(&d.languages))
        .bind(to_json(&d.modes))
        .bind(&d.licence_number)
        .bind(&d.bio)
        .bind(d.verification.as_str())
        .bind(&d.verification_reason)
        .bind(d.membership.as_str())
        .bind(to_json(&d.schedule))
}

impl SqlStore {
    /// Releases the doctor's holds that expired by `now`, with their audit rows,
    /// so that their time is free for the write that follows in the same transaction.
    /// Releases the doctor's holds that ran out; returns how many.
    async fn expire_holds(&self, tx: &mut WriteTx, doctor: DoctorId, now: Timestamp) -> Result<u64> {
        let (d, n, at) = (doctor.to_string(), secs(now), now.to_string());
        sqlx::query(&self.d.sql(
            "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
             SELECT id, NULL, ?, 'held', 'cancelled', start_at, start_at, 'hold expired'
             FROM appointments WHERE doctor_id = ? AND status = 'held' AND hold_expires_at <= ?",
        ))
        .bind(&at)
        .bind(&d)
        .bind(n)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        let done = sqlx::query(&self.d.sql(
            "UPDATE appointments SET status = 'cancelled', cancel_reason = 'hold expired', hold_expires_at = NULL,
                    version = version + 1, updated_at = ?
             WHERE doctor_id = ? AND status = 'held' AND hold_expires_at <= ?",
        ))
        .bind(&at)
        .bind(&d)
        .bind(n)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    /// This region's own busy time: active appointments (holds that ran out
    /// excluded) and time off; not the replicas of other regions'.
    async fn own_busy(
        &self,
        doctors: &[DoctorId],
        window: Interval,
        now: Timestamp,
    ) -> Result<Vec<(DoctorId, Interval)>> {
        let mut out = Vec::new();
        // SQLite caps bound parameters; large searches go in chunks.
        for chunk in doctors.chunks(400) {
            let ph = placeholders(chunk.len());
            let sql = format!(
                "SELECT doctor_id, start_at, end_at FROM appointments
                 WHERE doctor_id IN ({ph}) AND status IN {ACTIVE}
                   AND NOT (status = 'held' AND hold_expires_at <= ?)
                   AND start_at < ? AND end_at > ?
                 UNION ALL
                 SELECT doctor_id, start_at, end_at FROM time_off
                 WHERE doctor_id IN ({ph}) AND start_at < ? AND end_at > ?"
            );
            let sql = self.d.sql(&sql);
            // Not kept prepared: every list length is another statement, and each
            // connection would hold a hundred of them.
            let mut q = sqlx::query(&sql).persistent(false);
            for d in chunk {
                q = q.bind(d.to_string());
            }
            q = q.bind(secs(now)).bind(secs(window.end)).bind(secs(window.start));
            for d in chunk {
                q = q.bind(d.to_string());
            }
            q = q.bind(secs(window.end)).bind(secs(window.start));
            for r in q.fetch_all(&self.pool).await.map_err(map_err)? {
                let d = DoctorId(uuid(&get::<String>(&r, "doctor_id")?)?);
                out.push((
                    d,
                    Interval { start: from_secs(get(&r, "start_at")?)?, end: from_secs(get(&r, "end_at")?)? },
                ));
            }
        }
        Ok(out)
    }

    fn count_expired(&self, n: u64) {
        self.holds_expired.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    async fn appointment_in(&self, tx: &mut WriteTx, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
        let row = sqlx::query(&self.d.sql(&format!("SELECT {APPT_COLS} FROM appointments a WHERE a.id = ?")))
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(appointment_row).transpose()
    }

    /// The audit row and the outbox row that accompany every appointment change.
    async fn record_change(
        &self,
        tx: &mut WriteTx,
        before: Option<&AppointmentRecord>,
        after: &AppointmentRecord,
        what: Event<'_>,
    ) -> Result<()> {
        let Event { actor, at, topic: event, detail } = what;
        sqlx::query(&self.d.sql(
            "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(after.id.to_string())
        .bind(actor.map(|a| a.to_string()))
        .bind(at.to_string())
        .bind(before.map(|b| b.status.as_str()))
        .bind(after.status.as_str())
        .bind(before.map(|b| secs(b.start)))
        .bind(secs(after.start))
        .bind(detail)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        let event_id = Uuid::now_v7();
        let payload = crate::outbox_payload(event_id, event, before, after, actor, at);
        sqlx::query(&self.d.sql("INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)"))
            .bind(event_id.to_string())
            .bind(event)
            .bind(payload.to_string())
            .bind(at.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn write_tags(&self, tx: &mut WriteTx, d: &DoctorRecord) -> Result<()> {
        sqlx::query(&self.d.sql("DELETE FROM doctor_tags WHERE doctor_id = ?"))
            .bind(d.id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        let tags = d.specialties.iter().map(|s| ("specialty", s)).chain(d.languages.iter().map(|l| ("language", l)));
        for (kind, value) in tags {
            sqlx::query(&self.d.sql("INSERT INTO doctor_tags (doctor_id, kind, value) VALUES (?, ?, ?)"))
                .bind(d.id.to_string())
                .bind(kind)
                .bind(value)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            pool_connections: self.pool.size(),
            pool_idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            holds_expired: self.holds_expired.load(std::sync::atomic::Ordering::Relaxed),
            ..StoreStats::default()
        }
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query(&self.d.sql("SELECT 1")).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn create_user(&self, u: &UserRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        self.insert_user(&mut tx, u).await?;
        self.commit(tx).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        self.optional(&format!("SELECT {USER_COLS} FROM users u WHERE u.email = ?"), email.to_string(), user_row).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        self.optional(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?"), id.to_string(), user_row).await
    }

    async fn create_token(&self, token_hash: &str, user: UserId, expires_at: Timestamp) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            &self.d.sql("INSERT INTO tokens (token_hash, user_id, expires_at, created_at) VALUES (?, ?, ?, ?)"),
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(secs(expires_at))
        .bind(Timestamp::now().to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await
    }

    async fn user_by_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&self.d.sql(&format!(
            "SELECT {USER_COLS} FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ? AND t.revoked = 0 AND t.expires_at > ?"
        )))
        .bind(token_hash)
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&self.d.sql("UPDATE tokens SET revoked = 1 WHERE token_hash = ?"))
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        self.commit(tx).await
    }

    async fn create_clinic(&self, c: &ClinicRecord, admin: UserId) -> Result<()> {
        let mut tx = self.write_tx().await?;
        self.insert_clinic(&mut tx, c, admin).await?;
        self.commit(tx).await
    }

    async fn clinic(&self, id: ClinicId) -> Result<Option<ClinicRecord>> {
        self.optional(&format!("SELECT {CLINIC_COLS} FROM clinics c WHERE c.id = ?"), id.to_string(), clinic_row).await
    }

    async fn clinics_administered_by(&self, user: UserId) -> Result<Vec<ClinicId>> {
        let rows = sqlx::query(&self.d.sql("SELECT clinic_id FROM clinic_admins WHERE user_id = ? ORDER BY clinic_id"))
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Ok(ClinicId(uuid(&get::<String>(r, "clinic_id")?)?))).collect()
    }

    async fn create_doctor(&self, d: &DoctorRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        self.insert_doctor(&mut tx, d).await?;
        self.commit(tx).await
    }

    async fn doctor(&self, id: DoctorId) -> Result<Option<DoctorRecord>> {
        self.optional(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.id = ?"), id.to_string(), doctor_row).await
    }

    async fn doctor_of_user(&self, user: UserId) -> Result<Option<DoctorRecord>> {
        self.optional(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.user_id = ?"), user.to_string(), doctor_row)
            .await
    }

    async fn doctors_with_licence(&self, licence_number: &str) -> Result<Vec<DoctorRecord>> {
        let sql = self.d.sql(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.licence_number = ? ORDER BY d.id"));
        let rows = sqlx::query(&sql).bind(licence_number).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(doctor_row).collect()
    }

    async fn update_doctor(&self, d: &DoctorRecord, expected_version: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let sql = self.d.sql(
            "UPDATE doctors SET user_id = ?, clinic_id = ?, name = ?, specialties = ?, languages = ?, modes = ?,
                    licence_number = ?, bio = ?, verification = ?, verification_reason = ?, membership = ?, schedule = ?,
                    version = ?, updated_at = ?
             WHERE id = ? AND version = ?",
        );
        let query = sqlx::query(&sql);
        let done = bind_profile(query, d)
            .bind(expected_version + 1)
            .bind(d.updated_at.to_string())
            .bind(d.id.to_string())
            .bind(expected_version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            let current: Option<i64> = sqlx::query_scalar(&self.d.sql("SELECT version FROM doctors WHERE id = ?"))
                .bind(d.id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            return Err(match current {
                Some(current) => StoreError::VersionMismatch { current },
                None => StoreError::NotFound,
            });
        }
        self.write_tags(&mut tx, d).await?;
        self.commit(tx).await
    }

    async fn add_time_off(&self, t: &TimeOffRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&self.d.sql(
            "INSERT INTO time_off (id, doctor_id, start_at, end_at, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(t.id.to_string())
        .bind(t.doctor_id.to_string())
        .bind(secs(t.interval.start))
        .bind(secs(t.interval.end))
        .bind(&t.reason)
        .bind(Timestamp::now().to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await
    }

    async fn list_doctors(
        &self,
        clinic: Option<ClinicId>,
        verification: Option<VerificationState>,
    ) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        let sql = self.d.sql(&format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE (? IS NULL OR d.clinic_id = ?) AND (? IS NULL OR d.verification = ?)
             ORDER BY d.name, d.id"
        ));
        let clinic = clinic.map(|c| c.to_string());
        let state = verification.map(|v| v.as_str().to_string());
        let rows = sqlx::query(&sql)
            .bind(clinic.clone())
            .bind(clinic)
            .bind(state.clone())
            .bind(state)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Ok((doctor_row(r)?, clinic_row(r)?))).collect()
    }

    async fn list_clinics(&self) -> Result<Vec<ClinicRecord>> {
        let sql = self.d.sql(&format!("SELECT {CLINIC_COLS} FROM clinics c ORDER BY c.name, c.id"));
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(clinic_row).collect()
    }

    async fn doctors_updated_since(&self, since: Timestamp) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        // One second earlier: a change at 12:00:00.5 sorts before "12:00:00Z" as text.
        let from = (since - jiff::SignedDuration::from_secs(1)).to_string();
        let sql = self.d.sql(&format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE d.updated_at >= ?"
        ));
        let rows = sqlx::query(&sql).bind(from).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(|r| Ok((doctor_row(r)?, clinic_row(r)?))).collect()
    }

    async fn search_doctors(&self, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        // A specialty drives the query from its tag index (a tenth of the
        // directory, typically); nearly every doctor is verified, so starting
        // from the verification index would read them all.
        let mut sql = if q.specialty.is_some() {
            format!(
                "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctor_tags s
                 JOIN doctors d ON d.id = s.doctor_id JOIN clinics c ON c.id = d.clinic_id
                 WHERE s.kind = 'specialty' AND s.value = ? AND d.verification = 'verified'"
            )
        } else {
            format!(
                "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
                 WHERE d.verification = 'verified'"
            )
        };
        if q.language.is_some() {
            sql.push_str(" AND EXISTS (SELECT 1 FROM doctor_tags t WHERE t.doctor_id = d.id AND t.kind = 'language' AND t.value = ?)");
        }
        if q.mode.is_some() {
            sql.push_str(" AND instr(d.modes, ?) > 0");
        }
        if q.bounding_box.is_some() {
            sql.push_str(" AND c.latitude BETWEEN ? AND ? AND c.longitude BETWEEN ? AND ?");
        }
        if q.exclude_doctor.is_some() {
            sql.push_str(" AND d.id <> ?");
        }
        let sql = self.d.sql(&sql);
        let mut query = sqlx::query(&sql);
        if let Some(s) = &q.specialty {
            query = query.bind(s);
        }
        if let Some(l) = &q.language {
            query = query.bind(l);
        }
        if let Some(m) = q.mode {
            query = query.bind(format!("\"{}\"", m.as_str()));
        }
        if let Some((a, b, c, d)) = q.bounding_box {
            query = query.bind(a).bind(b).bind(c).bind(d);
        }
        if let Some(d) = q.exclude_doctor {
            query = query.bind(d.to_string());
        }
        // Decoded row by row: the whole directory's raw rows are never held at once.
        let mut rows = query.fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            out.push((doctor_row(&r)?, clinic_row(&r)?));
        }
        Ok(out)
    }

    async fn busy(&self, doctors: &[DoctorId], window: Interval, now: Timestamp) -> Result<Vec<(DoctorId, Interval)>> {
        let mut out = self.own_busy(doctors, window, now).await?;
        for chunk in doctors.chunks(400) {
            let ph = placeholders(chunk.len());
            let sql = self.d.sql(&format!(
                "SELECT doctor_id, start_at, end_at FROM replica_busy
                 WHERE doctor_id IN ({ph}) AND start_at < ? AND end_at > ?"
            ));
            let mut q = sqlx::query(&sql).persistent(false);
            for d in chunk {
                q = q.bind(d.to_string());
            }
            q = q.bind(secs(window.end)).bind(secs(window.start));
            for r in q.fetch_all(&self.pool).await.map_err(map_err)? {
                let d = DoctorId(uuid(&get::<String>(&r, "doctor_id")?)?);
                out.push((
                    d,
                    Interval { start: from_secs(get(&r, "start_at")?)?, end: from_secs(get(&r, "end_at")?)? },
                ));
            }
        }
        Ok(out)
    }

    async fn place(&self, cmd: &PlaceAppointment) -> Result<Placed> {
        if self.plainly_taken(cmd).await? {
            return Err(StoreError::SlotTaken);
        }
        retrying(|| self.place_once(cmd)).await
    }

    async fn modify_appointment(
        &self,
        id: AppointmentId,
        now: Timestamp,
        actor: Option<UserId>,
        decide: Decide,
    ) -> Result<AppointmentRecord> {
        retrying(|| self.modify_once(id, now, actor, &decide)).await
    }

    async fn appointment(&self, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
        self.optional(
            &format!("SELECT {APPT_COLS} FROM appointments a WHERE a.id = ?"),
            id.to_string(),
            appointment_row,
        )
        .await
    }

    async fn list_appointments(&self, q: &AppointmentQuery) -> Result<(Vec<AppointmentRecord>, u64)> {
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        match &q.scope {
            Scope::Patient(p) => {
                conds.push("a.patient_id = ?".into());
                args.push(Arg::Text(p.to_string()));
            }
            Scope::Doctor(d) => {
                conds.push("a.doctor_id = ?".into());
                args.push(Arg::Text(d.to_string()));
            }
            Scope::Clinics(cs) => {
                if cs.is_empty() {
                    return Ok((vec![], 0));
                }
                conds.push(format!(
                    "a.doctor_id IN (SELECT id FROM doctors WHERE clinic_id IN ({}))",
                    placeholders(cs.len())
                ));
                args.extend(cs.iter().map(|c| Arg::Text(c.to_string())));
            }
            Scope::All => {}
        }
        if let Some(d) = q.doctor {
            conds.push("a.doctor_id = ?".into());
            args.push(Arg::Text(d.to_string()));
        }
        if let Some(s) = q.status {
            conds.push("a.status = ?".into());
            args.push(Arg::Text(s.as_str().into()));
        }
        if let Some(f) = q.from {
            conds.push("a.end_at > ?".into());
            args.push(Arg::Int(secs(f)));
        }
        if let Some(t) = q.to {
            conds.push("a.start_at < ?".into());
            args.push(Arg::Int(secs(t)));
        }
        let wher = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let count_sql = self.d.sql(&format!("SELECT count(*) AS n FROM appointments a {wher}"));
        let list_sql = self
            .d
            .sql(&format!("SELECT {APPT_COLS} FROM appointments a {wher} ORDER BY a.start_at, a.id LIMIT ? OFFSET ?"));
        let bind_all = |sql| {
            args.iter().fold(sqlx::query(sql), |query, arg| match arg {
                Arg::Text(t) => query.bind(t.clone()),
                Arg::Int(i) => query.bind(*i),
            })
        };
        let total: i64 = get(&bind_all(&count_sql).fetch_one(&self.pool).await.map_err(map_err)?, "n")?;
        let rows = bind_all(&list_sql)
            .bind(i64::from(q.limit))
            .bind(q.offset as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows.iter().map(appointment_row).collect::<Result<Vec<_>>>()?;
        Ok((items, total as u64))
    }

    async fn audit_of(&self, id: AppointmentId) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(&self.d.sql(
            "SELECT appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail
             FROM audit_log WHERE appointment_id = ? ORDER BY id",
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let internal = |e: medislot_domain::Invalid| StoreError::Internal(e.to_string());
        rows.iter()
            .map(|r| {
                let actor: Option<String> = get(r, "actor_id")?;
                let from_status: Option<String> = get(r, "from_status")?;
                let from_start: Option<i64> = get(r, "from_start")?;
                let to_start: Option<i64> = get(r, "to_start")?;
                Ok(AuditRecord {
                    appointment_id: id,
                    actor_id: actor.map(|a| uuid(&a).map(UserId)).transpose()?,
                    at: text_ts(&get::<String>(r, "at")?)?,
                    from_status: from_status
                        .map(|s| AppointmentStatus::parse("from_status", &s))
                        .transpose()
                        .map_err(internal)?,
                    to_status: AppointmentStatus::parse("to_status", &get::<String>(r, "to_status")?)
                        .map_err(internal)?,
                    from_start: from_start.map(from_secs).transpose()?,
                    to_start: to_start.map(from_secs).transpose()?,
                    detail: get(r, "detail")?,
                })
            })
            .collect()
    }

    async fn outbox_after(&self, after_id: i64, limit: u32) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(
            &self.d.sql("SELECT id, event_id, topic, payload, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?"),
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(outbox_row).collect()
    }

    async fn bulk_load(&self, data: &BulkLoad) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for u in &data.users {
            self.insert_user(&mut tx, u).await?;
        }
        for (c, admin) in &data.clinics {
            self.insert_clinic(&mut tx, c, *admin).await?;
        }
        for d in &data.doctors {
            self.insert_doctor(&mut tx, d).await?;
        }
        for a in &data.appointments {
            self.insert_seeded_appointment(&mut tx, a).await?;
        }
        self.commit(tx).await
    }

    async fn refresh_statistics(&self) -> Result<()> {
        // Until autovacuum gets to the freshly loaded tables (measured: not
        // within minutes), the planner guesses their sizes and picks plans
        // that took searches from 5 ms to a second.
        sqlx::query("ANALYZE").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn activity_since(&self, since: Timestamp, clinics: Option<&[ClinicId]>) -> Result<Activity> {
        // Change times are RFC 3339 text in UTC; one second of slack for fractions.
        let from = (since - jiff::SignedDuration::from_secs(1)).to_string();
        let scope = match clinics {
            None => String::new(),
            Some([]) => " AND 1 = 0".to_string(),
            Some(cs) => format!(
                " AND a.doctor_id IN (SELECT id FROM doctors WHERE clinic_id IN ({}))",
                vec!["?"; cs.len()].join(", ")
            ),
        };
        let sql = self.d.sql(&format!(
            "SELECT l.to_status AS status, CASE WHEN l.detail = 'hold expired' THEN 1 ELSE 0 END AS expired,
                    CASE WHEN l.from_status = l.to_status THEN 1 ELSE 0 END AS moved, count(*) AS n
             FROM audit_log l JOIN appointments a ON a.id = l.appointment_id
             WHERE l.at >= ?{scope}
             GROUP BY l.to_status, CASE WHEN l.detail = 'hold expired' THEN 1 ELSE 0 END,
                      CASE WHEN l.from_status = l.to_status THEN 1 ELSE 0 END"
        ));
        let mut q = sqlx::query(&sql).bind(from);
        for c in clinics.unwrap_or_default() {
            q = q.bind(c.to_string());
        }
        let mut out = Activity::default();
        for r in q.fetch_all(&self.pool).await.map_err(map_err)? {
            let n: i64 = get(&r, "n")?;
            let n = u64::try_from(n).unwrap_or(0);
            let expired: i64 = get(&r, "expired")?;
            let moved: i64 = get(&r, "moved")?;
            match get::<String>(&r, "status")?.as_str() {
                "held" => out.held += n,
                "booked" if moved == 1 => out.rescheduled += n,
                "booked" => out.booked += n,
                "cancelled" if expired == 1 => out.holds_expired += n,
                "cancelled" => out.cancelled += n,
                "noshow" => out.noshows += n,
                "fulfilled" => out.fulfilled += n,
                _ => {}
            }
        }
        let row = sqlx::query(
            &self.d.sql("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE delivered_at IS NULL"),
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let pending: i64 = get(&row, "n")?;
        out.outbox_pending = u64::try_from(pending).unwrap_or(0);
        let oldest: Option<String> = get(&row, "oldest")?;
        out.outbox_oldest = oldest.as_deref().map(text_ts).transpose()?;
        Ok(out)
    }

    async fn last_change(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        // Change times are stored as RFC 3339 text in UTC, which sorts as time
        // does to the second; holds expire at stored Unix seconds.
        let text: Option<String> = sqlx::query_scalar(&self.d.sql(
            "SELECT max(t) FROM (SELECT max(updated_at) AS t FROM doctors
                                 UNION ALL SELECT max(updated_at) FROM appointments
                                 UNION ALL SELECT max(created_at) FROM clinics
                                 UNION ALL SELECT max(created_at) FROM time_off) changes",
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let expired: Option<i64> = sqlx::query_scalar(
            &self.d.sql("SELECT max(hold_expires_at) FROM appointments WHERE status = 'held' AND hold_expires_at <= ?"),
        )
        .bind(secs(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let changed = text.as_deref().map(text_ts).transpose()?;
        let expired = expired.map(from_secs).transpose()?;
        Ok(changed.max(expired).map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t)))
    }

    async fn doctors_changed_since(&self, since: Timestamp, now: Timestamp) -> Result<Vec<DoctorId>> {
        // One second earlier: a change at 12:00:00.5 sorts before "12:00:00Z" as text.
        let from = (since - jiff::SignedDuration::from_secs(1)).to_string();
        let rows: Vec<String> = sqlx::query_scalar(&self.d.sql(
            "SELECT id FROM doctors WHERE updated_at >= ?
             UNION SELECT doctor_id FROM appointments WHERE updated_at >= ?
             UNION SELECT doctor_id FROM appointments WHERE status = 'held' AND hold_expires_at >= ? AND hold_expires_at <= ?
             UNION SELECT doctor_id FROM time_off WHERE created_at >= ?",
        ))
        .bind(&from)
        .bind(&from)
        .bind(secs(since) - 1)
        .bind(secs(now))
        .bind(&from)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(|id| Ok(DoctorId(uuid(id)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_conflicts_are_retried_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let ok = retrying(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(StoreError::Retry("40001".into()))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(ok.unwrap(), 2);
        calls.store(0, Ordering::SeqCst);
        let gave_up: Result<u32> = retrying(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Retry("40P01".into()))
        })
        .await;
        assert!(matches!(gave_up, Err(StoreError::Unavailable(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Other errors are not retried.
        calls.store(0, Ordering::SeqCst);
        let taken: Result<u32> = retrying(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::SlotTaken)
        })
        .await;
        assert!(matches!(taken, Err(StoreError::SlotTaken)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(Dialect::Postgres.sql("a = ? AND instr(b, ?) > 0"), "a = $1 AND strpos(b, $2) > 0");
    }
}
