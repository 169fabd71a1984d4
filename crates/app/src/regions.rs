//! Regions: every clinic has one home region that owns its doctors'
//! appointments (P1 is the home database's constraint). A booking of a doctor
//! homed elsewhere is forwarded to the home region; when it cannot be reached,
//! the clinic's policy decides (P7): `strict` answers 503 fast and records
//! nothing, `available` records the request durably as `pending` and the
//! forwarder settles it once the home region answers: `booked` or `conflict`.
//!
//! How regions talk is the edge's business: [`RegionLink`] is implemented over
//! HTTP by the workers crate and injected with [`App::with_region_link`].

use crate::{access::Actor, booking::Bookable, App, AppError};
use async_trait::async_trait;
use jiff::Timestamp;
use medislot_domain::{AppointmentId, AppointmentStatus, DoctorId, Policy, Role, UserId};
use medislot_store::{AppointmentRecord, ForwardRecord, ForwardStatus, IdempotencyKey, Placed, StoreError, UserRecord};
use std::sync::Arc;

/// A peer link's state, from heartbeats and forwarding attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Up,
    /// The last contact failed; not yet given up on.
    Suspect,
    /// Failing: requests to it fail fast (the circuit is open) until a heartbeat gets through.
    Down,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerStatus {
    pub region: String,
    pub url: String,
    pub state: LinkState,
    /// Milliseconds since the last successful contact.
    pub last_contact_ms: Option<u64>,
}

/// A booking as forwarded to the home region: who (the patient, known there
/// by id), what (the slot), and the key that makes retries safe (P3).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ForwardedBooking {
    pub appointment_id: AppointmentId,
    pub patient_id: UserId,
    pub patient_email: String,
    pub patient_name: String,
    pub slot_id: String,
    pub mode: Option<String>,
    pub reason: String,
    pub idempotency_key: String,
    pub origin_region: String,
    /// The patient's answers to the visit type's intake questions, as the
    /// origin checked them (the visit type itself is in the slot id).
    #[serde(default)]
    pub intake: Vec<medislot_domain::Answer>,
}

/// The home region's answer.
#[derive(Debug, Clone)]
pub enum HomeAnswer {
    Booked(Box<AppointmentRecord>),
    /// 409: the slot is taken.
    Taken,
    /// Anything else (the request is wrong, or the home refuses it): not retried.
    Refused {
        status: u16,
        detail: String,
    },
}

/// A change to an appointment homed elsewhere, asked for by its patient here.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RemoteChange {
    pub patient_id: UserId,
    /// `cancel` or `reschedule`.
    pub action: String,
    pub reason: Option<String>,
    pub slot_id: Option<String>,
    pub if_match: Option<i64>,
}

/// The home region's answer to a change.
#[derive(Debug, Clone)]
pub enum ChangeAnswer {
    Done(Box<AppointmentRecord>),
    /// 409 slot-taken (a reschedule).
    Taken,
    Refused {
        status: u16,
        detail: String,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// Nothing was sent (the circuit is open, or no connection could be made):
    /// the home region certainly did not act on it.
    #[error("region {region} unreachable: {why}")]
    Unreachable { region: String, why: String },
    /// Sent, but no answer came back (timed out, connection cut): the home
    /// region may have acted on it; a retry must carry the same Idempotency-Key.
    #[error("no answer from region {region}: {why}")]
    NoAnswer { region: String, why: String },
}

#[async_trait]
pub trait RegionLink: Send + Sync {
    fn peers(&self) -> Vec<PeerStatus>;
    fn state(&self, region: &str) -> Option<LinkState>;
    async fn book(&self, region: &str, booking: &ForwardedBooking) -> Result<HomeAnswer, LinkError>;
    async fn change(&self, region: &str, id: AppointmentId, change: &RemoteChange) -> Result<ChangeAnswer, LinkError>;
}

/// What `GET /regions` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionsView {
    pub region: String,
    pub peers: Vec<PeerView>,
    /// Bookings accepted here as pending, waiting for their home region.
    pub forwarding_pending: u64,
    pub forwarding_oldest_age_ms: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerView {
    #[serde(flatten)]
    pub link: PeerStatus,
    /// As of when this region's replica of the peer's directory and busy times is.
    pub replica_as_of: Option<String>,
    pub replication_lag_ms: Option<i64>,
}

impl App {
    pub fn with_region_link(mut self, link: Arc<dyn RegionLink>) -> Self {
        self.regions = Some(link);
        self
    }

    pub fn is_home(&self, region: &str) -> bool {
        region == self.config.region
    }

    pub async fn regions(&self) -> Result<RegionsView, AppError> {
        let now = self.now();
        let replicas = self.store.replicas().await?;
        let peers = self
            .regions
            .as_ref()
            .map(|l| l.peers())
            .unwrap_or_default()
            .into_iter()
            .map(|link| {
                let replica = replicas.iter().find(|r| r.region == link.region);
                PeerView {
                    replica_as_of: replica.map(|r| r.as_of.to_string()),
                    replication_lag_ms: replica.map(|r| now.duration_since(r.as_of).as_millis() as i64),
                    link,
                }
            })
            .collect();
        let (pending, oldest) = self.store.forwarding_backlog().await?;
        Ok(RegionsView {
            region: self.config.region.clone(),
            peers,
            forwarding_pending: pending,
            forwarding_oldest_age_ms: oldest.map(|t| now.duration_since(t).as_millis() as i64),
        })
    }

    /// The home region of a slot's doctor (`None`: the slot id names no known doctor).
    pub async fn home_of_slot(&self, slot_id: &str) -> Result<Option<String>, AppError> {
        let Ok(id) = medislot_domain::SlotId::parse("slot_id", slot_id) else { return Ok(None) };
        let Some(d) = self.store.doctor(id.doctor).await? else { return Ok(None) };
        Ok(self.store.clinic(d.clinic_id).await?.map(|c| c.region))
    }

    /// Each peer region's replica time (for answers that mix regions).
    pub async fn replica_times(&self) -> Result<std::collections::HashMap<String, Timestamp>, AppError> {
        Ok(self.store.replicas().await?.into_iter().map(|r| (r.region, r.as_of)).collect())
    }

    /// As of when the replica of `region` is (`None`: this region, or never synced).
    pub async fn replica_as_of(&self, region: &str) -> Result<Option<Timestamp>, AppError> {
        if self.is_home(region) {
            return Ok(None);
        }
        Ok(self.store.replicas().await?.into_iter().find(|r| r.region == region).map(|r| r.as_of))
    }

    /// Books a doctor homed in another region (see the module's description).
    pub(crate) async fn book_remote(
        &self,
        actor: &Actor,
        b: Bookable,
        reason: String,
        key: Option<&str>,
        fingerprint: String,
        visit: Option<medislot_store::Visit>,
    ) -> Result<crate::BookOutcome, AppError> {
        let region = b.clinic.region.clone();
        let now = self.now();
        let mut forward = ForwardRecord {
            id: AppointmentId::new(),
            region: region.clone(),
            patient_id: actor.id(),
            doctor_id: b.doctor.id,
            start: b.slot.start,
            end: b.slot.end,
            mode: b.mode,
            reason: reason.clone(),
            idempotency_key: key.map(str::to_string),
            fingerprint: Some(fingerprint),
            status: ForwardStatus::Pending,
            detail: None,
            attempts: 0,
            created_at: now,
            resolved_at: None,
            visit,
        };
        // A retry of a request this region already recorded: its state.
        let mut recorded_pending = false;
        if let Some(k) = key {
            if let Some(seen) = self.forward_by_key(actor.id(), k).await? {
                if seen.fingerprint != forward.fingerprint {
                    return Err(AppError::IdempotencyMismatch);
                }
                if seen.status != ForwardStatus::Pending {
                    return self.forward_outcome(&b, seen, true).await;
                }
                forward.id = seen.id;
                recorded_pending = true;
            }
        }
        let booking = ForwardedBooking {
            appointment_id: forward.id,
            patient_id: actor.id(),
            patient_email: actor.user.email.clone(),
            patient_name: actor.user.name.clone(),
            slot_id: b.slot.id.to_string(),
            mode: Some(b.mode.as_str().to_string()),
            reason,
            idempotency_key: key.map_or_else(|| format!("forward-{}", forward.id), str::to_string),
            origin_region: self.config.region.clone(),
            intake: forward.visit.as_ref().map(|v| v.intake.clone()).unwrap_or_default(),
        };
        let answer = match &self.regions {
            Some(link) => link.book(&region, &booking).await,
            None => Err(LinkError::Unreachable { region: region.clone(), why: "no peer regions configured".into() }),
        };
        match answer {
            Ok(HomeAnswer::Booked(a)) => {
                // A replay answers with the first attempt's appointment: its id is the one.
                forward.id = a.id;
                forward.status = ForwardStatus::Booked;
                forward.resolved_at = Some(now);
                let detail = appointment_detail(&a);
                forward.detail = Some(detail.clone());
                let stored = if recorded_pending {
                    // The retry of a pending request got through: settle it now.
                    self.store.resolve_forward(forward.id, ForwardStatus::Booked, &detail, None, now).await?;
                    forward
                } else {
                    self.store.create_forward(&forward).await?
                };
                self.count_booking(Ok("booked"), &region);
                self.forward_outcome(&b, stored, false).await
            }
            Ok(HomeAnswer::Taken) => {
                self.count_booking(Err(&AppError::SlotTaken { alternatives: vec![] }), &region);
                Err(self.slot_taken(&b).await)
            }
            Ok(HomeAnswer::Refused { status, detail }) => Err(AppError::Remote { status, detail }),
            Err(LinkError::NoAnswer { why, .. }) if b.clinic.policy == Policy::Strict => {
                // Maybe booked at home: never say "nothing was recorded" then.
                self.count_booking(Ok("home_no_answer"), &region);
                tracing::info!(%region, %why, "home region did not answer: strict clinic, outcome unknown");
                Err(AppError::HomeRegionNoAnswer { region })
            }
            Err(LinkError::Unreachable { why, .. } | LinkError::NoAnswer { why, .. }) => match b.clinic.policy {
                Policy::Strict => {
                    self.count_booking(Ok("home_unreachable"), &region);
                    tracing::info!(%region, %why, "home region unreachable: strict clinic, refused");
                    Err(AppError::HomeRegionUnreachable { region })
                }
                Policy::Available => {
                    let stored = self.store.create_forward(&forward).await?;
                    self.count_booking(Ok("pending"), &region);
                    tracing::info!(%region, %why, "home region unreachable: available clinic, accepted as pending");
                    self.forward_outcome(&b, stored, false).await
                }
            },
        }
    }

    async fn forward_by_key(&self, patient: UserId, key: &str) -> Result<Option<ForwardRecord>, AppError> {
        Ok(self
            .store
            .forwards_of_patient(patient)
            .await?
            .into_iter()
            .find(|f| f.idempotency_key.as_deref() == Some(key)))
    }

    /// The answer a forward gives: 201 booked, 202 pending, 409 conflict.
    async fn forward_outcome(
        &self,
        b: &Bookable,
        f: ForwardRecord,
        replayed: bool,
    ) -> Result<crate::BookOutcome, AppError> {
        let appointment = forward_as_appointment(&f);
        match f.status {
            ForwardStatus::Booked => Ok(crate::BookOutcome { appointment, status_code: 201, replayed }),
            ForwardStatus::Pending => Ok(crate::BookOutcome { appointment, status_code: 202, replayed }),
            ForwardStatus::Conflict => Err(self.slot_taken(b).await),
        }
    }

    /// The home side of a forwarded booking: the patient is known here by
    /// their id, the booking goes to this region's database like any other,
    /// with the origin's appointment id and Idempotency-Key.
    pub async fn book_forwarded(&self, req: ForwardedBooking) -> Result<crate::BookOutcome, AppError> {
        let b = self.bookable(&req.slot_id, req.mode.as_deref(), "slot_id").await?;
        if !self.is_home(&b.clinic.region) {
            return Err(AppError::Conflict("this doctor's clinic is not homed in this region"));
        }
        let user = UserRecord {
            id: req.patient_id,
            email: req.patient_email.clone(),
            password_hash: format!("!remote:{}", req.origin_region),
            role: Role::Patient,
            name: req.patient_name.clone(),
            created_at: self.now(),
        };
        self.store.ensure_remote_user(&user).await?;
        let actor = Actor { user };
        let reason = crate::booking::check_reason(&req.reason)?;
        let answers = (!req.intake.is_empty()).then(|| serde_json::to_string(&req.intake).unwrap_or_default());
        let fingerprint = crate::booking::booking_print(&req.slot_id, req.mode.as_deref(), &reason, answers);
        let idempotency = Some(IdempotencyKey { key: req.idempotency_key.clone(), fingerprint });
        self.admit(actor.id(), &b).await?;
        // The answers were checked where the patient gave them, against this
        // region's copy of the visit type.
        let visit = b.visit_answered(req.intake.clone());
        let mut cmd = b.place(self, &actor, AppointmentStatus::Booked, reason, idempotency, visit);
        cmd.id = req.appointment_id;
        cmd.origin_region = req.origin_region.clone();
        let placed = self.store.place(&cmd).await;
        self.availability_changed(cmd.doctor_id);
        match placed {
            Ok(Placed::Created(appointment)) => {
                Ok(crate::BookOutcome { appointment, status_code: 201, replayed: false })
            }
            Ok(Placed::Replayed { appointment, status_code }) => {
                Ok(crate::BookOutcome { appointment, status_code, replayed: true })
            }
            Err(StoreError::SlotTaken) => Err(self.slot_taken(&b).await),
            Err(StoreError::PatientBusy) => Err(self.patient_busy(actor.id(), &b, None).await),
            Err(e) => Err(e.into()),
        }
    }

    /// Settles one pending forward with the home region's answer; `false` when
    /// the home region is still unreachable (it stays pending).
    pub async fn settle_forward(&self, f: &ForwardRecord) -> Result<bool, AppError> {
        let Some(link) = &self.regions else { return Ok(false) };
        let Some(patient) = self.store.user_by_id(f.patient_id).await? else { return Ok(false) };
        let booking = ForwardedBooking {
            appointment_id: f.id,
            patient_id: f.patient_id,
            patient_email: patient.email,
            patient_name: patient.name,
            slot_id: medislot_domain::SlotId::of_visit(f.doctor_id, f.start, f.visit.as_ref().map(|v| v.code.as_str()))
                .to_string(),
            mode: Some(f.mode.as_str().to_string()),
            reason: f.reason.clone(),
            idempotency_key: f.idempotency_key.clone().unwrap_or_else(|| format!("forward-{}", f.id)),
            origin_region: self.config.region.clone(),
            intake: f.visit.as_ref().map(|v| v.intake.clone()).unwrap_or_default(),
        };
        self.store.count_forward_attempt(f.id).await?;
        let now = self.now();
        let (status, detail) = match link.book(&f.region, &booking).await {
            Err(_) => return Ok(false),
            Ok(HomeAnswer::Booked(a)) => (ForwardStatus::Booked, appointment_detail(&a)),
            Ok(HomeAnswer::Taken) => (ForwardStatus::Conflict, self.conflict_detail(f.doctor_id, f.start).await),
            Ok(HomeAnswer::Refused { status, detail }) => {
                (ForwardStatus::Conflict, serde_json::json!({ "refused": { "status": status, "detail": detail } }))
            }
        };
        // The patient hears of a conflict from here (the home region never
        // booked it); of a booking from the home region, like any booking.
        let event = (status == ForwardStatus::Conflict)
            .then(|| ("appointment.conflict", forward_event(f, "conflict", &detail, now)));
        let settled = self.store.resolve_forward(f.id, status, &detail, event, now).await?;
        if settled {
            self.count_booking(Ok(status.as_str()), &f.region);
        }
        Ok(true)
    }

    async fn conflict_detail(&self, doctor: DoctorId, start: Timestamp) -> serde_json::Value {
        let alternatives = match self.doctors_with_clinics([doctor]).await {
            Ok(mut m) => match m.remove(&doctor) {
                Some((d, c)) => self.alternatives(&d, &c, start).await,
                None => vec![],
            },
            Err(_) => vec![],
        };
        let alts: Vec<serde_json::Value> = alternatives
            .iter()
            .map(|s| serde_json::json!({ "slot_id": s.slot_id, "start": s.start.to_string(), "local_start": s.local_start }))
            .collect();
        serde_json::json!({ "alternatives": alts })
    }

    /// A booking the caller made here of a doctor homed elsewhere, if `id` is one.
    pub(crate) async fn remote_booking(
        &self,
        actor: &Actor,
        id: AppointmentId,
    ) -> Result<Option<ForwardRecord>, AppError> {
        if self.store.appointment(id).await?.is_some() {
            return Ok(None);
        }
        match self.store.forward(id).await? {
            Some(f) if f.patient_id == actor.id() => match f.status {
                ForwardStatus::Booked => Ok(Some(f)),
                ForwardStatus::Pending => {
                    Err(AppError::Conflict("still pending: the clinic's region has not answered yet"))
                }
                ForwardStatus::Conflict => Err(AppError::Conflict("this request was not booked (the slot was taken)")),
            },
            _ => Ok(None),
        }
    }

    /// Cancels or moves an appointment homed elsewhere, through its home region
    /// (never queued: unreachable is 503, whatever the clinic's policy).
    pub(crate) async fn change_remote(
        &self,
        f: ForwardRecord,
        change: RemoteChange,
    ) -> Result<AppointmentRecord, AppError> {
        let answer = match &self.regions {
            Some(link) => link.change(&f.region, f.id, &change).await,
            None => Err(LinkError::Unreachable { region: f.region.clone(), why: "no peer regions configured".into() }),
        };
        match answer {
            Ok(ChangeAnswer::Done(a)) => {
                self.store.record_forward_state(f.id, &appointment_detail(&a)).await?;
                Ok(*a)
            }
            Ok(ChangeAnswer::Taken) => Err(AppError::SlotTaken { alternatives: vec![] }),
            Ok(ChangeAnswer::Refused { status, detail }) => Err(AppError::Remote { status, detail }),
            Err(LinkError::Unreachable { .. }) => Err(AppError::HomeRegionUnreachable { region: f.region }),
            Err(LinkError::NoAnswer { .. }) => Err(AppError::HomeRegionNoAnswer { region: f.region }),
        }
    }

    /// The home side of a change asked for in the patient's region.
    pub async fn change_forwarded(
        &self,
        id: AppointmentId,
        change: RemoteChange,
    ) -> Result<AppointmentRecord, AppError> {
        let user = self.store.user_by_id(change.patient_id).await?.ok_or(AppError::NotFound("appointment"))?;
        if !user.password_hash.starts_with("!remote:") {
            return Err(AppError::Forbidden("only patients of other regions change appointments this way"));
        }
        let actor = Actor { user };
        match change.action.as_str() {
            "cancel" => self.cancel(Some(&actor), id, change.reason, change.if_match).await,
            "reschedule" => {
                let slot = change.slot_id.unwrap_or_default();
                self.reschedule(Some(&actor), id, &slot, change.if_match).await
            }
            _ => Err(medislot_domain::Invalid::field("action", "must be cancel or reschedule").into()),
        }
    }

    /// A forward the caller made, shown as an appointment (404 for anyone else).
    pub(crate) async fn forwarded_appointment(
        &self,
        actor: &Actor,
        id: AppointmentId,
    ) -> Result<Option<AppointmentRecord>, AppError> {
        match self.store.forward(id).await? {
            Some(f) if f.patient_id == actor.id() || actor.is_admin() => Ok(Some(forward_as_appointment(&f))),
            _ => Ok(None),
        }
    }
}

/// The home's appointment, as kept with the forward.
fn appointment_detail(a: &AppointmentRecord) -> serde_json::Value {
    serde_json::json!({
        "appointment": {
            "id": a.id, "status": a.status.as_str(), "start": a.start.to_string(), "end": a.end.to_string(),
            "version": a.version, "cancel_reason": a.cancel_reason, "video_room": a.video_room,
        }
    })
}

/// A forward as the appointment its patient sees: pending, conflict, or the
/// home's appointment as last replicated.
pub(crate) fn forward_as_appointment(f: &ForwardRecord) -> AppointmentRecord {
    let home = f.detail.as_ref().and_then(|d| d.get("appointment"));
    let text = |k: &str| home.and_then(|a| a.get(k)).and_then(|v| v.as_str());
    let status = match f.status {
        ForwardStatus::Pending => AppointmentStatus::Pending,
        ForwardStatus::Conflict => AppointmentStatus::Conflict,
        ForwardStatus::Booked => {
            text("status").and_then(|s| AppointmentStatus::parse("status", s).ok()).unwrap_or(AppointmentStatus::Booked)
        }
    };
    let at = f.resolved_at.unwrap_or(f.created_at);
    AppointmentRecord {
        id: f.id,
        doctor_id: f.doctor_id,
        patient_id: f.patient_id,
        start: text("start").and_then(|s| s.parse().ok()).unwrap_or(f.start),
        end: text("end").and_then(|s| s.parse().ok()).unwrap_or(f.end),
        mode: f.mode,
        reason: f.reason.clone(),
        status,
        version: home.and_then(|a| a.get("version")).and_then(|v| v.as_i64()).unwrap_or(1),
        origin_region: String::new(),
        hold_expires_at: None,
        cancel_reason: text("cancel_reason").map(str::to_string),
        cancelled_by: None,
        created_at: f.created_at,
        updated_at: at,
        video_room: text("video_room").map(str::to_string),
        visit: f.visit.clone(),
        awaiting_clinic: false,
    }
}

/// The outbox event of a settled forward, in the shape of an appointment change.
fn forward_event(f: &ForwardRecord, status: &str, detail: &serde_json::Value, at: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "type": "appointment.conflict",
        "at": at.to_string(),
        "actor_id": null,
        "appointment_id": f.id,
        "doctor_id": f.doctor_id,
        "patient_id": f.patient_id,
        "status": status,
        "previous_status": "pending",
        "start": f.start.to_string(),
        "end": f.end.to_string(),
        "previous_start": null,
        "version": 1,
        "mode": f.mode.as_str(),
        "cancel_reason": null,
        "hold_expires_at": null,
        "alternatives": detail.get("alternatives"),
    })
}
