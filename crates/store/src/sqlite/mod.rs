//! The embedded backend: SQLite in WAL mode, through rusqlite.
//!
//! Writes are closures run by one writer thread that group-commits them
//! ([`writer`]): each is its own savepoint in a shared transaction, and each
//! caller is answered once its group is on disk. Reads run on reader
//! threads of their own, each with a read-only connection ([`readers`]), so
//! they never wait for a write.
//! Statements are prepared once per connection and kept (rusqlite's cache).
//!
//! P1 is the database's: triggers named `appointments_no_overlap` check every
//! insert and update under SQLite's single write lock, across processes too.

mod accounts;
mod appointments;
pub mod backup;
mod directory;
mod migrate;
mod notifications;
mod readers;
mod regions;
mod rows;
mod search;
mod values;
mod writer;

use crate::*;
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};

pub use migrate::MIGRATIONS;

/// Statements kept prepared per connection: every fixed statement of the
/// store fits, so none is parsed twice.
const STATEMENT_CACHE: usize = 256;

pub struct SqliteStore {
    readers: readers::Readers,
    writer: writer::Writer,
    /// Holds this process released because they ran out (committed), for metrics.
    holds_expired: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating it if needed) the file that `url` (`sqlite:PATH`) names.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let path = file_of(url)?;
        let busy = options.busy_timeout;
        let writing = open(&path, busy, false)?;
        if options.migrate {
            migrate::run(&writing)?;
        }
        let writer = writer::Writer::start(writing, WRITE_QUEUE)?;
        let connections =
            (0..options.max_connections.max(1)).map(|_| open(&path, busy, true)).collect::<Result<Vec<_>>>()?;
        let readers = readers::Readers::start(connections, READ_QUEUE)?;
        Ok(Self { readers, writer, holds_expired: AtomicU64::new(0) })
    }

    /// Runs `f` on one of the reading connections (see [`readers`]).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.readers.read(f).await
    }

    /// Runs `f` in the writer's next group; answers once the group is committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    fn count_expired(&self, n: u64) {
        self.holds_expired.fetch_add(n, Ordering::Relaxed);
    }
}

/// Reads that may wait for a reader.
const READ_QUEUE: usize = 4096;

/// Writes that may wait for the writer. With groups of up to 256 and a group
/// committing in a few milliseconds, a full queue is well under a second of work.
const WRITE_QUEUE: usize = 1024;

/// The file a `sqlite:` URL names (`sqlite:PATH`, `sqlite://PATH`, with or
/// without a `?query`, which sqlx's URLs carried).
fn file_of(url: &str) -> Result<String> {
    let rest = url.strip_prefix("sqlite:").ok_or_else(|| StoreError::Internal(format!("not a SQLite URL: {url}")))?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Internal(
            "SQLite needs a file (sqlite:PATH): the writer and the readers share it".into(),
        ));
    }
    Ok(path.to_string())
}

fn open(path: &str, busy: std::time::Duration, read_only: bool) -> Result<Connection> {
    let conn = Connection::open(path).map_err(map_err)?;
    setup(&conn, busy, read_only)?;
    Ok(conn)
}

/// Every connection's settings.
fn setup(conn: &Connection, busy: std::time::Duration, read_only: bool) -> Result<()> {
    conn.busy_timeout(busy).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // FULL: a commit is on disk before the client hears 201 (P2), even on power loss.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(map_err)?;
    if read_only {
        // Searches at scale touch thousands of rows of the read model per
        // query: a reader keeps 16 MiB of pages rather than SQLite's 2 MiB, so
        // they are read from its cache rather than from the OS one by one.
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -16384").map_err(map_err)?;
    }
    Ok(())
}

/// One place where SQLite's errors become the store's: the overlap trigger
/// means "slot taken", a unique index names its field, a lock that could not
/// be had within the busy timeout means "unavailable, retry".
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let msg = message.as_deref().unwrap_or_default();
            match failure.code {
                _ if msg.contains("appointments_patient_no_overlap") => StoreError::PatientBusy,
                _ if msg.contains("appointments_no_overlap") => StoreError::SlotTaken,
                ErrorCode::ConstraintViolation if msg.contains("users.email") => StoreError::Duplicate("email"),
                ErrorCode::ConstraintViolation if msg.contains("doctors.user_id") => StoreError::Duplicate("user_id"),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Internal(e.to_string()),
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn stats(&self) -> StoreStats {
        let writes = self.writer.stats();
        StoreStats {
            pool_connections: u32::try_from(self.readers.connections() + 1).unwrap_or(u32::MAX),
            pool_idle: u32::try_from(self.readers.idle()).unwrap_or(0),
            holds_expired: self.holds_expired.load(Ordering::Relaxed),
            writes_waiting: writes.waiting.load(Ordering::Relaxed) as u64,
            writes_refused: writes.refused.load(Ordering::Relaxed),
            writes_committed: writes.writes.load(Ordering::Relaxed),
            write_groups: writes.groups.load(Ordering::Relaxed),
        }
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err)).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let user = user.clone();
        self.write(move |c| accounts::insert_user(c, &user)).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let email = email.to_string();
        self.read(move |c| accounts::user_by_email(c, &email)).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        self.read(move |c| accounts::user_by_id(c, id)).await
    }

    async fn create_token(&self, token_hash: &str, user: UserId, expires_at: Timestamp) -> Result<()> {
        let hash = token_hash.to_string();
        self.write(move |c| accounts::insert_token(c, &hash, user, expires_at)).await
    }

    async fn user_by_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<UserRecord>> {
        let hash = token_hash.to_string();
        self.read(move |c| accounts::user_by_token(c, &hash, now)).await
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<()> {
        let hash = token_hash.to_string();
        self.write(move |c| accounts::revoke_token(c, &hash)).await
    }

    async fn erase_user(&self, pseudonym: &UserRecord, email: &str) -> Result<()> {
        let (u, email) = (pseudonym.clone(), email.to_string());
        self.write(move |c| accounts::erase_user(c, &u, &email)).await
    }

    async fn create_clinic(&self, clinic: &ClinicRecord, admin: UserId) -> Result<()> {
        let clinic = clinic.clone();
        self.write(move |c| directory::insert_clinic(c, &clinic, admin)).await
    }

    async fn clinic(&self, id: ClinicId) -> Result<Option<ClinicRecord>> {
        self.read(move |c| directory::clinic(c, id)).await
    }

    async fn set_clinic_rules(&self, clinic: ClinicId, rules: ClinicRules, now: Timestamp) -> Result<()> {
        self.write(move |c| directory::set_clinic_rules(c, clinic, rules, now)).await
    }

    async fn clinics_administered_by(&self, user: UserId) -> Result<Vec<ClinicId>> {
        self.read(move |c| directory::clinics_administered_by(c, user)).await
    }

    async fn create_doctor(&self, doctor: &DoctorRecord) -> Result<()> {
        let doctor = doctor.clone();
        self.write(move |c| directory::insert_doctor(c, &doctor)).await
    }

    async fn doctor(&self, id: DoctorId) -> Result<Option<DoctorRecord>> {
        self.read(move |c| directory::doctor(c, id)).await
    }

    async fn doctor_of_user(&self, user: UserId) -> Result<Option<DoctorRecord>> {
        self.read(move |c| directory::doctor_of_user(c, user)).await
    }

    async fn doctors_with_licence(&self, licence_number: &str) -> Result<Vec<DoctorRecord>> {
        let licence = licence_number.to_string();
        self.read(move |c| directory::doctors_with_licence(c, &licence)).await
    }

    async fn update_doctor(&self, doctor: &DoctorRecord, expected_version: i64) -> Result<()> {
        let doctor = doctor.clone();
        self.write(move |c| directory::update_doctor(c, &doctor, expected_version)).await
    }

    async fn add_time_off(&self, t: &TimeOffRecord) -> Result<()> {
        let t = t.clone();
        self.write(move |c| directory::insert_time_off(c, &t)).await
    }

    async fn time_off_of(&self, doctor: DoctorId, after: Timestamp) -> Result<Vec<TimeOffRecord>> {
        self.read(move |c| directory::time_off_of(c, doctor, after)).await
    }

    async fn remove_time_off(&self, doctor: DoctorId, id: uuid::Uuid, now: Timestamp) -> Result<()> {
        self.write(move |c| directory::delete_time_off(c, doctor, id, now)).await
    }

    async fn search_doctors(&self, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        let q = q.clone();
        self.read(move |c| directory::search_doctors(c, &q)).await
    }

    async fn doctors_updated_since(&self, since: Timestamp) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        self.read(move |c| directory::doctors_updated_since(c, since)).await
    }

    async fn list_doctors(
        &self,
        clinic: Option<ClinicId>,
        verification: Option<VerificationState>,
    ) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
        self.read(move |c| directory::list_doctors(c, clinic, verification)).await
    }

    async fn list_clinics(&self) -> Result<Vec<ClinicRecord>> {
        self.read(directory::list_clinics).await
    }

    async fn places(&self, limit: u32) -> Result<Vec<Place>> {
        self.read(move |c| directory::places(c, limit)).await
    }

    async fn busy(&self, doctors: &[DoctorId], window: Interval, now: Timestamp) -> Result<Vec<(DoctorId, Interval)>> {
        let doctors = doctors.to_vec();
        self.read(move |c| {
            let mut out = appointments::own_busy(c, &doctors, window, now)?;
            out.extend(regions::replica_busy(c, &doctors, window)?);
            Ok(out)
        })
        .await
    }

    async fn place(&self, cmd: &PlaceAppointment) -> Result<Placed> {
        let probe = cmd.clone();
        // The losers of a race for a slot are answered from a read, without
        // taking a place in the writer's queue; the write itself relies on the
        // overlap trigger alone (P1), whatever this read said.
        if self.read(move |c| appointments::plainly_taken(c, &probe)).await? {
            return Err(StoreError::SlotTaken);
        }
        let cmd = cmd.clone();
        let (placed, expired) = self.write(move |c| appointments::place(c, &cmd)).await?;
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
        let (after, expired) = self.write(move |c| appointments::modify(c, id, now, actor, &decide)).await?;
        self.count_expired(expired);
        Ok(after)
    }

    async fn appointment(&self, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
        self.read(move |c| appointments::appointment(c, id)).await
    }

    async fn list_appointments(&self, q: &AppointmentQuery) -> Result<(Vec<AppointmentRecord>, u64)> {
        let q = q.clone();
        self.read(move |c| appointments::list(c, &q)).await
    }

    async fn audit_of(&self, id: AppointmentId) -> Result<Vec<AuditRecord>> {
        self.read(move |c| appointments::audit_of(c, id)).await
    }

    async fn outbox_after(&self, after_id: i64, limit: u32) -> Result<Vec<OutboxRecord>> {
        self.read(move |c| notifications::outbox_after(c, after_id, limit)).await
    }

    async fn bulk_load(&self, data: &BulkLoad) -> Result<()> {
        let data = data.clone();
        self.write(move |c| {
            for u in &data.users {
                accounts::insert_user(c, u)?;
            }
            for (clinic, admin) in &data.clinics {
                directory::insert_clinic(c, clinic, *admin)?;
            }
            for d in &data.doctors {
                directory::insert_doctor(c, d)?;
            }
            for a in &data.appointments {
                appointments::insert_seeded(c, a)?;
            }
            for e in &data.search {
                search::insert(c, e, e.at)?;
            }
            Ok(())
        })
        .await
    }

    async fn refresh_statistics(&self) -> Result<()> {
        // Without statistics SQLite's planner prefers the indexes these
        // queries are written for; nothing to refresh.
        Ok(())
    }

    async fn activity_since(&self, since: Timestamp, clinics: Option<&[ClinicId]>) -> Result<Activity> {
        let clinics = clinics.map(<[ClinicId]>::to_vec);
        self.read(move |c| appointments::activity_since(c, since, clinics.as_deref())).await
    }

    async fn last_change(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        self.read(move |c| directory::last_change(c, now)).await
    }

    async fn doctors_changed_since(&self, since: Timestamp, now: Timestamp) -> Result<Vec<DoctorId>> {
        self.read(move |c| directory::doctors_changed_since(c, since, now)).await
    }
}
