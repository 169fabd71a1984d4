//! What people are told and how they follow their appointments: in-app
//! notifications, clinics' webhooks (with their delivery log), the waitlist
//! and doctors' calendar feeds. Sending is the workers' job; these are the
//! use cases behind the API.

use crate::{
    access::{require, Actor},
    App, AppError,
};
use jiff::Timestamp;
use medislot_domain::{AppointmentStatus, ClinicId, DoctorId, Invalid, Mode, Role, VerificationState};
use medislot_store::{
    AppointmentQuery, AppointmentRecord, DeliveryRecord, NotificationRecord, Scope, WaitlistOffer, WaitlistRecord,
    WaitlistStatus, WebhookRecord,
};
use uuid::Uuid;

/// The events a clinic can subscribe a webhook to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "appointment.booked",
    "appointment.rescheduled",
    "appointment.cancelled",
    "appointment.arrived",
    "appointment.fulfilled",
    "appointment.noshow",
];

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// http:// or https:// endpoint that receives signed JSON POSTs.
    #[schema(pattern = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://", max_length = 2000)]
    pub url: String,
    /// Event types; empty or absent: all of them.
    #[serde(default)]
    #[schema(schema_with = webhook_events)]
    pub events: Vec<String>,
}

fn webhook_events() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    let event = medislot_domain::schemas::one_of(WEBHOOK_EVENTS, false);
    utoipa::openapi::schema::ArrayBuilder::new().items(event).into()
}

#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistInput {
    /// Only slots starting at or after this instant.
    #[schema(schema_with = medislot_domain::schemas::instant_or_null)]
    pub from: Option<String>,
    /// Only slots starting before this instant.
    #[schema(schema_with = medislot_domain::schemas::instant_or_null)]
    pub to: Option<String>,
    /// in_person | online; absent: either.
    #[schema(schema_with = medislot_domain::schemas::mode_or_null)]
    pub mode: Option<String>,
}

fn parse_url(raw: &str) -> Result<url::Url, Invalid> {
    let bad = || Invalid::field("url", "must be an http:// or https:// URL with a host, at most 2000 characters");
    let raw = raw.trim();
    if raw.len() > 2000 || raw.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !url.username().is_empty() {
        return Err(bad());
    }
    Ok(url)
}

/// A receiver the node may call: a public address, or a name whose every
/// address is public (checked again at each delivery, on the address actually
/// connected to). Private targets only when the operator allows them.
async fn check_target(url: &url::Url, allow_private: bool) -> Result<(), Invalid> {
    if allow_private {
        return Ok(());
    }
    let inside =
        || Invalid::field("url", "must reach a public address: loopback, private and link-local receivers are refused");
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![ip.into()],
        Some(url::Host::Ipv6(ip)) => vec![ip.into()],
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => return Err(Invalid::field("url", "the receiver's host name does not resolve")),
            }
        }
        None => return Err(inside()),
    };
    if addrs.is_empty() || !addrs.iter().all(|ip| medislot_domain::address::is_public(*ip)) {
        return Err(inside());
    }
    Ok(())
}

fn parse_events(raw: &[String]) -> Result<Vec<String>, Invalid> {
    if raw.is_empty() {
        return Ok(WEBHOOK_EVENTS.iter().map(|e| e.to_string()).collect());
    }
    let mut out = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(Invalid::field(
                format!("events[{i}]"),
                format!("must be one of {}", WEBHOOK_EVENTS.join(", ")),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn parse_instant(field: &str, raw: Option<&str>) -> Result<Option<Timestamp>, Invalid> {
    raw.map(|s| medislot_domain::instant::parse(field, s)).transpose()
}

/// A random secret, URL-safe (webhook signing keys, calendar feed tokens).
pub fn new_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How many notifications one read may ask for.
pub const NOTIFICATIONS_LIMIT: std::ops::RangeInclusive<u32> = 1..=200;
/// How many webhook deliveries one read may ask for.
pub const DELIVERIES_LIMIT: std::ops::RangeInclusive<u32> = 1..=500;

/// `value` if it lies in `range`; otherwise the field is refused with the range
/// (never silently clamped: the caller would not get what they asked for).
fn within(field: &str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, Invalid> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid::field(field, format!("must be a whole number from {} to {}", range.start(), range.end())))
    }
}

/// In-app notifications.
impl App {
    /// The caller's notifications, newest first.
    pub async fn notifications(&self, actor: Option<&Actor>, limit: u32) -> Result<Vec<NotificationRecord>, AppError> {
        let actor = require(actor)?;
        let limit = within("limit", limit, NOTIFICATIONS_LIMIT)?;
        Ok(self.store.notifications(actor.id(), limit).await?)
    }

    pub async fn mark_notification_read(&self, actor: Option<&Actor>, id: Uuid) -> Result<(), AppError> {
        let actor = require(actor)?;
        if self.store.mark_notification_read(actor.id(), id, self.now()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("notification"))
        }
    }
}

/// Clinics' webhooks.
impl App {
    async fn require_clinic_admin(&self, actor: Option<&Actor>, clinic: ClinicId) -> Result<(), AppError> {
        let actor = require(actor)?;
        self.clinic(clinic).await?;
        if actor.is_admin() || self.administers(actor, clinic).await? {
            Ok(())
        } else {
            Err(AppError::Forbidden("only this clinic's admins manage its webhooks"))
        }
    }

    /// Subscribes a URL to events; the answer carries the signing secret.
    pub async fn create_webhook(
        &self,
        actor: Option<&Actor>,
        clinic: ClinicId,
        input: WebhookInput,
    ) -> Result<WebhookRecord, AppError> {
        self.require_clinic_admin(actor, clinic).await?;
        let url = parse_url(&input.url)?;
        let events = parse_events(&input.events)?;
        check_target(&url, self.config.webhooks_allow_private).await?;
        let url = url.to_string();
        let w = WebhookRecord {
            id: Uuid::now_v7(),
            clinic_id: clinic,
            url,
            secret: new_secret(),
            events,
            active: true,
            created_at: self.now(),
        };
        self.store.create_webhook(&w).await?;
        Ok(w)
    }

    pub async fn webhooks(&self, actor: Option<&Actor>, clinic: ClinicId) -> Result<Vec<WebhookRecord>, AppError> {
        self.require_clinic_admin(actor, clinic).await?;
        Ok(self.store.webhooks_of(clinic).await?)
    }

    async fn webhook_of(&self, clinic: ClinicId, id: Uuid) -> Result<WebhookRecord, AppError> {
        match self.store.webhook(id).await? {
            Some(w) if w.clinic_id == clinic => Ok(w),
            _ => Err(AppError::NotFound("webhook")),
        }
    }

    /// Switches a subscription off (its delivery log stays readable).
    pub async fn delete_webhook(&self, actor: Option<&Actor>, clinic: ClinicId, id: Uuid) -> Result<(), AppError> {
        self.require_clinic_admin(actor, clinic).await?;
        self.webhook_of(clinic, id).await?;
        self.store.delete_webhook(id).await?;
        Ok(())
    }

    /// A subscription's delivery log, newest first.
    pub async fn webhook_deliveries(
        &self,
        actor: Option<&Actor>,
        clinic: ClinicId,
        id: Uuid,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, AppError> {
        self.require_clinic_admin(actor, clinic).await?;
        let limit = within("limit", limit, DELIVERIES_LIMIT)?;
        self.webhook_of(clinic, id).await?;
        Ok(self.store.deliveries(Some(&id.to_string()), limit).await?)
    }
}

/// The waitlist.
impl App {
    /// The caller (a patient) waits for a slot with this doctor.
    pub async fn join_waitlist(
        &self,
        actor: Option<&Actor>,
        doctor: DoctorId,
        input: WaitlistInput,
    ) -> Result<WaitlistRecord, AppError> {
        let actor = require(actor)?;
        if actor.role() != Role::Patient {
            return Err(AppError::Forbidden("only patients join waitlists"));
        }
        let d = match self.store.doctor(doctor).await? {
            Some(d) if d.verification == VerificationState::Verified => d,
            _ => return Err(AppError::NotFound("doctor")),
        };
        let not_before = parse_instant("from", input.from.as_deref())?;
        let not_after = parse_instant("to", input.to.as_deref())?;
        if let (Some(a), Some(b)) = (not_before, not_after) {
            if b <= a {
                return Err(Invalid::field("to", "must be after from").into());
            }
        }
        if not_after.is_some_and(|t| t <= self.now()) {
            return Err(Invalid::field("to", "is in the past").into());
        }
        let mode = input.mode.as_deref().map(|m| Mode::parse("mode", m)).transpose()?;
        if let Some(m) = mode {
            if !d.modes.contains(&m) {
                return Err(Invalid::field("mode", format!("this doctor does not offer {}", m.as_str())).into());
            }
        }
        let active = self.store.waitlist_of_patient(actor.id()).await?;
        if active.iter().any(|e| e.doctor_id == doctor && e.status == WaitlistStatus::Waiting) {
            return Err(AppError::Conflict("you are already on this doctor's waitlist"));
        }
        let entry = WaitlistRecord {
            id: Uuid::now_v7(),
            doctor_id: doctor,
            patient_id: actor.id(),
            not_before,
            not_after,
            mode,
            status: WaitlistStatus::Waiting,
            offered_appointment_id: None,
            created_at: self.now(),
        };
        self.store.join_waitlist(&entry).await?;
        Ok(entry)
    }

    /// The caller's waitlist entries (not those they left).
    pub async fn my_waitlist(&self, actor: Option<&Actor>) -> Result<Vec<WaitlistRecord>, AppError> {
        let actor = require(actor)?;
        Ok(self.store.waitlist_of_patient(actor.id()).await?)
    }

    pub async fn leave_waitlist(&self, actor: Option<&Actor>, id: Uuid) -> Result<(), AppError> {
        let actor = require(actor)?;
        if self.store.leave_waitlist(id, actor.id(), self.now()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("waitlist entry"))
        }
    }

    /// Who waits for this doctor, in order (the doctor, their clinic's admins).
    pub async fn doctor_waitlist(
        &self,
        actor: Option<&Actor>,
        doctor: DoctorId,
    ) -> Result<Vec<WaitlistRecord>, AppError> {
        let actor = require(actor)?;
        let d = self.store.doctor(doctor).await?.ok_or(AppError::NotFound("doctor"))?;
        if !self.manages_doctor(actor, &d).await? {
            return Err(AppError::NotFound("doctor"));
        }
        Ok(self.store.waitlist_of_doctor(doctor).await?)
    }

    /// A slot came free (a cancellation, a reschedule away, an offer that ran
    /// out): if it is still on the doctor's schedule and bookable, the first
    /// waiting patient it suits gets a hold on it. Run by the workers.
    pub async fn offer_freed_slot(
        &self,
        doctor: DoctorId,
        start: Timestamp,
        mode: Mode,
    ) -> Result<Option<(WaitlistRecord, AppointmentRecord)>, AppError> {
        let Some(d) = self.store.doctor(doctor).await? else { return Ok(None) };
        if d.verification != VerificationState::Verified {
            return Ok(None);
        }
        let clinic = self.clinic(d.clinic_id).await?;
        let Some(slot) = d.schedule.slot_at(d.id, &clinic.time_zone.tz(), start) else { return Ok(None) };
        let now = self.now();
        let window = d.schedule.bookable_window(now);
        if slot.start < window.start || slot.start >= window.end {
            return Ok(None);
        }
        let offer = WaitlistOffer {
            doctor_id: doctor,
            start: slot.start,
            end: slot.end,
            mode: if d.modes.contains(&mode) { mode } else { slot.mode },
            hold_until: now + self.config.waitlist_hold_ttl,
            origin_region: self.config.region.clone(),
            now,
        };
        let offered = self.store.offer_from_waitlist(&offer).await?;
        if offered.is_some() {
            self.availability_changed(doctor);
        }
        Ok(offered)
    }
}

/// Doctors' calendar feeds.
impl App {
    async fn managed_doctor(&self, actor: Option<&Actor>, doctor: DoctorId) -> Result<(), AppError> {
        let actor = require(actor)?;
        let d = self.store.doctor(doctor).await?.ok_or(AppError::NotFound("doctor"))?;
        if self.manages_doctor(actor, &d).await? {
            Ok(())
        } else {
            Err(AppError::Forbidden("only the doctor and their clinic's admins manage the calendar feed"))
        }
    }

    /// A new secret for the doctor's calendar feed; any earlier one stops working.
    pub async fn new_calendar_token(&self, actor: Option<&Actor>, doctor: DoctorId) -> Result<String, AppError> {
        self.managed_doctor(actor, doctor).await?;
        let token = new_secret();
        self.store.set_calendar_token(doctor, &crate::accounts::token_hash(&token), self.now()).await?;
        Ok(token)
    }

    pub async fn revoke_calendar_token(&self, actor: Option<&Actor>, doctor: DoctorId) -> Result<(), AppError> {
        self.managed_doctor(actor, doctor).await?;
        self.store.revoke_calendar_token(doctor).await?;
        Ok(())
    }

    /// The doctor's agenda (30 days back to the booking horizon) as iCalendar,
    /// for whoever has the feed's current token; otherwise "not found".
    pub async fn calendar_feed(&self, doctor: DoctorId, token: &str) -> Result<String, AppError> {
        if token.is_empty() || !self.store.calendar_token_matches(doctor, &crate::accounts::token_hash(token)).await? {
            return Err(AppError::NotFound("calendar feed"));
        }
        let d = self.store.doctor(doctor).await?.ok_or(AppError::NotFound("calendar feed"))?;
        let clinic = self.clinic(d.clinic_id).await?;
        let now = self.now();
        let q = AppointmentQuery {
            scope: Scope::Doctor(doctor),
            doctor: Some(doctor),
            status: None,
            from: Some(now - jiff::SignedDuration::from_hours(24 * 30)),
            to: Some(now + jiff::SignedDuration::from_hours(24 * (d.schedule.horizon_days + 1))),
            limit: 5000,
            offset: 0,
        };
        let (appointments, _) = self.store.list_appointments(&q).await?;
        let shown: Vec<AppointmentRecord> =
            appointments.into_iter().filter(|a| a.status != AppointmentStatus::Held).collect();
        let patients = {
            let mut names = std::collections::HashMap::new();
            for a in &shown {
                if let std::collections::hash_map::Entry::Vacant(e) = names.entry(a.patient_id) {
                    if let Some(u) = self.store.user_by_id(a.patient_id).await? {
                        e.insert(u.name);
                    }
                }
            }
            names
        };
        // The feed is the doctor's own (its token is theirs): the doctor's side sees the links.
        let links = shown.iter().filter_map(|a| Some((a.id, self.video_link(a, &d)?))).collect();
        Ok(crate::calendar::doctor_feed(&d, &clinic, &shown, &patients, &links, now))
    }
}
