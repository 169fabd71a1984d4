//! Region storage: what a home region publishes to its peers (a snapshot of
//! the directory and busy times it owns), the replicas a region keeps of its
//! peers, and the durable queue of bookings forwarded to a home region.

use crate::{AppointmentRecord, ClinicRecord, DoctorRecord, Result, UserRecord};
use async_trait::async_trait;
use jiff::Timestamp;
use medislot_domain::{AppointmentId, DoctorId, Interval, Mode, UserId};

fn full_by_default() -> bool {
    true
}

/// What a home region owns, as of one instant: its clinics, their doctors,
/// their busy time, and the appointments a given peer forwarded to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RegionSnapshot {
    pub region: String,
    pub as_of: Timestamp,
    /// Everything the region owns (`true`), or only the doctors changed since
    /// the cursor the peer sent, whose busy times are then replaced one by one.
    #[serde(default = "full_by_default")]
    pub full: bool,
    pub clinics: Vec<ClinicRecord>,
    pub doctors: Vec<DoctorRecord>,
    pub busy: Vec<(DoctorId, Interval)>,
    /// Appointments made through the asking peer (their `origin_region`), recent ones.
    pub forwarded: Vec<AppointmentRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardStatus {
    /// Accepted here, not yet answered by the home region.
    Pending,
    /// The home region booked it.
    Booked,
    /// The home region refused it (the slot was taken meanwhile).
    Conflict,
}

impl ForwardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardStatus::Pending => "pending",
            ForwardStatus::Booked => "booked",
            ForwardStatus::Conflict => "conflict",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ForwardStatus::Pending,
            "booked" => ForwardStatus::Booked,
            "conflict" => ForwardStatus::Conflict,
            _ => return None,
        })
    }
}

/// A booking of a doctor homed in another region, made in this one.
#[derive(Debug, Clone)]
pub struct ForwardRecord {
    /// The appointment's id, here and at home.
    pub id: AppointmentId,
    /// The home region.
    pub region: String,
    pub patient_id: UserId,
    pub doctor_id: DoctorId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub fingerprint: Option<String>,
    pub status: ForwardStatus,
    /// The home region's answer: the appointment, or the alternatives offered.
    pub detail: Option<serde_json::Value>,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// The visit asked for (its type and the patient's answers), sent again with every attempt.
    pub visit: Option<crate::Visit>,
}

/// A peer's replica: as of when its data is, and when it was last fetched.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    pub region: String,
    pub as_of: Timestamp,
    pub synced_at: Timestamp,
}

#[async_trait]
pub trait RegionStore: Send + Sync {
    /// What this region owns (`region` is its own name), for the peer `peer`:
    /// all of it, or (with `since`, the peer's cursor) the doctors changed since.
    async fn region_snapshot(
        &self,
        region: &str,
        peer: &str,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<RegionSnapshot>;
    /// Applies, in one transaction, what `snap.region` sent: its clinics and
    /// doctors are upserted, their busy times replaced (all of the region's for a
    /// full snapshot, the listed doctors' otherwise), the
    /// forwarded appointments' answers recorded. Rows this region owns are never touched.
    async fn apply_replica(&self, own_region: &str, snap: &RegionSnapshot, now: Timestamp) -> Result<()>;
    async fn replicas(&self) -> Result<Vec<ReplicaState>>;

    /// A patient of another region, known here by their id (their bookings of
    /// doctors homed here belong to it). Created once; never signs in here.
    async fn ensure_remote_user(&self, user: &UserRecord) -> Result<()>;

    /// Records a forwarded booking; the same (patient, Idempotency-Key) again
    /// returns the first record (a different body: `IdempotencyMismatch`).
    async fn create_forward(&self, f: &ForwardRecord) -> Result<ForwardRecord>;
    async fn forward(&self, id: AppointmentId) -> Result<Option<ForwardRecord>>;
    async fn forwards_of_patient(&self, patient: UserId) -> Result<Vec<ForwardRecord>>;
    async fn pending_forwards(&self, limit: u32) -> Result<Vec<ForwardRecord>>;
    async fn count_forward_attempt(&self, id: AppointmentId) -> Result<()>;
    /// The home region's latest word on a booked forward (after a change made through it).
    async fn record_forward_state(&self, id: AppointmentId, detail: &serde_json::Value) -> Result<()>;
    /// Settles a pending forward (`false` if it was settled already), with an
    /// outbox event for the patient's notification, in one transaction.
    async fn resolve_forward(
        &self,
        id: AppointmentId,
        status: ForwardStatus,
        detail: &serde_json::Value,
        event: Option<(&str, serde_json::Value)>,
        now: Timestamp,
    ) -> Result<bool>;
    /// Pending forwards, and the oldest one's creation time.
    async fn forwarding_backlog(&self) -> Result<(u64, Option<Timestamp>)>;
}

/// A region's own part of a directory: its clinics (in a full snapshot, also
/// those without doctors yet), and the doctors of those clinics. Both
/// backends make their snapshots with it.
pub(crate) fn own_part(
    region: &str,
    clinics: Vec<ClinicRecord>,
    doctors: Vec<(DoctorRecord, ClinicRecord)>,
) -> (Vec<ClinicRecord>, Vec<DoctorRecord>) {
    let mut own: Vec<ClinicRecord> = clinics.into_iter().filter(|c| c.region == region).collect();
    let mut mine = Vec::new();
    for (d, c) in doctors.into_iter().filter(|(_, c)| c.region == region) {
        if !own.iter().any(|x| x.id == c.id) {
            own.push(c);
        }
        mine.push(d);
    }
    (own, mine)
}
