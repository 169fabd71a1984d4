//! Persistence: the [`Store`] trait and its backends.
//!
//! Every method is one transaction. The promises that must survive many nodes
//! (P1 no overlap, P3 idempotency, P6 audit and outbox) are enforced here, by
//! the database, not by callers checking first.

mod columns;
mod decode;
mod notify;
pub mod postgres;
mod records;
mod regions;
pub mod search;
pub mod sqlite;

pub use notify::*;
pub use records::*;
pub use regions::*;

use async_trait::async_trait;
use jiff::Timestamp;
use medislot_domain::{AppointmentId, ClinicId, ClinicRules, DoctorId, Interval, UserId, VerificationState};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique value is taken (the field is named, e.g. `email`).
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    /// P1: the time range overlaps an active appointment of the same doctor.
    #[error("the slot is taken")]
    SlotTaken,
    /// The patient already has a live appointment (held, pending, booked,
    /// arrived) overlapping that time, with whichever doctor.
    #[error("the patient already has an appointment at that time")]
    PatientBusy,
    /// Optimistic concurrency: the row changed since the caller read it.
    #[error("the record changed (now at version {current})")]
    VersionMismatch { current: i64 },
    /// The same Idempotency-Key was used with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    #[error("the patient already holds {0} slots")]
    TooManyHolds(u32),
    /// A caller's decision function refused the change (its own error, boxed).
    #[error(transparent)]
    Rejected(Box<dyn std::error::Error + Send + Sync>),
    /// A transient conflict between transactions (serialization failure,
    /// deadlock): the store retries these a bounded number of times.
    #[error("transient conflict: {0}")]
    Retry(String),
    /// The database is down or too busy: callers answer 503 and retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write's COMMIT was sent but its answer never came (the connection
    /// broke, the server went away): it may or may not have committed. Never
    /// retried by the store; the caller's retry with the same Idempotency-Key
    /// finds out.
    #[error("the database did not confirm the commit: {0}")]
    OutcomeUnknown(String),
    #[error("database error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Decides, inside the transaction, what happens to an appointment given its
/// current row: the state machine and authorization run on fresh data. It may
/// run more than once when a transaction is retried, so it must not have side effects.
pub type Decide = Box<dyn Fn(&AppointmentRecord) -> Result<AppointmentChange> + Send + Sync>;

#[async_trait]
pub trait Store: NotifyStore + RegionStore + search::SearchStore + Send + Sync + 'static {
    /// Which backend this is (`sqlite`, `postgres`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// This process's view of the store, for metrics.
    fn stats(&self) -> StoreStats;
    async fn ping(&self) -> Result<()>;
    /// On a standby (a read replica): how far its data is behind the
    /// primary's, by the last transaction it replayed; zero while it has
    /// replayed all it received. `None` on a primary or an unreplicated database.
    async fn replication_lag(&self) -> Result<Option<std::time::Duration>> {
        Ok(None)
    }

    // Accounts.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>>;
    async fn create_token(&self, token_hash: &str, user: UserId, expires_at: Timestamp) -> Result<()>;
    /// The user a live (unexpired, unrevoked) token belongs to.
    async fn user_by_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<UserRecord>>;
    async fn revoke_token(&self, token_hash: &str) -> Result<()>;
    /// Erases an account in one transaction: its sessions, notifications,
    /// waitlist entries, idempotency keys and the e-mails to its address go;
    /// the user row keeps only `pseudonym`'s e-mail, name and (unusable)
    /// password hash, so that appointments and audit rows stay, linked to no
    /// one. `email`: the address being erased.
    async fn erase_user(&self, pseudonym: &UserRecord, email: &str) -> Result<()>;

    // Clinics.
    /// Creates the clinic and makes `admin` one of its administrators.
    async fn create_clinic(&self, clinic: &ClinicRecord, admin: UserId) -> Result<()>;
    async fn clinic(&self, id: ClinicId) -> Result<Option<ClinicRecord>>;
    /// Sets the clinic's rules for its patients.
    async fn set_clinic_rules(&self, clinic: ClinicId, rules: ClinicRules, now: Timestamp) -> Result<()>;
    async fn clinics_administered_by(&self, user: UserId) -> Result<Vec<ClinicId>>;

    // Doctors.
    async fn create_doctor(&self, doctor: &DoctorRecord) -> Result<()>;
    async fn doctor(&self, id: DoctorId) -> Result<Option<DoctorRecord>>;
    async fn doctor_of_user(&self, user: UserId) -> Result<Option<DoctorRecord>>;
    /// Every profile with this licence number, whatever its verification.
    async fn doctors_with_licence(&self, licence_number: &str) -> Result<Vec<DoctorRecord>>;
    /// Writes the whole profile if its version is still `expected_version`;
    /// the stored version becomes `expected_version + 1`.
    async fn update_doctor(&self, doctor: &DoctorRecord, expected_version: i64) -> Result<()>;
    async fn add_time_off(&self, t: &TimeOffRecord) -> Result<()>;
    /// A doctor's time off that ends after `after`, by start.
    async fn time_off_of(&self, doctor: DoctorId, after: Timestamp) -> Result<Vec<TimeOffRecord>>;
    /// Removes one of the doctor's time off (`NotFound` if it is not theirs)
    /// and marks the doctor changed at `now`, so that publishers and peer
    /// regions, which see time off only through the doctor, learn of it.
    async fn remove_time_off(&self, doctor: DoctorId, id: uuid::Uuid, now: Timestamp) -> Result<()>;
    /// Verified doctors matching the filters, with their clinics.
    async fn search_doctors(&self, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>>;
    /// Doctors whatever their verification whose record changed at or after
    /// `since` (and possibly a little before), with their clinics: what a
    /// node's copy of the directory must update.
    async fn doctors_updated_since(&self, since: Timestamp) -> Result<Vec<(DoctorRecord, ClinicRecord)>>;
    /// Doctors whatever their verification (for staff): of one clinic, in one state, or all; by name.
    async fn list_doctors(
        &self,
        clinic: Option<ClinicId>,
        verification: Option<VerificationState>,
    ) -> Result<Vec<(DoctorRecord, ClinicRecord)>>;
    /// Every clinic, by name.
    async fn list_clinics(&self) -> Result<Vec<ClinicRecord>>;
    /// The cities with a clinic that lists a doctor (verified, an active
    /// member), those with the most such clinics first, at most `limit`.
    async fn places(&self, limit: u32) -> Result<Vec<Place>>;
    /// Time a doctor cannot be booked in `window`: active appointments (holds
    /// that expired before `now` excluded) and time off.
    async fn busy(&self, doctors: &[DoctorId], window: Interval, now: Timestamp) -> Result<Vec<(DoctorId, Interval)>>;

    // Appointments.
    /// Creates a hold or a booking, in one transaction: expired holds of the
    /// doctor are released, the idempotency key is checked and recorded, a
    /// caller's own hold on the same slot is confirmed (compare-and-swap),
    /// otherwise a row is inserted under the overlap constraint; audit and
    /// outbox rows are written with it.
    async fn place(&self, cmd: &PlaceAppointment) -> Result<Placed>;
    /// Changes one appointment in one transaction; `decide` sees the current row.
    async fn modify_appointment(
        &self,
        id: AppointmentId,
        now: Timestamp,
        actor: Option<UserId>,
        decide: Decide,
    ) -> Result<AppointmentRecord>;
    async fn appointment(&self, id: AppointmentId) -> Result<Option<AppointmentRecord>>;
    async fn list_appointments(&self, q: &AppointmentQuery) -> Result<(Vec<AppointmentRecord>, u64)>;
    async fn audit_of(&self, id: AppointmentId) -> Result<Vec<AuditRecord>>;
    /// Outbox rows, oldest first (for tests and the delivery workers).
    async fn outbox_after(&self, after_id: i64, limit: u32) -> Result<Vec<OutboxRecord>>;

    /// Loads generated data (`medislot seed`) in one transaction: users,
    /// clinics with their admin, doctors, and booked appointments — which the
    /// overlap constraint checks like any other. No audit or outbox rows.
    async fn bulk_load(&self, data: &BulkLoad) -> Result<()>;
    /// After bulk loads: the query planner's statistics brought up to date.
    async fn refresh_statistics(&self) -> Result<()>;

    /// What happened to appointments since `since` (by the audit trail), of
    /// these clinics or of all, and the outbox's backlog: the operations page.
    async fn activity_since(&self, since: Timestamp, clinics: Option<&[ClinicId]>) -> Result<Activity>;

    // Change tracking, for publishers of availability (conditional requests, `_since`).
    /// When availability or the directory last changed before `now`: clinics,
    /// doctors (profiles, schedules, verification), time off, appointment
    /// changes and holds running out. Second precision.
    async fn last_change(&self, now: Timestamp) -> Result<Option<Timestamp>>;
    /// Doctors whose profile, schedule, time off or appointments changed at or
    /// after `since` (holds that ran out included); may include a few more.
    async fn doctors_changed_since(&self, since: Timestamp, now: Timestamp) -> Result<Vec<DoctorId>>;
}

pub type DynStore = Arc<dyn Store>;

/// Figures about a store, as seen by this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Connections open in the pool, and how many of them are idle.
    pub pool_connections: u32,
    pub pool_idle: u32,
    /// Holds released because they ran out, by this process since it started.
    pub holds_expired: u64,
    /// Writes queued for the database now (SQLite's writer; 0 where the database queues them).
    pub writes_waiting: u64,
    /// Writes refused at once because the queue was full (admission control), since start.
    pub writes_refused: u64,
    /// Writes committed, and the transactions they were committed in (SQLite
    /// group-commits several writes in one), since start.
    pub writes_committed: u64,
    pub write_groups: u64,
}

/// Opens the backend named by the URL's scheme and brings its schema up to date.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::connect(url, options).await?))
    } else {
        Err(StoreError::Internal(format!("unsupported database URL {url:?}: use sqlite:PATH or postgres://…")))
    }
}

/// Tuning shared by the backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long a statement may wait for a lock (SQLite busy timeout, PostgreSQL
    /// lock timeout), and for a pooled connection.
    pub busy_timeout: std::time::Duration,
    /// PostgreSQL: the longest a statement may run before it is cancelled.
    pub statement_timeout: std::time::Duration,
    /// Apply pending migrations on connect (`serve` does; `migrate` is explicit).
    pub migrate: bool,
    /// A read replica (a standby, read-only by nature): never migrated nor
    /// written, and its read-only sessions are not taken for a demoted primary's.
    pub read_only: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(10),
            migrate: true,
            read_only: false,
        }
    }
}

/// A new video room's name: 128 bits from the operating system's random
/// source, as 32 hexadecimal digits (a Jitsi room name, a path segment).
/// The outbox topic of a placed appointment: a hold, a booking, or a request
/// to the clinic (a `pending` one, awaiting it).
pub fn placed_topic(status: medislot_domain::AppointmentStatus) -> &'static str {
    use medislot_domain::AppointmentStatus;
    match status {
        AppointmentStatus::Held => "appointment.held",
        AppointmentStatus::Pending => "appointment.requested",
        _ => "appointment.booked",
    }
}

pub fn new_video_room() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The outbox message for one appointment change; both backends write the same shape.
pub fn outbox_payload(
    event_id: uuid::Uuid,
    topic: &str,
    before: Option<&AppointmentRecord>,
    after: &AppointmentRecord,
    actor: Option<UserId>,
    at: Timestamp,
) -> serde_json::Value {
    serde_json::json!({
        "event_id": event_id,
        "type": topic,
        "at": at.to_string(),
        "actor_id": actor,
        "appointment_id": after.id,
        "doctor_id": after.doctor_id,
        "patient_id": after.patient_id,
        "status": after.status.as_str(),
        "previous_status": before.map(|b| b.status.as_str()),
        "start": after.start.to_string(),
        "end": after.end.to_string(),
        "previous_start": before.map(|b| b.start.to_string()),
        "version": after.version,
        "mode": after.mode.as_str(),
        "cancel_reason": after.cancel_reason,
        "hold_expires_at": after.hold_expires_at.map(|t| t.to_string()),
    })
}
