//! Appointments: statuses (FHIR R4 codes where they exist) and the state machine.

use crate::error::Invalid;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How the consultation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    InPerson,
    Online,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::InPerson => "in_person",
            Mode::Online => "online",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        match s {
            "in_person" => Ok(Mode::InPerson),
            "online" => Ok(Mode::Online),
            _ => Err(Invalid::field(field, "must be in_person or online")),
        }
    }
}

/// An appointment's status. `Held` and `Pending` occupy their slot like `Booked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    /// A short hold during checkout; expires.
    Held,
    /// Accepted in another region, waiting for the home region.
    Pending,
    Booked,
    Arrived,
    Fulfilled,
    Noshow,
    Cancelled,
    /// A pending request the home region refused: the slot was taken.
    Conflict,
}

impl AppointmentStatus {
    pub const ALL: [Self; 8] = [
        Self::Held,
        Self::Pending,
        Self::Booked,
        Self::Arrived,
        Self::Fulfilled,
        Self::Noshow,
        Self::Cancelled,
        Self::Conflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Pending => "pending",
            Self::Booked => "booked",
            Self::Arrived => "arrived",
            Self::Fulfilled => "fulfilled",
            Self::Noshow => "noshow",
            Self::Cancelled => "cancelled",
            Self::Conflict => "conflict",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Invalid::field(
                field,
                "must be one of held, pending, booked, arrived, fulfilled, noshow, cancelled, conflict",
            )
        })
    }

    /// Occupies its time range: the overlap constraint (P1) applies to these.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Held | Self::Pending | Self::Booked | Self::Arrived)
    }

    /// What `action` does to an appointment in this state, or why it cannot.
    pub fn apply(self, action: Action) -> Result<Self, TransitionError> {
        use AppointmentStatus::*;
        let next = match (self, action) {
            (Held, Action::Confirm) => Booked,
            (Pending, Action::Confirm) => Booked,
            (Pending, Action::Refuse) => Conflict,
            (Booked, Action::Arrive) => Arrived,
            (Booked | Arrived, Action::Fulfil) => Fulfilled,
            (Booked, Action::NoShow) => Noshow,
            (s, Action::Cancel) if s.is_active() => Cancelled,
            (Booked, Action::Reschedule) => Booked,
            (from, action) => return Err(TransitionError { from, action }),
        };
        Ok(next)
    }
}

/// Something that changes an appointment's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Confirm,
    Refuse,
    Arrive,
    Fulfil,
    NoShow,
    Cancel,
    Reschedule,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Confirm => "confirm",
            Action::Refuse => "refuse",
            Action::Arrive => "mark arrived",
            Action::Fulfil => "mark fulfilled",
            Action::NoShow => "mark no-show",
            Action::Cancel => "cancel",
            Action::Reschedule => "reschedule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an appointment that is {}", action.verb(), from.as_str())]
pub struct TransitionError {
    pub from: AppointmentStatus,
    pub action: Action,
}

/// A half-open time range `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use AppointmentStatus::*;

    #[test]
    fn the_happy_path_follows_fhir() {
        assert_eq!(Held.apply(Action::Confirm), Ok(Booked));
        assert_eq!(Booked.apply(Action::Arrive), Ok(Arrived));
        assert_eq!(Arrived.apply(Action::Fulfil), Ok(Fulfilled));
        assert_eq!(Booked.apply(Action::NoShow), Ok(Noshow));
        assert_eq!(Pending.apply(Action::Refuse), Ok(Conflict));
    }

    #[test]
    fn finished_appointments_cannot_change() {
        for s in [Fulfilled, Noshow, Cancelled, Conflict] {
            assert!(s.apply(Action::Cancel).is_err());
            assert!(s.apply(Action::Arrive).is_err());
        }
        assert_eq!(
            Arrived.apply(Action::NoShow).unwrap_err().to_string(),
            "cannot mark no-show an appointment that is arrived"
        );
    }

    fn any_status() -> impl Strategy<Value = AppointmentStatus> {
        prop::sample::select(AppointmentStatus::ALL.to_vec())
    }

    fn any_action() -> impl Strategy<Value = Action> {
        prop::sample::select(vec![
            Action::Confirm,
            Action::Refuse,
            Action::Arrive,
            Action::Fulfil,
            Action::NoShow,
            Action::Cancel,
            Action::Reschedule,
        ])
    }

    proptest! {
        /// Whatever happens, an inactive appointment never becomes active again:
        /// a freed slot stays free until somebody books it anew.
        #[test]
        fn inactive_never_reactivates(start in any_status(), actions in prop::collection::vec(any_action(), 0..12)) {
            let mut s = start;
            let mut was_inactive = !s.is_active();
            for a in actions {
                if let Ok(n) = s.apply(a) {
                    s = n;
                }
                if was_inactive {
                    prop_assert!(!s.is_active());
                }
                was_inactive |= !s.is_active();
            }
        }

        #[test]
        fn parse_round_trips(s in any_status()) {
            prop_assert_eq!(AppointmentStatus::parse("status", s.as_str()).unwrap(), s);
        }
    }
}
