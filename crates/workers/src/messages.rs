//! What each notification says, to patients and to doctors: subject, a
//! one-line summary (the in-app notification), the e-mail text and its
//! calendar part. Every time is in the clinic's zone, with the zone named.

use jiff::Timestamp;
use medislot_app::calendar::{invitation_ics, Invitation};
use medislot_domain::{AppointmentId, Mode, TimeZoneName, UserId};
use medislot_store::{ClinicRecord, DoctorRecord, UserRecord};

/// An appointment change as the outbox recorded it.
#[derive(Debug, Clone)]
pub struct EventView {
    pub event_id: uuid::Uuid,
    pub topic: String,
    pub appointment_id: AppointmentId,
    pub patient_id: UserId,
    pub actor_id: Option<UserId>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub previous_start: Option<Timestamp>,
    pub previous_status: Option<String>,
    pub status: String,
    pub version: i64,
    pub mode: Mode,
    pub cancel_reason: Option<String>,
    pub hold_expires_at: Option<Timestamp>,
    /// Slots offered instead (a conflict), as the clinic writes them.
    pub alternatives: Vec<String>,
}

impl EventView {
    /// Reads an outbox payload (see `medislot_store::outbox_payload`).
    pub fn parse(event_id: uuid::Uuid, topic: &str, p: &serde_json::Value) -> Option<Self> {
        let text = |k: &str| p.get(k).and_then(|v| v.as_str());
        let ts = |k: &str| text(k).and_then(|s| s.parse::<Timestamp>().ok());
        let id = |k: &str| text(k).and_then(|s| uuid::Uuid::parse_str(s).ok());
        Some(Self {
            event_id,
            topic: topic.to_string(),
            appointment_id: AppointmentId(id("appointment_id")?),
            patient_id: UserId(id("patient_id")?),
            actor_id: id("actor_id").map(UserId),
            start: ts("start")?,
            end: ts("end")?,
            previous_start: ts("previous_start"),
            previous_status: text("previous_status").map(str::to_string),
            status: text("status")?.to_string(),
            version: p.get("version").and_then(|v| v.as_i64())?,
            mode: text("mode").and_then(|m| Mode::parse("mode", m).ok()).unwrap_or(Mode::InPerson),
            cancel_reason: text("cancel_reason").map(str::to_string),
            hold_expires_at: ts("hold_expires_at"),
            alternatives: p
                .get("alternatives")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.get("local_start")?.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Patient,
    Doctor,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Patient => "patient",
            Audience::Doctor => "doctor",
        }
    }
}

/// What kind of message; the e-mail's `kind` and the in-app notification's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Booked,
    Rescheduled,
    Cancelled,
    Reminder,
    WaitlistOffer,
    /// A booking accepted as pending that the clinic's home region could not honour.
    Conflict,
    /// A booking the clinic's no-show rule made a request: the clinic answers it.
    Requested,
}

impl Kind {
    pub fn of_topic(topic: &str) -> Option<Self> {
        Some(match topic {
            "appointment.booked" => Kind::Booked,
            "appointment.rescheduled" => Kind::Rescheduled,
            "appointment.cancelled" => Kind::Cancelled,
            "waitlist.offered" => Kind::WaitlistOffer,
            "appointment.conflict" => Kind::Conflict,
            "appointment.requested" => Kind::Requested,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Booked => "booked",
            Kind::Rescheduled => "rescheduled",
            Kind::Cancelled => "cancelled",
            Kind::Reminder => "reminder",
            Kind::WaitlistOffer => "waitlist_offer",
            Kind::Conflict => "conflict",
            Kind::Requested => "requested",
        }
    }
}

/// Everyone and everything a message names.
pub struct Parties<'a> {
    pub doctor: &'a DoctorRecord,
    pub clinic: &'a ClinicRecord,
    pub patient: &'a UserRecord,
    /// The address e-mails come from (the calendar invitation's organizer).
    pub organizer: &'a str,
    /// Where links point, e.g. `https://medislot.example`.
    pub public_url: &'a str,
    /// The video consultation's link, for an online appointment still on.
    pub video_url: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub subject: String,
    pub summary: String,
    pub text: String,
    /// The calendar part: (iTIP method, iCalendar text).
    pub ics: Option<(&'static str, String)>,
    pub link: Option<String>,
}

/// "Tuesday 3 March 2026, 09:00–09:30 Europe/Paris (CET)".
pub fn when(start: Timestamp, end: Timestamp, zone: &TimeZoneName) -> String {
    let tz = zone.tz();
    let (s, e) = (start.to_zoned(tz.clone()), end.to_zoned(tz));
    format!("{}–{} {} ({})", s.strftime("%A %-d %B %Y, %H:%M"), e.strftime("%H:%M"), zone.as_str(), s.strftime("%Z"))
}

fn short_when(start: Timestamp, zone: &TimeZoneName) -> String {
    let s = start.to_zoned(zone.tz());
    format!("{} {} ({})", s.strftime("%a %-d %b %Y, %H:%M"), zone.as_str(), s.strftime("%Z"))
}

/// The message one audience gets about one appointment event.
pub fn compose(kind: Kind, to: Audience, ev: &EventView, p: &Parties<'_>, now: Timestamp) -> Message {
    let zone = &p.clinic.time_zone;
    let when_text = when(ev.start, ev.end, zone);
    let short = short_when(ev.start, zone);
    let other = match to {
        Audience::Patient => p.doctor.name.clone(),
        Audience::Doctor => p.patient.name.clone(),
    };
    let place = if ev.mode == Mode::Online {
        match p.video_url {
            Some(url) => format!("Online, by video: {url}"),
            None => "Online (video)".to_string(),
        }
    } else {
        format!("{}, {}", p.clinic.name, p.clinic.address_line())
    };
    let link = match kind {
        Kind::WaitlistOffer => format!("{}/holds/{}", p.public_url, ev.appointment_id),
        _ => format!("{}/appointments/{}", p.public_url, ev.appointment_id),
    };
    let (subject, lead) = match kind {
        Kind::Conflict => (
            format!("Not booked: {other}, {short} was taken"),
            format!(
                "We accepted your request while the clinic's region was unreachable; it has now answered that this slot \
                 was taken in the meantime, so it is not booked.{}",
                ev.alternatives
                    .iter()
                    .map(|a| format!("\n  - {a}"))
                    .fold(String::new(), |acc, line| if acc.is_empty() { format!(" Free slots nearby:{line}") } else { acc + &line })
            ),
        ),
        Kind::Requested => match to {
            Audience::Patient => (
                format!("Request sent: {other}, {short}"),
                "After missed appointments, the clinic confirms your bookings itself: it will accept or decline \
                 this request, and you will be told. The time is kept for you meanwhile."
                    .to_string(),
            ),
            Audience::Doctor => (
                format!("Request to answer: {other}, {short}"),
                "A patient with missed appointments asks for this time: accept or decline it in your agenda.".into(),
            ),
        },
        Kind::Booked => match to {
            Audience::Patient => {
                (format!("Appointment confirmed: {other}, {short}"), "Your appointment is confirmed.".to_string())
            }
            Audience::Doctor => {
                (format!("New appointment: {other}, {short}"), "A patient booked an appointment with you.".into())
            }
        },
        Kind::Rescheduled => {
            let from = ev.previous_start.map(|t| short_when(t, zone)).unwrap_or_default();
            (format!("Appointment moved: {other}, now {short}"), format!("The appointment on {from} has moved."))
        }
        Kind::Cancelled => {
            let by = match ev.actor_id {
                Some(a) if a == ev.patient_id => {
                    if to == Audience::Patient {
                        "you"
                    } else {
                        "the patient"
                    }
                }
                Some(a) if p.doctor.user_id == Some(a) => {
                    if to == Audience::Doctor {
                        "you"
                    } else {
                        "the doctor"
                    }
                }
                _ => "the clinic",
            };
            let why = ev.cancel_reason.as_deref().filter(|r| !r.is_empty()).unwrap_or("no reason given");
            (
                format!("Appointment cancelled: {other}, {short}"),
                format!("This appointment was cancelled by {by} (reason: {why})."),
            )
        }
        Kind::Reminder => (format!("Reminder: {other}, {short}"), "A reminder of your coming appointment.".into()),
        Kind::WaitlistOffer => {
            let until = ev.hold_expires_at.map(|t| short_when(t, zone)).unwrap_or_default();
            (
                format!("A slot with {other} is free: {short}"),
                format!(
                    "A slot you were waiting for came free and is held for you until {until}. Confirm it here: {link}"
                ),
            )
        }
    };
    let text = format!(
        "{lead}\n\n{}: {other}\nWhen: {when_text}\nWhere: {place}\n\nDetails: {link}\n\nTimes are local time in the clinic ({}).\n— medislot for {}\n",
        if to == Audience::Patient { "Doctor" } else { "Patient" },
        zone.as_str(),
        p.clinic.name,
    );
    let invitation = Invitation {
        appointment: ev.appointment_id,
        start: ev.start,
        end: ev.end,
        mode: ev.mode,
        sequence: ev.version,
        cancelled: matches!(kind, Kind::Cancelled | Kind::Conflict),
        tentative: matches!(kind, Kind::WaitlistOffer | Kind::Requested),
        doctor: p.doctor,
        clinic: p.clinic,
        organizer: p.organizer,
        attendee: &p.patient.email,
        attendee_name: &p.patient.name,
        video_url: p.video_url,
    };
    let method = if matches!(kind, Kind::Cancelled | Kind::Conflict) { "CANCEL" } else { "REQUEST" };
    Message {
        summary: format!("{lead} {when_text}."),
        subject,
        text,
        ics: Some((method, invitation_ics(&invitation, now))),
        link: Some(link),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_in_the_clinics_zone_with_the_zone_named_across_dst() {
        let paris = TimeZoneName::parse("time_zone", "Europe/Paris").unwrap();
        // 29 March 2026: Paris moves from CET (+01) to CEST (+02) at 02:00.
        let before: Timestamp = "2026-03-28T08:00:00Z".parse().unwrap();
        let after: Timestamp = "2026-03-30T07:00:00Z".parse().unwrap();
        let half_hour = jiff::SignedDuration::from_mins(30);
        assert_eq!(when(before, before + half_hour, &paris), "Saturday 28 March 2026, 09:00–09:30 Europe/Paris (CET)");
        assert_eq!(when(after, after + half_hour, &paris), "Monday 30 March 2026, 09:00–09:30 Europe/Paris (CEST)");
    }
}
