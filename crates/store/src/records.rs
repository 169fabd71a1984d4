//! The rows the store reads and writes, in domain types.

use jiff::Timestamp;
use medislot_domain::{
    AppointmentId, AppointmentStatus, ClinicId, Coordinates, DoctorId, Interval, Membership, Mode, Policy,
    PostalAddress, Role, Schedule, TimeZoneName, UserId, VerificationState,
};
use uuid::Uuid;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub name: String,
    pub created_at: Timestamp,
}

/// The password hash of an erased account: no password matches it.
pub const ERASED_PASSWORD: &str = "!erased";

impl UserRecord {
    /// An erased account's pseudonym: nobody to write to or sign in as.
    pub fn is_erased(&self) -> bool {
        self.password_hash == ERASED_PASSWORD
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClinicRecord {
    pub id: ClinicId,
    pub name: String,
    /// The street line(s).
    pub address: String,
    /// City, district, postal code and country, as far as given.
    #[serde(default)]
    pub postal: PostalAddress,
    /// E.164, when given.
    #[serde(default)]
    pub phone: Option<String>,
    pub position: Coordinates,
    pub time_zone: TimeZoneName,
    pub region: String,
    pub policy: Policy,
    /// Its rules for patients (absent in a peer's older snapshot: none).
    #[serde(default)]
    pub rules: medislot_domain::ClinicRules,
    pub created_at: Timestamp,
}

impl ClinicRecord {
    /// The address on one line, as people read it: the street, then the postal
    /// code and city when given (`12 rue de Rivoli, 75004 Paris`).
    pub fn address_line(&self) -> String {
        let place: Vec<&str> =
            [&self.postal.postal_code, &self.postal.city].into_iter().flatten().map(String::as_str).collect();
        if place.is_empty() {
            self.address.clone()
        } else {
            format!("{}, {}", self.address, place.join(" "))
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DoctorRecord {
    pub id: DoctorId,
    /// The doctor's own account, when they have one (a clinic may list a doctor first).
    pub user_id: Option<UserId>,
    pub clinic_id: ClinicId,
    pub name: String,
    pub specialties: Vec<String>,
    pub languages: Vec<String>,
    pub modes: Vec<Mode>,
    pub licence_number: String,
    pub bio: String,
    pub verification: VerificationState,
    pub verification_reason: Option<String>,
    /// The clinic's and the doctor's consent to this profile belonging to the clinic
    /// (absent in a peer's older snapshot: such profiles are active).
    #[serde(default)]
    pub membership: Membership,
    pub schedule: Schedule,
    /// The doctor's own video room (a fixed address), used for their online
    /// appointments instead of a room per appointment on the platform's
    /// provider. Secret: shown to the doctor's side only.
    #[serde(default)]
    pub video_room_url: Option<String>,
    /// What patients book the doctor for (none: the schedule's own slots).
    #[serde(default)]
    pub visit_types: Vec<medislot_domain::VisitType>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl DoctorRecord {
    /// The doctor's visit type of this code, if they offer it.
    pub fn visit_type(&self, code: &str) -> Option<&medislot_domain::VisitType> {
        self.visit_types.iter().find(|v| v.code == code)
    }
}

#[derive(Debug, Clone)]
pub struct TimeOffRecord {
    pub id: Uuid,
    pub doctor_id: DoctorId,
    pub interval: Interval,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct DoctorQuery {
    pub specialty: Option<String>,
    pub language: Option<String>,
    pub mode: Option<Mode>,
    /// (min lat, max lat, min lon, max lon): a coarse box, refined by the caller.
    pub bounding_box: Option<(f64, f64, f64, f64)>,
    /// Leave this doctor out (alternatives to a doctor's own slots).
    pub exclude_doctor: Option<DoctorId>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AppointmentRecord {
    pub id: AppointmentId,
    pub doctor_id: DoctorId,
    pub patient_id: UserId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
    pub reason: String,
    pub status: AppointmentStatus,
    pub version: i64,
    pub origin_region: String,
    pub hold_expires_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    pub cancelled_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The name of its video room, drawn at random when it was made and again
    /// when it moves (none on appointments older than video consultations,
    /// or in a peer's older snapshot). Secret: shown to its parties only.
    #[serde(default)]
    pub video_room: Option<String>,
    /// The visit booked, when the doctor has visit types.
    #[serde(default)]
    pub visit: Option<Visit>,
    /// A request (status `pending`) waiting for the clinic to accept or
    /// decline it: the clinic's no-show rule made the booking one.
    #[serde(default)]
    pub awaiting_clinic: bool,
}

/// The visit an appointment is for: its visit type as the patient booked it,
/// and their answers to its intake questions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Visit {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub intake: Vec<medislot_domain::Answer>,
}

/// What a [`crate::Decide`] function wants done to an appointment.
#[derive(Debug, Clone)]
pub struct AppointmentChange {
    pub status: AppointmentStatus,
    pub start: Timestamp,
    pub end: Timestamp,
    pub cancel_reason: Option<String>,
    /// Outbox topic, e.g. `appointment.cancelled`.
    pub event: &'static str,
    pub detail: Option<String>,
}

/// A hold or a booking to create.
#[derive(Debug, Clone)]
pub struct PlaceAppointment {
    pub id: AppointmentId,
    pub doctor_id: DoctorId,
    pub patient_id: UserId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
    pub reason: String,
    /// `Held` (with `hold_expires_at`), `Booked`, or `Pending`: a request
    /// awaiting the clinic (the no-show rule), which confirms a hold like a
    /// booking does.
    pub status: AppointmentStatus,
    pub hold_expires_at: Option<Timestamp>,
    pub origin_region: String,
    pub now: Timestamp,
    pub idempotency: Option<IdempotencyKey>,
    /// Most unexpired holds a patient may have at once (holds only).
    pub max_holds: u32,
    pub visit: Option<Visit>,
}

#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    /// A digest of the request body: the same key with another body is refused.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub enum Placed {
    Created(AppointmentRecord),
    /// The same Idempotency-Key was seen before: the first answer, replayed.
    Replayed {
        appointment: AppointmentRecord,
        status_code: u16,
    },
}

/// Which appointments a caller may list (authorization decides, the store filters).
#[derive(Debug, Clone)]
pub enum Scope {
    Patient(UserId),
    Doctor(DoctorId),
    Clinics(Vec<ClinicId>),
    All,
}

#[derive(Debug, Clone)]
pub struct AppointmentQuery {
    pub scope: Scope,
    pub doctor: Option<DoctorId>,
    pub status: Option<AppointmentStatus>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: u32,
    pub offset: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub appointment_id: AppointmentId,
    pub actor_id: Option<UserId>,
    pub at: Timestamp,
    pub from_status: Option<AppointmentStatus>,
    pub to_status: AppointmentStatus,
    pub from_start: Option<Timestamp>,
    pub to_start: Option<Timestamp>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OutboxRecord {
    pub id: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// A batch of generated data for [`crate::Store::bulk_load`].
#[derive(Debug, Clone, Default)]
pub struct BulkLoad {
    pub users: Vec<UserRecord>,
    /// Each clinic with the user who administers it.
    pub clinics: Vec<(ClinicRecord, UserId)>,
    pub doctors: Vec<DoctorRecord>,
    /// Booked appointments.
    pub appointments: Vec<AppointmentRecord>,
    /// Search rows of the doctors loaded (computed by the loader; see [`crate::search`]).
    pub search: Vec<crate::search::SearchEntry>,
}

/// Appointment activity over a period, for the operations page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub held: u64,
    pub booked: u64,
    pub rescheduled: u64,
    pub cancelled: u64,
    pub holds_expired: u64,
    pub fulfilled: u64,
    pub noshows: u64,
    /// Outbox rows not delivered yet, and the oldest one's time.
    pub outbox_pending: u64,
    pub outbox_oldest: Option<Timestamp>,
}

/// A city where the directory lists doctors: what a search "near" offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Place {
    pub city: String,
    pub country: Option<String>,
    /// The middle of its clinics.
    pub position: Coordinates,
    /// Its clinics with at least one listed doctor.
    pub clinics: u64,
}
