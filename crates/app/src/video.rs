//! Video consultations: an online appointment's meeting link is the
//! configured provider's address with the appointment's own room, a name of
//! 128 random bits the store draws when the appointment is made and again
//! when it moves. Only the appointment's parties — its patient, its doctor
//! and the doctor's clinic staff — are shown it, and only while the
//! appointment is live: not platform admins, not once it is cancelled or over.

use crate::{Actor, App, AppError};
use medislot_domain::{AppointmentId, DoctorId, Invalid, Mode, Role};
use medislot_store::AppointmentRecord;
use std::collections::HashMap;

/// Where video rooms are unless configured otherwise: Jitsi's public service.
pub const DEFAULT_VIDEO_URL: &str = "https://meet.jit.si";

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
        let bad = |why: &str| Invalid::field(field, format!("{why} (e.g. {DEFAULT_VIDEO_URL})"));
        let url = url::Url::parse(value.trim()).map_err(|_| bad("is not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad("must be an http(s) address with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(bad("must not carry a query, a fragment or credentials"));
        }
        Ok(Self { base: url.as_str().trim_end_matches('/').to_string() })
    }

    /// The room's address.
    pub fn room_url(&self, room: &str) -> String {
        format!("{}/medislot-{room}", self.base)
    }
}

impl App {
    /// The meeting link of an online appointment while it is live (held,
    /// pending, booked, arrived); none for one in person, cancelled or over.
    /// Whoever is shown it must be one of its parties ([`Self::video_links`]).
    pub fn video_link(&self, a: &AppointmentRecord) -> Option<String> {
        if a.mode != Mode::Online || !a.status.is_active() {
            return None;
        }
        a.video_room.as_deref().map(|room| self.config.video.room_url(room))
    }

    /// The meeting link of one appointment, if `actor` may be shown it.
    pub async fn video_link_for(
        &self,
        actor: Option<&Actor>,
        a: &AppointmentRecord,
    ) -> Result<Option<String>, AppError> {
        let Some(actor) = actor else { return Ok(None) };
        Ok(self.video_links(actor, std::slice::from_ref(a)).await?.remove(&a.id))
    }

    /// The meeting links among `items` that `actor` may be shown: those of
    /// their own appointments as patient, and of the doctors they are or run
    /// the clinic of.
    pub async fn video_links(
        &self,
        actor: &Actor,
        items: &[AppointmentRecord],
    ) -> Result<HashMap<AppointmentId, String>, AppError> {
        let mut doctor_side: HashMap<DoctorId, bool> = HashMap::new();
        let mut out = HashMap::new();
        for a in items {
            let Some(link) = self.video_link(a) else { continue };
            let party = if a.patient_id == actor.id() {
                true
            } else if let Some(known) = doctor_side.get(&a.doctor_id) {
                *known
            } else {
                let side = match self.store.doctor(a.doctor_id).await? {
                    Some(d) if matches!(actor.role(), Role::Doctor | Role::ClinicAdmin) => {
                        self.on_doctors_side(actor, &d).await?
                    }
                    _ => false,
                };
                doctor_side.insert(a.doctor_id, side);
                side
            };
            if party {
                out.insert(a.id, link);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
