//! The JSON shapes of the API's resources. Instants are RFC 3339 strings in
//! UTC; wherever a person reads a time, the clinic's wall time and zone come too.

use medislot_app::{SearchHit, SlotView};
use medislot_domain::{schedule::local_rfc3339, Schedule, TimeZoneName};
use medislot_store::{AppointmentRecord, AuditRecord, ClinicRecord, DoctorRecord, UserRecord};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    /// patient | doctor | clinic_admin | admin
    pub role: String,
    pub created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role.as_str().into(),
            created_at: u.created_at.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LoginView {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: String,
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct ClinicView {
    pub id: String,
    pub name: String,
    /// The street line(s).
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State, province, county or region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
    /// IANA time zone: every time shown for this clinic is in this zone.
    pub time_zone: String,
    pub region: String,
    /// strict | available
    pub policy: String,
    /// How many hours before an appointment's start patients can no longer
    /// cancel or move it online (the clinic's staff still can); 0: until it starts.
    pub cancel_cutoff_hours: i64,
    /// After this many no-shows here within `noshow_period_days`, a patient's
    /// online booking is a request the clinic confirms; 0: no such rule.
    pub noshow_limit: i64,
    pub noshow_period_days: i64,
    pub created_at: String,
}

impl From<&ClinicRecord> for ClinicView {
    fn from(c: &ClinicRecord) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            address: c.address.clone(),
            city: c.postal.city.clone(),
            district: c.postal.district.clone(),
            postal_code: c.postal.postal_code.clone(),
            country: c.postal.country.clone(),
            phone: c.phone.clone(),
            latitude: c.position.lat,
            longitude: c.position.lon,
            time_zone: c.time_zone.as_str().into(),
            region: c.region.clone(),
            policy: c.policy.as_str().into(),
            cancel_cutoff_hours: c.rules.cutoff_hours(),
            noshow_limit: c.rules.noshow_limit,
            noshow_period_days: c.rules.noshow_period_days,
            created_at: c.created_at.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DoctorView {
    pub id: String,
    pub clinic_id: String,
    pub name: String,
    pub specialties: Vec<String>,
    pub languages: Vec<String>,
    /// in_person | online
    pub modes: Vec<String>,
    pub licence_number: String,
    pub bio: String,
    /// pending | verified | rejected | suspended
    pub verification: String,
    pub verification_reason: Option<String>,
    /// requested (the doctor asked to join; the clinic decides) | invited (the
    /// clinic invited the doctor's account; the doctor decides) | active | declined
    pub membership: String,
    #[schema(value_type = Object)]
    pub schedule: Schedule,
    /// What patients book the doctor for: code, name, duration_minutes,
    /// modes, bookable_by, questions (and, when they differ from the
    /// schedule's, min_notice_minutes and horizon_days). Empty: the schedule's
    /// own slots.
    #[schema(value_type = Vec<Object>)]
    pub visit_types: Vec<medislot_domain::VisitType>,
    /// Also the ETag; send it back in If-Match to update safely.
    pub version: i64,
    pub updated_at: String,
}

impl From<&DoctorRecord> for DoctorView {
    fn from(d: &DoctorRecord) -> Self {
        Self {
            id: d.id.to_string(),
            clinic_id: d.clinic_id.to_string(),
            name: d.name.clone(),
            specialties: d.specialties.clone(),
            languages: d.languages.clone(),
            modes: d.modes.iter().map(|m| m.as_str().to_string()).collect(),
            licence_number: d.licence_number.clone(),
            bio: d.bio.clone(),
            verification: d.verification.as_str().into(),
            verification_reason: d.verification_reason.clone(),
            membership: d.membership.as_str().into(),
            schedule: d.schedule.clone(),
            visit_types: d.visit_types.clone(),
            version: d.version,
            updated_at: d.updated_at.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SlotJson {
    pub slot_id: String,
    pub doctor_id: String,
    pub start: String,
    pub end: String,
    pub mode: String,
    /// The start in the clinic's zone, with its offset.
    pub local_start: String,
    pub time_zone: String,
    /// The visit type the slot is for (its code); none: the schedule's own slot.
    pub visit_type: Option<String>,
}

impl From<&SlotView> for SlotJson {
    fn from(s: &SlotView) -> Self {
        Self {
            slot_id: s.slot_id.clone(),
            doctor_id: s.doctor_id.to_string(),
            start: s.start.to_string(),
            end: s.end.to_string(),
            mode: s.mode.as_str().into(),
            local_start: s.local_start.clone(),
            time_zone: s.time_zone.clone(),
            visit_type: s.visit_type.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SearchHitView {
    pub doctor: DoctorView,
    pub clinic: ClinicView,
    /// Kilometres from `near`, when given.
    pub distance_km: Option<f64>,
    pub next_slot: Option<SlotJson>,
    /// For a doctor homed in another region: as of when this region's copy of
    /// their busy times is (the next slot may have been taken since); for one
    /// of this region's, read from a read replica: as of when its data is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

impl SearchHitView {
    /// `replicas`: each peer region's replica time, as this region last synced it.
    pub fn new(h: &SearchHit, replicas: &std::collections::HashMap<String, jiff::Timestamp>) -> Self {
        Self {
            doctor: (&h.doctor).into(),
            clinic: (&h.clinic).into(),
            distance_km: h.distance_km.map(|d| (d * 10.0).round() / 10.0),
            next_slot: h.next_slot.as_ref().map(Into::into),
            as_of: replicas.get(&h.clinic.region).map(|t| t.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppointmentView {
    pub id: String,
    pub doctor_id: String,
    pub patient_id: String,
    pub start: String,
    pub end: String,
    /// Start and end in the clinic's zone, with offsets.
    pub local_start: Option<String>,
    pub local_end: Option<String>,
    pub time_zone: Option<String>,
    pub mode: String,
    pub reason: String,
    /// held | pending | booked | arrived | fulfilled | noshow | cancelled | conflict (FHIR R4 codes)
    pub status: String,
    /// Also the ETag; send it in If-Match when rescheduling or cancelling.
    pub version: i64,
    pub origin_region: String,
    pub hold_expires_at: Option<String>,
    pub cancel_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The video consultation's link: online appointments only, while live,
    /// and only to the patient, the doctor and the doctor's clinic staff.
    /// It changes when the appointment moves.
    pub video_url: Option<String>,
    /// The visit type booked (none for a doctor without visit types).
    pub visit_type: Option<VisitTypeRef>,
    /// The patient's answers to the visit type's intake questions, each with
    /// the question as it was asked.
    pub intake: Vec<medislot_domain::Answer>,
    /// `clinic`: a request (status `pending`) the clinic's staff accept or
    /// decline (`POST /appointments/{id}/accept`, `…/decline`), as its
    /// no-show rule asks; none otherwise.
    pub awaiting: Option<&'static str>,
}

/// A visit type as an appointment names it.
#[derive(Serialize, ToSchema)]
pub struct VisitTypeRef {
    pub code: String,
    pub name: String,
}

impl AppointmentView {
    /// The appointment as anyone allowed to read it sees it; its video link
    /// is added with [`Self::with_video`] for its parties.
    pub fn new(a: &AppointmentRecord, zone: Option<&TimeZoneName>) -> Self {
        let local = |t| zone.map(|z| local_rfc3339(t, &z.tz()));
        Self {
            id: a.id.to_string(),
            doctor_id: a.doctor_id.to_string(),
            patient_id: a.patient_id.to_string(),
            start: a.start.to_string(),
            end: a.end.to_string(),
            local_start: local(a.start),
            local_end: local(a.end),
            time_zone: zone.map(|z| z.as_str().to_string()),
            mode: a.mode.as_str().into(),
            reason: a.reason.clone(),
            status: a.status.as_str().into(),
            version: a.version,
            origin_region: a.origin_region.clone(),
            hold_expires_at: a.hold_expires_at.map(|t| t.to_string()),
            cancel_reason: a.cancel_reason.clone(),
            created_at: a.created_at.to_string(),
            updated_at: a.updated_at.to_string(),
            video_url: None,
            visit_type: a.visit.as_ref().map(|v| VisitTypeRef { code: v.code.clone(), name: v.name.clone() }),
            intake: a.visit.as_ref().map(|v| v.intake.clone()).unwrap_or_default(),
            awaiting: a.awaiting_clinic.then_some("clinic"),
        }
    }

    /// For one of its parties: its video link (from `App::video_links`).
    pub fn with_video(mut self, url: Option<String>) -> Self {
        self.video_url = url;
        self
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub actor_id: Option<String>,
    pub at: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub from_start: Option<String>,
    pub to_start: Option<String>,
    pub detail: Option<String>,
}

impl From<&AuditRecord> for AuditView {
    fn from(a: &AuditRecord) -> Self {
        Self {
            actor_id: a.actor_id.map(|u| u.to_string()),
            at: a.at.to_string(),
            from_status: a.from_status.map(|s| s.as_str().to_string()),
            to_status: a.to_status.as_str().into(),
            from_start: a.from_start.map(|t| t.to_string()),
            to_start: a.to_start.map(|t| t.to_string()),
            detail: a.detail.clone(),
        }
    }
}

/// One page of a list.
#[derive(Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    pub id: String,
    /// booked | rescheduled | cancelled | reminder | waitlist_offer
    pub kind: String,
    pub title: String,
    pub body: String,
    pub appointment_id: Option<String>,
    /// A page of this site to follow (relative).
    pub link: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
}

impl From<&medislot_store::NotificationRecord> for NotificationView {
    fn from(n: &medislot_store::NotificationRecord) -> Self {
        Self {
            id: n.id.to_string(),
            kind: n.kind.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            appointment_id: n.appointment_id.map(|a| a.to_string()),
            link: n.link.clone(),
            created_at: n.created_at.to_string(),
            read_at: n.read_at.map(|t| t.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub clinic_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    /// The signing secret: only in the answer that creates the subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: String,
}

impl WebhookView {
    pub fn new(w: &medislot_store::WebhookRecord, with_secret: bool) -> Self {
        Self {
            id: w.id.to_string(),
            clinic_id: w.clinic_id.to_string(),
            url: w.url.clone(),
            events: w.events.clone(),
            active: w.active,
            secret: with_secret.then(|| w.secret.clone()),
            created_at: w.created_at.to_string(),
        }
    }
}

/// One webhook delivery in the clinic's log.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's id (the `Medislot-Event-Id` header): the same on every retry.
    pub event_id: String,
    /// The event type, e.g. appointment.booked.
    pub event: String,
    /// pending | delivered | dead | skipped
    pub status: String,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl From<&medislot_store::DeliveryRecord> for DeliveryView {
    fn from(d: &medislot_store::DeliveryRecord) -> Self {
        let pending = d.status == medislot_store::DeliveryStatus::Pending;
        Self {
            event_id: d.event_id.to_string(),
            event: d.kind.clone(),
            status: d.status.as_str().into(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            next_attempt_at: pending.then(|| d.next_attempt_at.to_string()),
            created_at: d.created_at.to_string(),
            delivered_at: d.delivered_at.map(|t| t.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WaitlistView {
    pub id: String,
    pub doctor_id: String,
    pub patient_id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub mode: Option<String>,
    /// waiting | offered | booked | left
    pub status: String,
    /// While `offered`: the hold to confirm (POST /appointments with its slot).
    pub offered_appointment_id: Option<String>,
    pub created_at: String,
}

impl From<&medislot_store::WaitlistRecord> for WaitlistView {
    fn from(w: &medislot_store::WaitlistRecord) -> Self {
        Self {
            id: w.id.to_string(),
            doctor_id: w.doctor_id.to_string(),
            patient_id: w.patient_id.to_string(),
            from: w.not_before.map(|t| t.to_string()),
            to: w.not_after.map(|t| t.to_string()),
            mode: w.mode.map(|m| m.as_str().to_string()),
            status: w.status.as_str().into(),
            offered_appointment_id: w.offered_appointment_id.map(|a| a.to_string()),
            created_at: w.created_at.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CalendarFeedView {
    /// The feed's secret; a new one revokes the old.
    pub token: String,
    /// The feed's path, to subscribe to from a calendar app (prefix the site's address).
    pub path: String,
}
