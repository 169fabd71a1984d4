//! The PostgreSQL backend, on PostgreSQL's own types (uuid, timestamptz,
//! tstzrange, jsonb, text[]) through sqlx's PostgreSQL driver, every statement
//! prepared once per connection and kept.
//!
//! P1 is the database's: the exclusion constraint `appointments_no_overlap`
//! over each appointment's `tstzrange`. A booking is one call of the
//! `place_appointment` function (migration 10) in its own transaction.
//! Other writes are READ COMMITTED transactions that take per-doctor advisory
//! locks when they read before they write.

mod accounts;
mod admission;
mod appointments;
mod copy;
mod directory;
mod notifications;
mod regions;
mod rows;
mod search;

use crate::*;
use sqlx::{postgres::PgPoolOptions, PgPool, Postgres, Transaction};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// Writes wait here for a connection; beyond a bound they are refused at once.
    admission: admission::Admission,
    /// Holds this process released because they ran out (committed), for metrics.
    holds_expired: AtomicU64,
}

type Tx = Transaction<'static, Postgres>;

impl PgStore {
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let busy_ms = options.busy_timeout.as_millis();
        let statement_ms = options.statement_timeout.as_millis();
        let connections = options.max_connections.max(1);
        let mut pool = PgPoolOptions::new().max_connections(connections).acquire_timeout(options.busy_timeout);
        if !options.read_only {
            pool = pool.before_acquire(|conn, _| Box::pin(async move { writable_after_failover(conn).await }));
        }
        let pool = pool
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    for stmt in
                        [format!("SET statement_timeout = {statement_ms}"), format!("SET lock_timeout = {busy_ms}")]
                    {
                        sqlx::query(&stmt).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(map_err)?;
        if options.migrate && !options.read_only {
            migrate(url).await?;
        }
        let admission = admission::Admission::new(connections as usize, options.busy_timeout);
        Ok(Self { pool, admission, holds_expired: AtomicU64::new(0) })
    }

    /// A write transaction, once admitted (see [`admission`]).
    async fn write_tx(&self) -> Result<(Tx, admission::Admitted)> {
        let admitted = self.admission.enter().await?;
        let tx = self.pool.begin().await.map_err(map_err)?;
        Ok((tx, admitted))
    }

    /// Commits a write. The statement timeout is lifted for the COMMIT alone: a
    /// COMMIT cancelled while it waits for the synchronous standby still
    /// reports success — the change is committed on the primary but perhaps on
    /// no standby — and acknowledging that would let a failover lose a booking
    /// the patient was told about. A COMMIT that never returns is honest
    /// instead: the client sees no answer, and its retry with the same
    /// Idempotency-Key is answered from whatever the database really holds.
    async fn commit(&self, mut tx: Tx) -> Result<()> {
        sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await.map_err(map_err)?;
        commit_write(tx).await
    }

    fn count_expired(&self, n: u64) {
        self.holds_expired.fetch_add(n, Ordering::Relaxed);
    }
}

/// Applies pending migrations on a connection of their own, closed afterwards.
/// A migration may leave objects in the session's temporary schema (0009 made
/// a `pg_temp` function), and a session that used one drops it in a
/// transaction of its own when it ends. Kept in the pool, that session could
/// later be terminated while its COMMIT waits for a synchronous standby that
/// is down: it would then wait for the standby again on its way out, ignoring
/// every further termination, and the COMMIT it never answered would hang
/// its request. Closed here, it ends while the database is healthy.
async fn migrate(url: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(map_err)?;
    MIGRATIONS.run(&mut conn).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
    conn.close().await.map_err(map_err)
}

/// Commits a write transaction. A COMMIT whose answer never came (the
/// connection broke, the server shut down while the commit waited for its
/// synchronous standby) may have committed: that is
/// [`StoreError::OutcomeUnknown`], never "unavailable, nothing happened".
async fn commit_write(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(|e| match map_err(e) {
        StoreError::Unavailable(why) => StoreError::OutcomeUnknown(why),
        other => other,
    })
}

/// Until when (Unix milliseconds) pooled connections are checked before use:
/// set for a while after a write met a read-only server, which is what a
/// connection to a former primary sees once a failover demoted it.
static READ_ONLY_SEEN_UNTIL: AtomicI64 = AtomicI64::new(0);

/// How long after a read-only refusal connections are checked before use.
const READ_ONLY_CHECK_FOR: std::time::Duration = std::time::Duration::from_secs(30);

fn unix_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The pool's check before handing out a connection: after a read-only
/// refusal, a connection that still reaches a read-only server (a demoted
/// primary, a standby) is dropped, so that the next one is made afresh through
/// whatever routes to the new primary. Otherwise free.
async fn writable_after_failover(conn: &mut sqlx::PgConnection) -> std::result::Result<bool, sqlx::Error> {
    if READ_ONLY_SEEN_UNTIL.load(Ordering::Relaxed) < unix_ms() {
        return Ok(true);
    }
    let read_only: String =
        sqlx::query_scalar("SELECT current_setting('transaction_read_only')").fetch_one(&mut *conn).await?;
    Ok(read_only != "on")
}

/// Serializes writers of one key (a doctor, an idempotency key) for the rest
/// of the transaction. The overlap constraint, not this lock, guarantees P1.
async fn lock(tx: &mut Tx, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
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

/// One place where PostgreSQL's errors become the store's: the overlap
/// constraints mean "patient busy" or "slot taken", a unique index names its field, the
/// booking function's own codes name their refusal, a lock wait or a
/// connection that gave out means "unavailable, retry".
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = db.message();
            let code = db.code().unwrap_or_default();
            let constraint = db.constraint().unwrap_or_default();
            let names = |needle: &str| msg.contains(needle) || constraint.contains(needle);
            if names("appointments_patient_no_overlap") {
                StoreError::PatientBusy
            } else if names("appointments_no_overlap") || code == "23P01" {
                StoreError::SlotTaken
            } else if names("users_email_key") {
                StoreError::Duplicate("email")
            } else if names("doctors_user_id_key") {
                StoreError::Duplicate("user_id")
            } else if code == "MS001" {
                StoreError::IdempotencyMismatch
            } else if matches!(code.as_ref(), "40001" | "40P01") {
                // serialization failure, deadlock: worth retrying at once
                StoreError::Retry(msg.to_string())
            } else if code == "25006" {
                // A read-only server: this connection reaches a former primary
                // (demoted by a failover) or a standby. Check connections for a while.
                READ_ONLY_SEEN_UNTIL.store(
                    unix_ms() + i64::try_from(READ_ONLY_CHECK_FOR.as_millis()).unwrap_or(i64::MAX),
                    Ordering::Relaxed,
                );
                StoreError::Unavailable(format!("the database is read-only (a standby?): {msg}"))
            } else if code.starts_with("08")
                || matches!(code.as_ref(), "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300")
            {
                // connection exception, lock or statement timeout, shutting
                // down, crashed, starting up, too many connections
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

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            pool_connections: self.pool.size(),
            pool_idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            holds_expired: self.holds_expired.load(Ordering::Relaxed),
            writes_waiting: self.admission.waiting() as u64,
            writes_refused: self.admission.refused(),
            writes_committed: self.admission.admitted(),
            write_groups: self.admission.admitted(),
        }
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn replication_lag(&self) -> Result<Option<std::time::Duration>> {
        // Caught up when it has replayed all it received; otherwise as old as
        // the last transaction it replayed (which grows while it receives nothing).
        let (standby, lag): (bool, Option<f64>) = sqlx::query_as(
            "SELECT pg_is_in_recovery(),
                    CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                         ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        if !standby {
            return Ok(None);
        }
        // Nothing replayed yet: as far behind as can be said.
        let lag = lag.unwrap_or(f64::MAX).max(0.0);
        Ok(Some(std::time::Duration::try_from_secs_f64(lag).unwrap_or(std::time::Duration::MAX)))
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        accounts::insert_user(&mut tx, user).await?;
        self.commit(tx).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        accounts::user_by_email(&self.pool, email).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        accounts::user_by_id(&self.pool, id).await
    }

    async fn create_token(&self, token_hash: &str, user: UserId, expires_at: Timestamp) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        accounts::insert_token(&self.pool, token_hash, user, expires_at).await
    }

    async fn user_by_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<UserRecord>> {
        accounts::user_by_token(&self.pool, token_hash, now).await
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        accounts::revoke_token(&self.pool, token_hash).await
    }

    async fn erase_user(&self, pseudonym: &UserRecord, email: &str) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        accounts::erase_user(&mut tx, pseudonym, email).await?;
        self.commit(tx).await
    }

    async fn create_clinic(&self, clinic: &ClinicRecord, admin: UserId) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        directory::insert_clinic(&mut tx, clinic, admin).await?;
        self.commit(tx).await
    }

    async fn clinic(&self, id: ClinicId) -> Result<Option<ClinicRecord>> {
        directory::clinic(&self.pool, id).await
    }

    async fn set_clinic_rules(&self, clinic: ClinicId, rules: ClinicRules, now: Timestamp) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        directory::set_clinic_rules(&mut tx, clinic, rules, now).await?;
        self.commit(tx).await
    }

    async fn clinics_administered_by(&self, user: UserId) -> Result<Vec<ClinicId>> {
        directory::clinics_administered_by(&self.pool, user).await
    }

    async fn create_doctor(&self, doctor: &DoctorRecord) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        directory::insert_doctor(&mut tx, doctor).await?;
        self.commit(tx).await
    }

    async fn doctor(&self, id: DoctorId) -> Result<Option<DoctorRecord>> {
        directory::doctor(&self.pool, id).await
    }

    async fn doctor_of_user(&self, user: UserId) -> Result<Option<DoctorRecord>> {
        directory::doctor_of_user(&self.pool, user).await
    }

    async fn doctors_with_licence(&self, licence_number: &str) -> Result<Vec<DoctorRecord>> {
        directory::doctors_with_licence(&self.pool, licence_number).await
    }

    async fn update_doctor(&self, doctor: &DoctorRecord, expected_version: i64) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        directory::update_doctor(&mut tx, doctor, expected_version).await?;
        self.commit(tx).await
    }

    async fn add_time_off(&self, t: &TimeOffRecord) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        directory::insert_time_off(&self.pool, t).await
    }

    async fn time_off_of(&self, doctor: DoctorId, after: Timestamp) -> Result<Vec<TimeOffRecord>> {
        directory::time_off_of(&self.pool, doctor, after).await
    }

    async fn remove_time_off(&self, doctor: DoctorId, id: uuid::Uuid, now: Timestamp) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        directory::delete_time_off(&mut tx, doctor, id, now).await?;
        self.commit(tx).await
    }

    async fn search_doctors(&self, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        directory::search_doctors(&self.pool, q).await
    }

    async fn doctors_updated_since(&self, since: Timestamp) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        directory::doctors_updated_since(&self.pool, since).await
    }

    async fn list_doctors(
        &self,
        clinic: Option<ClinicId>,
        verification: Option<VerificationState>,
    ) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        directory::list_doctors(&self.pool, clinic, verification).await
    }

    async fn list_clinics(&self) -> Result<Vec<ClinicRecord>> {
        directory::list_clinics(&self.pool).await
    }

    async fn places(&self, limit: u32) -> Result<Vec<Place>> {
        directory::places(&self.pool, limit).await
    }

    async fn busy(&self, doctors: &[DoctorId], window: Interval, now: Timestamp) -> Result<Vec<(DoctorId, Interval)>> {
        let mut out = appointments::own_busy(&self.pool, doctors, window, now).await?;
        out.extend(regions::replica_busy(&self.pool, doctors, window).await?);
        Ok(out)
    }

    async fn place(&self, cmd: &PlaceAppointment) -> Result<Placed> {
        let admitted = self.admission.enter().await?;
        let (placed, expired) = retrying(|| appointments::place(&self.pool, cmd)).await?;
        drop(admitted);
        self.count_expired(expired);
        Ok(placed)
    }

    async fn modify_appointment(
        &self,
        id: AppointmentId,
        now: Timestamp,
        actor: Option<UserId>,
        decide: Decide,
    ) -> Result<AppointmentRecord> {
        let (after, expired) = retrying(|| async {
            let (mut tx, _admitted) = self.write_tx().await?;
            let done = appointments::modify(&mut tx, id, now, actor, &decide).await?;
            self.commit(tx).await?;
            Ok(done)
        })
        .await?;
        self.count_expired(expired);
        Ok(after)
    }

    async fn appointment(&self, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
        appointments::appointment(&self.pool, id).await
    }

    async fn list_appointments(&self, q: &AppointmentQuery) -> Result<(Vec<AppointmentRecord>, u64)> {
        appointments::list(&self.pool, q).await
    }

    async fn audit_of(&self, id: AppointmentId) -> Result<Vec<AuditRecord>> {
        appointments::audit_of(&self.pool, id).await
    }

    async fn outbox_after(&self, after_id: i64, limit: u32) -> Result<Vec<OutboxRecord>> {
        notifications::outbox_after(&self.pool, after_id, limit).await
    }

    async fn bulk_load(&self, data: &BulkLoad) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        for u in &data.users {
            accounts::insert_user(&mut tx, u).await?;
        }
        for (c, admin) in &data.clinics {
            directory::insert_clinic(&mut tx, c, *admin).await?;
        }
        copy::doctors(&mut tx, &data.doctors).await?;
        copy::appointments(&mut tx, &data.appointments).await?;
        copy::search_entries(&mut tx, &data.search).await?;
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
        appointments::activity_since(&self.pool, since, clinics).await
    }

    async fn last_change(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        directory::last_change(&self.pool, now).await
    }

    async fn doctors_changed_since(&self, since: Timestamp, now: Timestamp) -> Result<Vec<DoctorId>> {
        directory::doctors_changed_since(&self.pool, since, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn no_pooled_session_keeps_what_the_migrations_left_in_its_temporary_schema() {
        let admin_url = std::env::var("MEDISLOT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test and is not reachable at {admin_url} ({e}); run scripts/test")
        });
        let name = format!("medislot_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let options = ConnectOptions { max_connections: 3, ..ConnectOptions::default() };
        let store = PgStore::connect(&format!("{base}/{name}"), &options).await.unwrap();
        // Every connection the pool can hand out at once, the idle ones first.
        let mut held = Vec::new();
        for _ in 0..options.max_connections {
            held.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let temp: i64 =
                sqlx::query_scalar("SELECT pg_my_temp_schema()::oid::bigint").fetch_one(&mut **conn).await.unwrap();
            assert_eq!(temp, 0, "a pooled session holds temporary objects it must drop when it ends");
        }
        drop(held);
        store.pool.close().await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin).await.unwrap();
    }

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
}
