//! Video consultations: an online appointment's meeting link is the
//! configured provider's address with the appointment's own room, a name of
//! 128 random bits the store draws when the appointment is made and again
//! when it moves — or, for a doctor who has one, the doctor's own fixed
//! room. Only the appointment's parties — its patient, its doctor and the
//! doctor's clinic staff — are shown it, and only while the appointment is
//! live: not platform admins, not once it is cancelled or over. A doctor's
//! own room is likewise the doctor's side's to see and set.

use crate::access::require;
use crate::{Actor, App, AppError};
use medislot_domain::{AppointmentId, DoctorId, Invalid, Mode, Role};
use medislot_store::{AppointmentRecord, ClinicRecord, DoctorRecord};
use std::collections::HashMap;

/// Where video rooms are unless configured otherwise: Jitsi's public service.
pub const DEFAULT_VIDEO_URL: &str = "https://meet.jit.si";

/// A doctor's own room as the API documents it: http(s), a host of letters,
/// digits, dots and hyphens, an optional port, and a path (with any query) of
/// printable ASCII. [`parse_room_url`] checks exactly this, then that the URL
/// standard reads it (a host it can encode, a port in range).
pub const ROOM_URL_PATTERN: &str = r"^https?://[A-Za-z0-9.-]{1,200}(:[0-9]{1,5})?(/[!-~]{0,1500})?$";

/// A doctor's own room: an address matching [`ROOM_URL_PATTERN`] that parses.
pub fn parse_room_url(field: &str, value: &str) -> Result<String, Invalid> {
    let bad = || {
        Invalid::field(field, "must be an http(s) address: a host name, an optional port and path (e.g. https://meet.example.org/dr-martin)")
    };
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://")).ok_or_else(bad)?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = authority.split_once(':').map_or((authority, None), |(h, p)| (h, Some(p)));
    let host_ok =
        (1..=200).contains(&host.len()) && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = path.len() <= 1500 && path.bytes().all(|b| (b'!'..=b'~').contains(&b));
    if !(host_ok && port_ok && path_ok) {
        return Err(bad());
    }
    Ok(parse_address(field, value, false)?.to_string())
}

/// An http(s) address with a host and no credentials; `plain` also refuses a
/// query and a fragment (a base that room names are appended to).
fn parse_address(field: &str, value: &str, plain: bool) -> Result<url::Url, Invalid> {
    let bad = |why: &str| Invalid::field(field, format!("{why} (e.g. {DEFAULT_VIDEO_URL})"));
    if value.len() > 2000 {
        return Err(bad("must be at most 2000 characters"));
    }
    let url = url::Url::parse(value.trim()).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must be an http(s) address with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if plain && (url.query().is_some() || url.fragment().is_some()) {
        return Err(bad("must not carry a query, a fragment or credentials"));
    }
    Ok(url)
}

/// A Jitsi-compatible video service: a room is its address followed by the
/// room's name (`https://meet.example/medislot-…`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoProvider {
    base: String,
}

impl Default for VideoProvider {
    fn default() -> Self {
        Self { base: DEFAULT_VIDEO_URL.into() }
    }
}

impl VideoProvider {
    /// An `https://` (or, for a service on the clinic's own network,
    /// `http://`) address with a host and no query or fragment.
    pub fn parse(field: &str, value: &str) -> Result<Self, Invalid> {
        let url = parse_address(field, value, true)?;
        Ok(Self { base: url.as_str().trim_end_matches('/').to_string() })
    }

    /// The room's address.
    pub fn room_url(&self, room: &str) -> String {
        format!("{}/medislot-{room}", self.base)
    }
}

impl App {
    /// The meeting link of an online appointment of `doctor` while it is live
    /// (held, pending, booked, arrived): the doctor's own room, or the
    /// appointment's on the provider; none for one in person, cancelled or
    /// over. Whoever is shown it must be one of its parties ([`Self::video_links`]).
    pub fn video_link(&self, a: &AppointmentRecord, doctor: &DoctorRecord) -> Option<String> {
        if a.mode != Mode::Online || !a.status.is_active() {
            return None;
        }
        match &doctor.video_room_url {
            Some(own) => Some(own.clone()),
            None => a.video_room.as_deref().map(|room| self.config.video.room_url(room)),
        }
    }

    /// The doctor's own video room, for the doctor's side.
    pub async fn video_room_of(&self, actor: Option<&Actor>, doctor: DoctorId) -> Result<DoctorRecord, AppError> {
        let actor = require(actor)?;
        let d = self.doctor(Some(actor), doctor).await?;
        if !self.on_doctors_side(actor, &d).await? {
            return Err(AppError::Forbidden("only the doctor and their clinic's admins see the doctor's video room"));
        }
        Ok(d)
    }

    /// Sets (or, with `None`, clears) the doctor's own video room: an http(s)
    /// address their online appointments then all use, instead of a room each
    /// on the provider. `if_match`: the doctor's version, as for the profile.
    pub async fn set_video_room(
        &self,
        actor: Option<&Actor>,
        doctor: DoctorId,
        url: Option<&str>,
        if_match: Option<i64>,
    ) -> Result<DoctorRecord, AppError> {
        let mut d = self.video_room_of(actor, doctor).await?;
        if if_match.is_some_and(|v| v != d.version) {
            return Err(AppError::PreconditionFailed { current: d.version });
        }
        d.video_room_url = url.map(|u| parse_room_url("url", u)).transpose()?;
        self.save_doctor(d).await
    }

    /// The meeting link of one appointment of `doctor`, if `actor` may be shown it.
    pub async fn video_link_for(
        &self,
        actor: Option<&Actor>,
        a: &AppointmentRecord,
        doctor: &DoctorRecord,
    ) -> Result<Option<String>, AppError> {
        let Some(actor) = actor else { return Ok(None) };
        let Some(link) = self.video_link(a, doctor) else { return Ok(None) };
        Ok(self.is_party(actor, a, doctor).await?.then_some(link))
    }

    /// The meeting links among `items` that `actor` may be shown: those of
    /// their own appointments as patient, and of the doctors they are or run
    /// the clinic of. `doctors`: the items' doctors, as the caller loaded
    /// them to show the items (an item whose doctor is missing has none).
    pub async fn video_links(
        &self,
        actor: &Actor,
        items: &[AppointmentRecord],
        doctors: &HashMap<DoctorId, (DoctorRecord, ClinicRecord)>,
    ) -> Result<HashMap<AppointmentId, String>, AppError> {
        let mut doctor_side: HashMap<DoctorId, bool> = HashMap::new();
        let mut out = HashMap::new();
        for a in items {
            let Some((d, _)) = doctors.get(&a.doctor_id) else { continue };
            let Some(link) = self.video_link(a, d) else { continue };
            let party = match doctor_side.get(&a.doctor_id) {
                _ if a.patient_id == actor.id() => true,
                Some(known) => *known,
                None => {
                    let side = self.is_party(actor, a, d).await?;
                    doctor_side.insert(a.doctor_id, side);
                    side
                }
            };
            if party {
                out.insert(a.id, link);
            }
        }
        Ok(out)
    }

    /// The appointment's patient, or the doctor's side.
    async fn is_party(&self, actor: &Actor, a: &AppointmentRecord, doctor: &DoctorRecord) -> Result<bool, AppError> {
        Ok(a.patient_id == actor.id()
            || (matches!(actor.role(), Role::Doctor | Role::ClinicAdmin)
                && self.on_doctors_side(actor, doctor).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doctors_room_is_an_http_address_with_a_plain_host() {
        for good in ["https://meet.example.org/dr-martin", "http://10.0.0.7:8443/r?pwd=x#y", "https://zoom.us/j/123"] {
            assert!(parse_room_url("url", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "meet.example.org/x",
            "ftp://meet.example.org",
            "https://user@meet.example.org/",
            "https://meet example.org/",
            "https://meet.example.org/a b",
            "https://exämple.org/",
            "https://meet.example.org:99999/",
            "https://meet.example.org:/",
        ] {
            let e = parse_room_url("url", bad).unwrap_err();
            assert_eq!(e.0[0].field, "url", "{bad}");
        }
    }

    #[test]
    fn a_provider_is_an_http_address_and_rooms_follow_it() {
        let p = VideoProvider::parse("video_url", "https://meet.example.org/team/").unwrap();
        assert_eq!(p.room_url("ab12"), "https://meet.example.org/team/medislot-ab12");
        assert_eq!(VideoProvider::default().room_url("x"), "https://meet.jit.si/medislot-x");
        for bad in ["meet.example.org", "ftp://meet.example.org", "https://meet.example.org/?a=1", "https://u:p@h/", ""]
        {
            let e = VideoProvider::parse("video_url", bad).unwrap_err();
            assert_eq!(e.0[0].field, "video_url", "{bad}");
        }
    }
}
