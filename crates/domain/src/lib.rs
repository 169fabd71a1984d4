//! medislot's domain: pure types and rules, no I/O.
//!
//! Everything here is deterministic given its inputs (the clock is always a
//! parameter), so most of the product's rules are unit-tested in this crate.

pub mod address;
pub mod appointment;
pub mod clinic;
pub mod contact;
pub mod error;
pub mod free_index;
pub mod ids;
pub mod instant;
pub mod people;
pub mod schedule;
pub mod schemas;
pub mod slot_id;
pub mod visit_type;
pub mod vocabulary;
pub mod whole;

pub use appointment::{Action, AppointmentStatus, Interval, Mode};
pub use clinic::{ClinicRules, Coordinates, Policy, TimeZoneName};
pub use contact::PostalAddress;
pub use error::{FieldError, Invalid};
pub use ids::{AppointmentId, ClinicId, DoctorId, UserId};
pub use people::{Email, Membership, Role, VerificationState};
pub use schedule::{Schedule, Slot};
pub use slot_id::SlotId;
pub use visit_type::{default_visit, Answer, BookableBy, VisitType};
