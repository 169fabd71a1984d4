//! Appointments as iCalendar (RFC 5545) for calendar apps: one event per
//! appointment with a stable UID and a SEQUENCE that grows with each change,
//! so that a calendar updates the same event; cancelled ones say so.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use jiff::Timestamp;
use medislot_domain::{AppointmentId, AppointmentStatus, Mode, UserId};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};
use std::collections::HashMap;

/// The product that made the calendar, as RFC 5545 wants it named.
const PRODID: &str = concat!("-//medislot//medislot ", env!("CARGO_PKG_VERSION"), "//EN");

/// A value of a text property the library does not escape itself (`NAME` and
/// the `X-` properties), written as RFC 5545 §3.3.11 escapes TEXT.
fn escaped_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in plain(value).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Text as a content line may carry it: line breaks as `\n` (a lone CR or
/// CRLF becomes one), other control characters dropped.
fn plain(value: &str) -> String {
    value.replace("\r\n", "\n").replace('\r', "\n").chars().filter(|c| *c == '\n' || !c.is_control()).collect()
}

/// A parameter value (a person's or a clinic's name in `CN`) as RFC 6868
/// escapes it: `^` as `^^`, `"` as `^'`, a line break as `^n`; quoted when it
/// holds `,`. (The library quotes values holding `:` or `;` itself.)
fn param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in plain(value).chars() {
        match c {
            '^' => out.push_str("^^"),
            '"' => out.push_str("^'"),
            '\n' => out.push_str("^n"),
            c => out.push(c),
        }
    }
    if out.contains(',') && !out.contains([':', ';']) {
        format!("\"{out}\"")
    } else {
        out
    }
}

/// An empty calendar named `name`, with this product's identifier.
fn calendar(name: &str, method: &str) -> Calendar {
    let mut cal = Calendar::empty();
    cal.append_property(("VERSION", "2.0"))
        .append_property(("PRODID", PRODID))
        .append_property(("CALSCALE", "GREGORIAN"))
        .append_property(("METHOD", method))
        .append_property(("NAME", escaped_text(name).as_str()))
        .append_property(("X-WR-CALNAME", escaped_text(name).as_str()));
    cal
}

fn utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}

/// An event for one appointment: the UID is the appointment's, the SEQUENCE
/// its version, times in UTC, the place the clinic's — or, online, the video
/// link (LOCATION and URL) when the reader may have it, else "Online".
fn event_of(
    id: AppointmentId,
    version: i64,
    span: (Timestamp, Timestamp),
    (mode, video): (Mode, Option<&str>),
    c: &ClinicRecord,
    now: Timestamp,
) -> Event {
    let mut event = Event::new();
    event
        .uid(&format!("{id}@medislot"))
        .sequence(u32::try_from(version).unwrap_or(0))
        .timestamp(utc(now))
        .starts(utc(span.0))
        .ends(utc(span.1));
    match video.filter(|_| mode == Mode::Online) {
        Some(url) => event.location(&plain(url)).add_property("URL", plain(url)),
        None => event.location(&plain(&place(mode, c))),
    };
    event
}

/// The appointment as a one-event calendar (`METHOD:PUBLISH`), times in UTC;
/// `video` is its link for a reader who may have it.
pub fn appointment_ics(
    a: &AppointmentRecord,
    d: &DoctorRecord,
    c: &ClinicRecord,
    video: Option<&str>,
    now: Timestamp,
) -> String {
    let mut cal = calendar("medislot", "PUBLISH");
    cal.push(patient_event(a, d, c, video, now));
    cal.done().to_string()
}

/// A patient's appointments as one calendar (their data export): each as
/// [`appointment_ics`] gives it, cancelled ones marked so.
pub fn patient_calendar(
    items: &[(AppointmentRecord, &DoctorRecord, &ClinicRecord)],
    videos: &HashMap<AppointmentId, String>,
    now: Timestamp,
) -> String {
    let mut cal = calendar("medislot — my appointments", "PUBLISH");
    for (a, d, c) in items {
        cal.push(patient_event(a, d, c, videos.get(&a.id).map(String::as_str), now));
    }
    cal.done().to_string()
}

/// One appointment as its patient's calendar shows it.
fn patient_event(
    a: &AppointmentRecord,
    d: &DoctorRecord,
    c: &ClinicRecord,
    video: Option<&str>,
    now: Timestamp,
) -> icalendar::Event {
    let cancelled = matches!(a.status, AppointmentStatus::Cancelled | AppointmentStatus::Conflict);
    let mut event = event_of(a.id, a.version, (a.start, a.end), (a.mode, video), c, now);
    event
        .summary(&plain(&format!("Appointment with {}", d.name)))
        .description(&plain(&format!(
            "{} — {}.{} Times are {} local time in the clinic.",
            d.name,
            d.specialties.join(", "),
            if a.mode == Mode::Online { " Online (video) consultation." } else { "" },
            c.time_zone.as_str()
        )))
        .status(if cancelled { EventStatus::Cancelled } else { EventStatus::Confirmed });
    event.done()
}

fn place(mode: Mode, c: &ClinicRecord) -> String {
    if mode == Mode::Online {
        "Online".to_string()
    } else {
        format!("{}, {}", c.name, c.address)
    }
}

/// What an e-mail's calendar part says: iTIP (RFC 5546) `REQUEST` for a new or
/// changed appointment, `CANCEL` for a cancelled one. The UID is the
/// appointment's and the SEQUENCE its version, so a calendar app updates or
/// removes the event it already has.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    pub appointment: AppointmentId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
    /// The appointment's version after the change.
    pub sequence: i64,
    pub cancelled: bool,
    /// A slot offered from the waitlist, not confirmed yet.
    pub tentative: bool,
    pub doctor: &'a DoctorRecord,
    pub clinic: &'a ClinicRecord,
    /// The clinic's sending address (ORGANIZER) and the patient (ATTENDEE).
    pub organizer: &'a str,
    pub attendee: &'a str,
    pub attendee_name: &'a str,
    /// The video consultation's link: the event's place and URL.
    pub video_url: Option<&'a str>,
}

pub fn invitation_ics(i: &Invitation<'_>, now: Timestamp) -> String {
    let mut event = event_of(i.appointment, i.sequence, (i.start, i.end), (i.mode, i.video_url), i.clinic, now);
    event
        .summary(&plain(&format!("Appointment with {}", i.doctor.name)))
        .description(&plain(&format!(
            "{} ({}). Times are {} local time in the clinic.",
            i.doctor.name,
            i.doctor.specialties.join(", "),
            i.clinic.time_zone.as_str()
        )))
        .status(if i.cancelled {
            EventStatus::Cancelled
        } else if i.tentative {
            EventStatus::Tentative
        } else {
            EventStatus::Confirmed
        });
    event.append_property(
        icalendar::Property::new("ORGANIZER", format!("mailto:{}", i.organizer))
            .add_parameter("CN", &param(&i.clinic.name))
            .done(),
    );
    event.append_property(
        icalendar::Property::new("ATTENDEE", format!("mailto:{}", i.attendee))
            .add_parameter("CN", &param(i.attendee_name))
            .add_parameter("ROLE", "REQ-PARTICIPANT")
            .done(),
    );
    let mut cal = calendar("medislot", if i.cancelled { "CANCEL" } else { "REQUEST" });
    cal.push(event.done());
    cal.done().to_string()
}

/// A doctor's agenda as a subscribable feed (times in UTC): every event names
/// the patient and carries the appointment's status — arrived, fulfilled and
/// no-shows included — in its summary and in `X-MEDISLOT-STATUS`; online
/// ones still on carry their video link (`video_links`).
pub fn doctor_feed(
    d: &DoctorRecord,
    c: &ClinicRecord,
    appointments: &[AppointmentRecord],
    patients: &HashMap<UserId, String>,
    video_links: &HashMap<AppointmentId, String>,
    now: Timestamp,
) -> String {
    let mut cal = calendar(&format!("{} — medislot agenda", d.name), "PUBLISH");
    cal.append_property(("X-WR-TIMEZONE", c.time_zone.as_str()));
    for a in appointments {
        let patient = patients.get(&a.patient_id).map_or("a patient", String::as_str);
        let status = a.status.as_str();
        let video = video_links.get(&a.id).map(String::as_str);
        let mut event = event_of(a.id, a.version, (a.start, a.end), (a.mode, video), c, now);
        event
            .summary(&plain(&format!("{patient} [{status}]")))
            .description(&plain(&format!(
                "Reason: {}. Status: {status}.{}",
                if a.reason.is_empty() { "—" } else { &a.reason },
                a.cancel_reason.as_deref().map(|r| format!(" Cancelled: {r}.")).unwrap_or_default()
            )))
            .add_property("X-MEDISLOT-STATUS", status)
            .status(match a.status {
                AppointmentStatus::Cancelled | AppointmentStatus::Conflict => EventStatus::Cancelled,
                AppointmentStatus::Pending | AppointmentStatus::Held => EventStatus::Tentative,
                _ => EventStatus::Confirmed,
            });
        cal.push(event.done());
    }
    cal.done().to_string()
}
