//! Appointments as iCalendar (RFC 5545) for calendar apps: one event per
//! appointment with a stable UID and a SEQUENCE that grows with each change,
//! so that a calendar updates the same event; cancelled ones say so.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use jiff::Timestamp;
use medislot_domain::{AppointmentStatus, Mode};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};

fn utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}

/// The appointment as a one-event calendar (`METHOD:PUBLISH`), times in UTC.
pub fn appointment_ics(a: &AppointmentRecord, d: &DoctorRecord, c: &ClinicRecord, now: Timestamp) -> String {
    let cancelled = matches!(a.status, AppointmentStatus::Cancelled | AppointmentStatus::Conflict);
    let mut event = Event::new();
    event
        .uid(&format!("{}@medislot", a.id))
        .sequence(u32::try_from(a.version).unwrap_or(0))
        .timestamp(utc(now))
        .starts(utc(a.start))
        .ends(utc(a.end))
        .summary(&format!("Appointment with {}", d.name))
        .description(&format!(
            "{} — {}.{} Times are {} local time in the clinic.",
            d.name,
            d.specialties.join(", "),
            if a.mode == Mode::Online { " Online (video) consultation." } else { "" },
            c.time_zone.as_str()
        ))
        .location(&if a.mode == Mode::Online { "Online".to_string() } else { format!("{}, {}", c.name, c.address) })
        .status(if cancelled { EventStatus::Cancelled } else { EventStatus::Confirmed });
    let mut cal = Calendar::new();
    cal.name("medislot").append_property(("METHOD", "PUBLISH")).push(event.done());
    cal.done().to_string()
}
