//! The use cases' errors; the HTTP edge maps each to one problem+json type.

use crate::availability::SlotView;
use medislot_domain::{appointment::TransitionError, Invalid};
use medislot_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong e-mail or password")]
    BadCredentials,
    #[error("you may not do this")]
    Forbidden(&'static str),
    /// Does not exist, or exists but is hidden from the caller (P5).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field} is already taken")]
    Taken { field: &'static str },
    #[error("this slot was just taken")]
    SlotTaken { alternatives: Vec<SlotView> },
    /// The patient already has a live appointment overlapping that time
    /// (named when it could be read: a patient sees their own).
    #[error("you already have an appointment at that time")]
    PatientBusy { other: Option<BusyWith> },
    #[error("the appointment changed since you read it (now version {current})")]
    PreconditionFailed { current: i64 },
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("you already hold {0} slots; confirm or let one expire first")]
    TooManyHolds(u32),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Conflict(&'static str),
    /// The visit type is not one this patient may book online (new patients
    /// only, patients already seen, or the clinic's staff only).
    #[error("{0}")]
    VisitRestricted(&'static str),
    /// Marking "arrived" long before the start (a slip of the finger, a day early).
    #[error("too early: a patient can be marked arrived from {minutes} minutes before the start")]
    TooEarly { minutes: i64 },
    /// The clinic's cut-off: patients cancel or move online only until this
    /// long before the start; its staff still can.
    #[error(
        "the clinic takes cancellations and moves online until {hours} hours before the start (until {closed_at}); \
         please call the clinic"
    )]
    ChangesClosed { hours: i64, closed_at: jiff::Timestamp },
    /// P7, `strict`: the clinic's home region cannot be reached; nothing was recorded.
    #[error("the clinic's home region {region} cannot be reached right now; nothing was booked")]
    HomeRegionUnreachable { region: String },
    /// P7, `strict`: the request reached for the home region but no answer
    /// came back; it may have been booked there. Retry with the same Idempotency-Key.
    #[error("the clinic's home region {region} did not answer in time; the booking may or may not have been made: retry with the same Idempotency-Key to find out")]
    HomeRegionNoAnswer { region: String },
    /// The home region refused a forwarded request.
    #[error("the clinic's home region refused the request ({status}): {detail}")]
    Remote { status: u16, detail: String },
    #[error("the service is temporarily unavailable: {0}")]
    Unavailable(String),
    /// The database lost the connection while committing: the change may have
    /// been made. Retry with the same Idempotency-Key to find out.
    #[error("the database did not confirm the change; it may or may not have been made: retry with the same Idempotency-Key to find out ({0})")]
    OutcomeUnknown(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The appointment a patient already has at the time they asked for.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BusyWith {
    #[schema(value_type = String, format = Uuid)]
    pub id: medislot_domain::AppointmentId,
    #[schema(value_type = String, format = DateTime)]
    pub start: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: jiff::Timestamp,
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("record"),
            StoreError::Duplicate(field) => AppError::Taken { field },
            StoreError::SlotTaken => AppError::SlotTaken { alternatives: vec![] },
            StoreError::PatientBusy => AppError::PatientBusy { other: None },
            StoreError::VersionMismatch { current } => AppError::PreconditionFailed { current },
            StoreError::IdempotencyMismatch => AppError::IdempotencyMismatch,
            StoreError::TooManyHolds(n) => AppError::TooManyHolds(n),
            StoreError::Rejected(inner) => match inner.downcast::<AppError>() {
                Ok(app) => *app,
                Err(other) => AppError::Internal(other.to_string()),
            },
            StoreError::Unavailable(m) | StoreError::Retry(m) => AppError::Unavailable(m),
            StoreError::OutcomeUnknown(m) => AppError::OutcomeUnknown(m),
            StoreError::Internal(m) => AppError::Internal(m),
        }
    }
}

impl AppError {
    /// Wraps a use-case error so a store decision function can return it.
    pub(crate) fn rejected(self) -> StoreError {
        StoreError::Rejected(Box::new(self))
    }
}
