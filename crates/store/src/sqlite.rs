//! The embedded default backend: SQLite in WAL mode.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`, taking SQLite's single
//! write lock up front: a read-then-write transaction can then never fail to
//! upgrade, and the overlap triggers (P1) see every committed row, whether the
//! competing writer is another connection or another process on the same file.

use crate::*;
use jiff::Timestamp;
use medislot_domain::{AppointmentStatus, Coordinates, Mode, Policy, Role, Schedule, TimeZoneName, VerificationState};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
    Row, Sqlite, SqlitePool, Transaction,
};
use std::str::FromStr;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const ACTIVE: &str = "('held', 'pending', 'booked', 'arrived')";

const USER_COLS: &str = "u.id AS u_id, u.email AS u_email, u.password_hash AS u_password_hash, u.role AS u_role, u.name AS u_name, u.created_at AS u_created_at";
const CLINIC_COLS: &str = "c.id AS c_id, c.name AS c_name, c.address AS c_address, c.latitude AS c_latitude, c.longitude AS c_longitude, c.time_zone AS c_time_zone, c.region AS c_region, c.policy AS c_policy, c.created_at AS c_created_at";
const DOCTOR_COLS: &str = "d.id AS d_id, d.user_id AS d_user_id, d.clinic_id AS d_clinic_id, d.name AS d_name, d.specialties AS d_specialties, d.languages AS d_languages, d.modes AS d_modes, d.licence_number AS d_licence_number, d.bio AS d_bio, d.verification AS d_verification, d.verification_reason AS d_verification_reason, d.schedule AS d_schedule, d.version AS d_version, d.created_at AS d_created_at, d.updated_at AS d_updated_at";
const APPT_COLS: &str = "a.id AS a_id, a.doctor_id AS a_doctor_id, a.patient_id AS a_patient_id, a.start_at AS a_start_at, a.end_at AS a_end_at, a.mode AS a_mode, a.reason AS a_reason, a.status AS a_status, a.version AS a_version, a.origin_region AS a_origin_region, a.hold_expires_at AS a_hold_expires_at, a.cancel_reason AS a_cancel_reason, a.cancelled_by AS a_cancelled_by, a.created_at AS a_created_at, a.updated_at AS a_updated_at";

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &crate::ConnectOptions) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad SQLite URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the client hears 201 (P2), even on power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.busy_timeout)
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        let store = Self { pool };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    /// One row by a text key, decoded, or `None`.
    async fn optional<T>(&self, sql: &str, key: String, decode: fn(&SqliteRow) -> Result<T>) -> Result<Option<T>> {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(decode).transpose()
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
    }
}

/// One place where SQLite's errors become the store's: the overlap trigger's
/// name means "slot taken", a unique index names its field, a lock wait that
/// ran out means "unavailable, retry".
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = db.message();
            if msg.contains("appointments_no_overlap") {
                StoreError::SlotTaken
            } else if msg.contains("UNIQUE constraint failed: users.email") {
                StoreError::Duplicate("email")
            } else if msg.contains("UNIQUE constraint failed: doctors.user_id") {
                StoreError::Duplicate("user_id")
            } else if msg.contains("database is locked") || msg.contains("database is busy") {
                StoreError::Unavailable(msg.to_string())
            } else {
                StoreError::Internal(msg.to_string())
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

fn from_secs(s: i64) -> Result<Timestamp> {
    Timestamp::from_second(s).map_err(|e| StoreError::Internal(format!("bad instant {s}: {e}")))
}

fn text_ts(s: &str) -> Result<Timestamp> {
    s.parse().map_err(|e| StoreError::Internal(format!("bad timestamp {s:?}: {e}")))
}

fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Internal(format!("bad id {s:?}: {e}")))
}

fn get<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(row: &'r SqliteRow, col: &str) -> Result<T> {
    row.try_get(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("bad JSON column: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn user_row(row: &SqliteRow) -> Result<UserRecord> {
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

fn clinic_row(row: &SqliteRow) -> Result<ClinicRecord> {
    let internal = |e: medislot_domain::Invalid| StoreError::Internal(e.to_string());
    Ok(ClinicRecord {
        id: ClinicId(uuid(&get::<String>(row, "c_id")?)?),
        name: get(row, "c_name")?,
        address: get(row, "c_address")?,
        position: Coordinates { lat: get(row, "c_latitude")?, lon: get(row, "c_longitude")? },
        time_zone: TimeZoneName::parse("time_zone", &get::<String>(row, "c_time_zone")?).map_err(internal)?,
        region: get(row, "c_region")?,
        policy: Policy::parse("policy", &get::<String>(row, "c_policy")?).map_err(internal)?,
        created_at: text_ts(&get::<String>(row, "c_created_at")?)?,
    })
}

fn doctor_row(row: &SqliteRow) -> Result<DoctorRecord> {
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
        schedule: json::<Schedule>(&get::<String>(row, "d_schedule")?)?,
        version: get(row, "d_version")?,
        created_at: text_ts(&get::<String>(row, "d_created_at")?)?,
        updated_at: text_ts(&get::<String>(row, "d_updated_at")?)?,
    })
}

fn appointment_row(row: &SqliteRow) -> Result<AppointmentRecord> {
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

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Releases the doctor's holds that expired by `now`, with their audit rows,
/// so that their time is free for the write that follows in the same transaction.
async fn expire_holds(tx: &mut Transaction<'static, Sqlite>, doctor: DoctorId, now: Timestamp) -> Result<()> {
    let (d, n, at) = (doctor.to_string(), secs(now), now.to_string());
    sqlx::query(
        "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
         SELECT id, NULL, ?, 'held', 'cancelled', start_at, start_at, 'hold expired'
         FROM appointments WHERE doctor_id = ? AND status = 'held' AND hold_expires_at <= ?",
    )
    .bind(&at)
    .bind(&d)
    .bind(n)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    sqlx::query(
        "UPDATE appointments SET status = 'cancelled', cancel_reason = 'hold expired', hold_expires_at = NULL,
                version = version + 1, updated_at = ?
         WHERE doctor_id = ? AND status = 'held' AND hold_expires_at <= ?",
    )
    .bind(&at)
    .bind(&d)
    .bind(n)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn appointment_in(tx: &mut Transaction<'static, Sqlite>, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
    let row = sqlx::query(&format!("SELECT {APPT_COLS} FROM appointments a WHERE a.id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
    row.as_ref().map(appointment_row).transpose()
}

/// The audit row and the outbox row that accompany every appointment change.
async fn record_change(
    tx: &mut Transaction<'static, Sqlite>,
    before: Option<&AppointmentRecord>,
    after: &AppointmentRecord,
    actor: Option<UserId>,
    at: Timestamp,
    event: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
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
    sqlx::query("INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)")
        .bind(event_id.to_string())
        .bind(event)
        .bind(payload.to_string())
        .bind(at.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

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
        .bind(to_json(&d.schedule))
}

async fn write_tags(tx: &mut Transaction<'static, Sqlite>, d: &DoctorRecord) -> Result<()> {
    sqlx::query("DELETE FROM doctor_tags WHERE doctor_id = ?")
        .bind(d.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let tags = d.specialties.iter().map(|s| ("specialty", s)).chain(d.languages.iter().map(|l| ("language", l)));
    for (kind, value) in tags {
        sqlx::query("INSERT INTO doctor_tags (doctor_id, kind, value) VALUES (?, ?, ?)")
            .bind(d.id.to_string())
            .bind(kind)
            .bind(value)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn create_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query("INSERT INTO users (id, email, password_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(u.id.to_string())
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(&u.name)
            .bind(u.created_at.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        self.optional(&format!("SELECT {USER_COLS} FROM users u WHERE u.email = ?"), email.to_string(), user_row).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        self.optional(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?"), id.to_string(), user_row).await
    }

    async fn create_token(&self, token_hash: &str, user: UserId, expires_at: Timestamp) -> Result<()> {
        sqlx::query("INSERT INTO tokens (token_hash, user_id, expires_at, created_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user.to_string())
            .bind(secs(expires_at))
            .bind(Timestamp::now().to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn user_by_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ? AND t.revoked = 0 AND t.expires_at > ?"
        ))
        .bind(token_hash)
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn create_clinic(&self, c: &ClinicRecord, admin: UserId) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO clinics (id, name, address, latitude, longitude, time_zone, region, policy, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(&c.address)
        .bind(c.position.lat)
        .bind(c.position.lon)
        .bind(c.time_zone.as_str())
        .bind(&c.region)
        .bind(c.policy.as_str())
        .bind(c.created_at.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("INSERT INTO clinic_admins (clinic_id, user_id) VALUES (?, ?)")
            .bind(c.id.to_string())
            .bind(admin.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn clinic(&self, id: ClinicId) -> Result<Option<ClinicRecord>> {
        self.optional(&format!("SELECT {CLINIC_COLS} FROM clinics c WHERE c.id = ?"), id.to_string(), clinic_row).await
    }

    async fn clinics_administered_by(&self, user: UserId) -> Result<Vec<ClinicId>> {
        let rows = sqlx::query("SELECT clinic_id FROM clinic_admins WHERE user_id = ? ORDER BY clinic_id")
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Ok(ClinicId(uuid(&get::<String>(r, "clinic_id")?)?))).collect()
    }

    async fn create_doctor(&self, d: &DoctorRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let query = sqlx::query(
            "INSERT INTO doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                                  verification, verification_reason, schedule, version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        bind_profile(query.bind(d.id.to_string()), d)
            .bind(d.version)
            .bind(d.created_at.to_string())
            .bind(d.updated_at.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        write_tags(&mut tx, d).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn doctor(&self, id: DoctorId) -> Result<Option<DoctorRecord>> {
        self.optional(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.id = ?"), id.to_string(), doctor_row).await
    }

    async fn doctor_of_user(&self, user: UserId) -> Result<Option<DoctorRecord>> {
        self.optional(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.user_id = ?"), user.to_string(), doctor_row)
            .await
    }

    async fn update_doctor(&self, d: &DoctorRecord, expected_version: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let query = sqlx::query(
            "UPDATE doctors SET user_id = ?, clinic_id = ?, name = ?, specialties = ?, languages = ?, modes = ?,
                    licence_number = ?, bio = ?, verification = ?, verification_reason = ?, schedule = ?,
                    version = ?, updated_at = ?
             WHERE id = ? AND version = ?",
        );
        let done = bind_profile(query, d)
            .bind(expected_version + 1)
            .bind(d.updated_at.to_string())
            .bind(d.id.to_string())
            .bind(expected_version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            let current: Option<i64> = sqlx::query_scalar("SELECT version FROM doctors WHERE id = ?")
                .bind(d.id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            return Err(match current {
                Some(current) => StoreError::VersionMismatch { current },
                None => StoreError::NotFound,
            });
        }
        write_tags(&mut tx, d).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn add_time_off(&self, t: &TimeOffRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO time_off (id, doctor_id, start_at, end_at, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(t.doctor_id.to_string())
        .bind(secs(t.interval.start))
        .bind(secs(t.interval.end))
        .bind(&t.reason)
        .bind(Timestamp::now().to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn search_doctors(&self, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        let mut sql = format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE d.verification = 'verified'"
        );
        if q.specialty.is_some() {
            sql.push_str(" AND EXISTS (SELECT 1 FROM doctor_tags t WHERE t.doctor_id = d.id AND t.kind = 'specialty' AND t.value = ?)");
        }
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
        let rows = query.fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(|r| Ok((doctor_row(r)?, clinic_row(r)?))).collect()
    }

    async fn busy(&self, doctors: &[DoctorId], window: Interval, now: Timestamp) -> Result<Vec<(DoctorId, Interval)>> {
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
            let mut q = sqlx::query(&sql);
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

    async fn place(&self, cmd: &PlaceAppointment) -> Result<Placed> {
        let mut tx = self.write_tx().await?;
        expire_holds(&mut tx, cmd.doctor_id, cmd.now).await?;
        let patient = cmd.patient_id.to_string();
        if let Some(idem) = &cmd.idempotency {
            let seen = sqlx::query(
                "SELECT fingerprint, appointment_id, status_code FROM idempotency_keys WHERE user_id = ? AND key = ?",
            )
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
                let appointment = appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                tx.commit().await.map_err(map_err)?;
                return Ok(Placed::Replayed { appointment, status_code: status_code as u16 });
            }
        }

        let own_hold = if cmd.status == AppointmentStatus::Booked {
            let row = sqlx::query(&format!(
                "SELECT {APPT_COLS} FROM appointments a
                 WHERE a.doctor_id = ? AND a.patient_id = ? AND a.start_at = ? AND a.status = 'held'"
            ))
            .bind(cmd.doctor_id.to_string())
            .bind(&patient)
            .bind(secs(cmd.start))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            row.as_ref().map(appointment_row).transpose()?
        } else {
            let holds: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM appointments WHERE patient_id = ? AND status = 'held' AND hold_expires_at > ?",
            )
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
            let done = sqlx::query(
                "UPDATE appointments SET status = 'booked', end_at = ?, mode = ?, reason = ?, hold_expires_at = NULL,
                        version = version + 1, updated_at = ?
                 WHERE id = ? AND status = 'held' AND version = ?",
            )
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
            let after = appointment_in(&mut tx, hold.id).await?.ok_or(StoreError::NotFound)?;
            record_change(
                &mut tx,
                Some(&hold),
                &after,
                Some(cmd.patient_id),
                cmd.now,
                "appointment.booked",
                Some("hold confirmed"),
            )
            .await?;
            after
        } else {
            sqlx::query(
                "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                           origin_region, hold_expires_at, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
            )
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
            let after = appointment_in(&mut tx, cmd.id).await?.ok_or(StoreError::NotFound)?;
            let event = if cmd.status == AppointmentStatus::Held { "appointment.held" } else { "appointment.booked" };
            record_change(&mut tx, None, &after, Some(cmd.patient_id), cmd.now, event, None).await?;
            after
        };

        if let Some(idem) = &cmd.idempotency {
            sqlx::query(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, appointment_id, status_code, created_at)
                 VALUES (?, ?, ?, ?, 201, ?)",
            )
            .bind(&patient)
            .bind(&idem.key)
            .bind(&idem.fingerprint)
            .bind(created.id.to_string())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Placed::Created(created))
    }

    async fn modify_appointment(
        &self,
        id: AppointmentId,
        now: Timestamp,
        actor: Option<UserId>,
        decide: Decide,
    ) -> Result<AppointmentRecord> {
        let mut tx = self.write_tx().await?;
        let Some(first) = appointment_in(&mut tx, id).await? else {
            return Err(StoreError::NotFound);
        };
        expire_holds(&mut tx, first.doctor_id, now).await?;
        let before = appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let change = decide(&before)?;
        let cancelled = change.status == AppointmentStatus::Cancelled;
        let done = sqlx::query(
            "UPDATE appointments SET status = ?, start_at = ?, end_at = ?, cancel_reason = ?, cancelled_by = ?,
                    hold_expires_at = CASE WHEN ? = 'held' THEN hold_expires_at ELSE NULL END,
                    version = version + 1, updated_at = ?
             WHERE id = ? AND version = ?",
        )
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
        let after = appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        record_change(&mut tx, Some(&before), &after, actor, now, change.event, change.detail.as_deref()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(after)
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
        let count_sql = format!("SELECT count(*) AS n FROM appointments a {wher}");
        let list_sql =
            format!("SELECT {APPT_COLS} FROM appointments a {wher} ORDER BY a.start_at, a.id LIMIT ? OFFSET ?");
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
        let rows = sqlx::query(
            "SELECT appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail
             FROM audit_log WHERE appointment_id = ? ORDER BY id",
        )
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
        let rows =
            sqlx::query("SELECT id, event_id, topic, payload, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRecord {
                    id: get(r, "id")?,
                    event_id: uuid(&get::<String>(r, "event_id")?)?,
                    topic: get(r, "topic")?,
                    payload: json(&get::<String>(r, "payload")?)?,
                    created_at: text_ts(&get::<String>(r, "created_at")?)?,
                })
            })
            .collect()
    }
}
