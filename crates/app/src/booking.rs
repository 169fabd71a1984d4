//! Booking: holds, bookings (idempotent), reads scoped to the caller,
//! reschedule and cancel with optimistic concurrency, and the agenda actions.

use crate::{
    access::{require, Actor},
    App, AppError, BusyWith,
};
use jiff::Timestamp;
use medislot_domain::{
    appointment::Action, AppointmentId, AppointmentStatus, DoctorId, Invalid, Mode, Role, Slot, SlotId, UserId,
};
use medislot_store::{
    AppointmentChange, AppointmentQuery, AppointmentRecord, ClinicRecord, Decide, DoctorRecord, IdempotencyKey,
    PlaceAppointment, Placed, Scope, StoreError,
};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    #[schema(schema_with = medislot_domain::schemas::slot_id)]
    pub slot_id: String,
    /// in_person | online; defaults to the slot's mode.
    #[schema(schema_with = medislot_domain::schemas::mode_or_null)]
    pub mode: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub reason: String,
    /// Answers to the visit type's intake questions, by question id: a text
    /// (a choice's option) or true/false (a yes/no question).
    #[serde(default)]
    #[schema(schema_with = medislot_domain::schemas::intake_or_null)]
    pub intake: Option<crate::VisitRequest>,
}

#[derive(Debug, Clone)]
pub struct BookOutcome {
    pub appointment: AppointmentRecord,
    /// The status code of the first answer (201) — also on an idempotent replay.
    pub status_code: u16,
    pub replayed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Arrived,
    Fulfilled,
    Noshow,
}

#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub status: Option<String>,
    pub doctor_id: Option<DoctorId>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub page: u32,
    pub per_page: u32,
}

/// A slot a patient may take now: on the schedule, in the future, after the
/// minimum notice, before the horizon, in a mode the doctor offers.
pub(crate) struct Bookable {
    pub(crate) doctor: DoctorRecord,
    pub(crate) clinic: ClinicRecord,
    pub(crate) slot: Slot,
    pub(crate) mode: Mode,
    /// The visit type booked (none: a slot of the schedule itself).
    pub(crate) visit: Option<medislot_domain::VisitType>,
}

impl Bookable {
    /// The store command that takes this slot for `patient`.
    pub(crate) fn place(
        &self,
        app: &App,
        patient: &Actor,
        status: AppointmentStatus,
        reason: String,
        idempotency: Option<IdempotencyKey>,
        visit: Option<medislot_store::Visit>,
    ) -> PlaceAppointment {
        let now = app.now();
        PlaceAppointment {
            id: AppointmentId::new(),
            doctor_id: self.doctor.id,
            patient_id: patient.id(),
            start: self.slot.start,
            end: self.slot.end,
            mode: self.mode,
            reason,
            status,
            hold_expires_at: (status == AppointmentStatus::Held).then(|| now + app.config.hold_ttl),
            origin_region: app.config.region.clone(),
            now,
            idempotency,
            max_holds: app.config.max_holds_per_patient,
            visit,
        }
    }

    /// The visit as the appointment keeps it, with the patient's answers
    /// (checked against the visit type's questions).
    pub(crate) fn visit_with(
        &self,
        intake: Option<&crate::VisitRequest>,
    ) -> Result<Option<medislot_store::Visit>, Invalid> {
        let Some(v) = &self.visit else {
            if intake.is_some_and(|i| !i.is_empty()) {
                return Err(Invalid::field("intake", "this slot's visit asks no questions"));
            }
            return Ok(None);
        };
        Ok(self.visit_answered(v.answers(intake.unwrap_or(&crate::VisitRequest::new()))?))
    }

    /// The visit as the appointment keeps it, with answers already checked
    /// (none yet for a hold; those the origin region checked for a forward).
    pub(crate) fn visit_answered(&self, intake: Vec<medislot_domain::Answer>) -> Option<medislot_store::Visit> {
        self.visit.as_ref().map(|v| medislot_store::Visit { code: v.code.clone(), name: v.name.clone(), intake })
    }
}

pub(crate) fn check_reason(reason: &str) -> Result<String, Invalid> {
    if reason.chars().count() > 1000 {
        return Err(Invalid::field("reason", "must be at most 1000 characters"));
    }
    Ok(reason.trim().to_string())
}

fn check_idempotency_key(key: &str) -> Result<(), Invalid> {
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Invalid::field("Idempotency-Key", "must be 1-255 visible ASCII characters (a UUID is ideal)"));
    }
    Ok(())
}

/// A booking's fingerprint: what an Idempotency-Key's retry must repeat.
/// `answers`: the intake answers as JSON, if any were given.
pub(crate) fn booking_print(slot_id: &str, mode: Option<&str>, reason: &str, answers: Option<String>) -> String {
    let mut parts = vec![slot_id, mode.unwrap_or(""), reason];
    // (Only with answers: a key used before visit types existed replays alike.)
    parts.extend(answers.as_deref());
    fingerprint(&parts)
}

pub(crate) fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl App {
    pub(crate) async fn bookable(&self, slot_id: &str, mode: Option<&str>, field: &str) -> Result<Bookable, AppError> {
        let id = SlotId::parse(field, slot_id)?;
        let requested_mode = mode.map(|m| Mode::parse("mode", m)).transpose()?;
        let (doctor, clinic) = match self.listed(id.doctor).await? {
            Some(listing) => (listing.0.clone(), listing.1.clone()),
            None => return Err(Invalid::field(field, "refers to no bookable doctor").into()),
        };
        let visit = crate::visits::visit_for(&doctor, id.visit.as_deref(), field)?.cloned();
        let tz = clinic.time_zone.tz();
        let Some(slot) = doctor.schedule.slot_of(doctor.id, &tz, id.start, visit.as_ref()) else {
            return Err(Invalid::field(
                field,
                "the doctor's schedule offers no slot at this time (it may have changed)",
            )
            .into());
        };
        let now = self.now();
        let window = doctor.schedule.window_for(now, visit.as_ref());
        if slot.start <= now {
            return Err(Invalid::field(field, "this slot is in the past").into());
        }
        if slot.start < window.start {
            let m = window.start.duration_since(now).as_mins();
            return Err(Invalid::field(field, format!("this slot is inside the minimum notice of {m} minutes")).into());
        }
        if slot.start >= window.end {
            let d = window.end.duration_since(now).as_hours() / 24;
            return Err(Invalid::field(field, format!("this slot is beyond the booking horizon of {d} days")).into());
        }
        let mode = requested_mode.unwrap_or(slot.mode);
        if mode != slot.mode {
            return Err(Invalid::field("mode", format!("this slot is {}", slot.mode.as_str())).into());
        }
        Ok(Bookable { doctor, clinic, slot, mode, visit })
    }

    fn require_patient<'a>(&self, actor: Option<&'a Actor>) -> Result<&'a Actor, AppError> {
        let actor = require(actor)?;
        if actor.role() != Role::Patient {
            return Err(AppError::Forbidden("only patients book appointments"));
        }
        Ok(actor)
    }

    pub(crate) async fn slot_taken(&self, b: &Bookable) -> AppError {
        AppError::SlotTaken { alternatives: self.alternatives(&b.doctor, &b.clinic, b.slot.start).await }
    }

    /// The refusal of a patient already busy at `b`'s time, naming the
    /// appointment they have then (read after the refusal: the one that won
    /// a race has committed by the time the loser is refused).
    pub(crate) async fn patient_busy(&self, patient: UserId, b: &Bookable, except: Option<AppointmentId>) -> AppError {
        let q = AppointmentQuery {
            scope: Scope::Patient(patient),
            doctor: None,
            status: None,
            from: Some(b.slot.start),
            to: Some(b.slot.end),
            limit: 20,
            offset: 0,
        };
        let now = self.now();
        let live = |a: &AppointmentRecord| {
            a.status.is_active()
                && !(a.status == AppointmentStatus::Held && a.hold_expires_at.is_some_and(|t| t <= now))
        };
        let other = match self.store.list_appointments(&q).await {
            Ok((found, _)) => found.into_iter().find(|a| Some(a.id) != except && live(a)),
            Err(e) => {
                tracing::warn!(error = %e, "could not name the appointment a patient already has");
                None
            }
        };
        AppError::PatientBusy { other: other.map(|a| BusyWith { id: a.id, start: a.start, end: a.end }) }
    }

    /// Holds a slot for a short time while the patient confirms.
    pub async fn hold(
        &self,
        actor: Option<&Actor>,
        slot_id: &str,
        mode: Option<&str>,
    ) -> Result<AppointmentRecord, AppError> {
        let actor = self.require_patient(actor)?;
        let b = self.bookable(slot_id, mode, "slot_id").await?;
        if !self.is_home(&b.clinic.region) {
            return Err(AppError::Conflict(
                "this doctor's clinic is homed in another region: book the slot directly (no hold)",
            ));
        }
        self.admit(actor.id(), &b).await?;
        let cmd = b.place(self, actor, AppointmentStatus::Held, String::new(), None, b.visit_answered(vec![]));
        let placed = self.store.place(&cmd).await;
        self.availability_changed(cmd.doctor_id);
        let out = match placed {
            Ok(Placed::Created(a) | Placed::Replayed { appointment: a, .. }) => Ok(a),
            Err(StoreError::SlotTaken) => Err(self.slot_taken(&b).await),
            Err(StoreError::PatientBusy) => Err(self.patient_busy(actor.id(), &b, None).await),
            Err(e) => Err(e.into()),
        };
        self.count_booking(out.as_ref().map(|_| "held"), &b.clinic.region);
        out
    }

    /// Books a slot (confirming the caller's own hold on it, if any). With an
    /// Idempotency-Key, a retry returns the first answer and never books twice.
    pub async fn book(
        &self,
        actor: Option<&Actor>,
        req: BookRequest,
        idempotency_key: Option<&str>,
    ) -> Result<BookOutcome, AppError> {
        let actor = self.require_patient(actor)?;
        let reason = check_reason(&req.reason)?;
        if let Some(k) = idempotency_key {
            check_idempotency_key(k)?;
        }
        let b = self.bookable(&req.slot_id, req.mode.as_deref(), "slot_id").await?;
        let visit = b.visit_with(req.intake.as_ref())?;
        let answers = req.intake.as_ref().map(|i| serde_json::to_string(i).unwrap_or_default());
        let print = booking_print(&req.slot_id, req.mode.as_deref(), &reason, answers);
        if !self.is_home(&b.clinic.region) {
            return self.book_remote(actor, b, reason, idempotency_key, print, visit).await;
        }
        self.admit(actor.id(), &b).await?;
        let idempotency = idempotency_key.map(|k| IdempotencyKey { key: k.to_string(), fingerprint: print });
        // After too many no-shows at the clinic: a request the clinic answers.
        let status = if self.books_by_request(actor.id(), &b).await? {
            AppointmentStatus::Pending
        } else {
            AppointmentStatus::Booked
        };
        let cmd = b.place(self, actor, status, reason, idempotency, visit);
        let placed = self.store.place(&cmd).await;
        self.availability_changed(cmd.doctor_id);
        let code = if status == AppointmentStatus::Pending { 202 } else { 201 };
        let out = match placed {
            Ok(Placed::Created(appointment)) => Ok(BookOutcome { appointment, status_code: code, replayed: false }),
            Ok(Placed::Replayed { appointment, status_code }) => {
                Ok(BookOutcome { appointment, status_code, replayed: true })
            }
            Err(StoreError::SlotTaken) => Err(self.slot_taken(&b).await),
            Err(StoreError::PatientBusy) => Err(self.patient_busy(actor.id(), &b, None).await),
            Err(e) => Err(e.into()),
        };
        self.count_booking(out.as_ref().map(|o| if o.replayed { "replayed" } else { "booked" }), &b.clinic.region);
        out
    }

    /// One appointment, if the caller may see it (otherwise 404: existence is hidden).
    pub async fn appointment(&self, actor: Option<&Actor>, id: AppointmentId) -> Result<AppointmentRecord, AppError> {
        let actor = require(actor)?;
        let Some(a) = self.store.appointment(id).await? else {
            // Booked here with a doctor homed in another region?
            return self.forwarded_appointment(actor, id).await?.ok_or(AppError::NotFound("appointment"));
        };
        if !self.can_see(actor, &a).await? {
            return Err(AppError::NotFound("appointment"));
        }
        Ok(as_of(a, self.now()))
    }

    pub async fn audit(
        &self,
        actor: Option<&Actor>,
        id: AppointmentId,
    ) -> Result<Vec<medislot_store::AuditRecord>, AppError> {
        self.appointment(actor, id).await?;
        Ok(self.store.audit_of(id).await?)
    }

    /// The caller's appointments: a patient's own, a doctor's agenda, a clinic's, or all (admin).
    pub async fn appointments(
        &self,
        actor: Option<&Actor>,
        f: AppointmentFilter,
    ) -> Result<(Vec<AppointmentRecord>, u64), AppError> {
        let actor = require(actor)?;
        let mut errs = medislot_domain::error::Errors::default();
        let status = f.status.as_deref().and_then(|s| errs.take(AppointmentStatus::parse("status", s)));
        if f.page == 0 || f.page > 100_000 {
            errs.push("page", "must be between 1 and 100000");
        }
        if f.per_page == 0 || f.per_page > 200 {
            errs.push("per_page", "must be between 1 and 200");
        }
        if let (Some(from), Some(to)) = (f.from, f.to) {
            if to <= from {
                errs.push("to", "must be after from");
            }
        }
        errs.finish()?;
        let scope = match actor.role() {
            Role::Patient => Scope::Patient(actor.id()),
            Role::Doctor => match self.store.doctor_of_user(actor.id()).await? {
                Some(d) => Scope::Doctor(d.id),
                None => return Ok((vec![], 0)),
            },
            Role::ClinicAdmin => Scope::Clinics(self.store.clinics_administered_by(actor.id()).await?),
            Role::Admin => Scope::All,
        };
        let q = AppointmentQuery {
            scope,
            doctor: f.doctor_id,
            status,
            from: f.from,
            to: f.to,
            limit: f.per_page,
            offset: u64::from(f.page - 1) * u64::from(f.per_page),
        };
        let (rows, total) = self.store.list_appointments(&q).await?;
        let now = self.now();
        Ok((rows.into_iter().map(|a| as_of(a, now)).collect(), total))
    }

    /// Loads an appointment the caller may see and tells whether they are staff for it:
    /// whoever may see it and is not its patient is its doctor, clinic admin or a platform admin.
    pub(crate) async fn for_change(
        &self,
        actor: Option<&Actor>,
        id: AppointmentId,
    ) -> Result<(Actor, bool, AppointmentRecord), AppError> {
        let actor = require(actor)?;
        let a = self.appointment(Some(actor), id).await?;
        Ok((actor.clone(), a.patient_id != actor.id(), a))
    }

    /// The rules of the appointment's clinic, as they are now (read afresh: a
    /// rule just set holds at once on every node).
    async fn rules_for(&self, a: &AppointmentRecord) -> Result<medislot_domain::ClinicRules, AppError> {
        Ok(match self.store.doctor(a.doctor_id).await? {
            Some(d) => {
                crate::rules_for_visit(&self.clinic(d.clinic_id).await?, &d, a.visit.as_ref().map(|v| v.code.as_str()))
            }
            None => medislot_domain::ClinicRules::default(),
        })
    }

    /// Moves an appointment to another slot of the same doctor, atomically: the
    /// old time is freed and the new one taken in one transaction, or nothing changes.
    pub async fn reschedule(
        &self,
        actor: Option<&Actor>,
        id: AppointmentId,
        slot_id: &str,
        if_match: Option<i64>,
    ) -> Result<AppointmentRecord, AppError> {
        if let Some(f) = self.remote_booking(require(actor)?, id).await? {
            let change = crate::RemoteChange {
                patient_id: f.patient_id,
                action: "reschedule".into(),
                reason: None,
                slot_id: Some(slot_id.to_string()),
                if_match,
            };
            return self.change_remote(f, change).await;
        }
        let (actor, staff, a) = self.for_change(actor, id).await?;
        let rules = self.rules_for(&a).await?;
        let b = self.bookable(slot_id, None, "slot_id").await?;
        if let Some(booked) = &a.visit {
            if b.visit.as_ref().is_none_or(|v| v.code != booked.code) {
                let why = format!(
                    "must be a slot of the same visit type ({}): list them with ?visit_type={}",
                    booked.name, booked.code
                );
                return Err(Invalid::field("slot_id", why).into());
            }
        }
        let (start, end, doctor) = (b.slot.start, b.slot.end, b.doctor.id);
        let now = self.now();
        let decide: Decide = Box::new(move |a: &AppointmentRecord| {
            check_version(a, if_match)?;
            if a.doctor_id != doctor {
                return Err(AppError::from(Invalid::field("slot_id", "must be a slot of the same doctor")).rejected());
            }
            if a.start <= now {
                return Err(AppError::Conflict("this appointment has already started").rejected());
            }
            closed_to_patients(a, staff, rules, now)?;
            let status = transition(a, Action::Reschedule)?;
            Ok(AppointmentChange {
                status,
                start,
                end,
                cancel_reason: None,
                event: "appointment.rescheduled",
                detail: None,
            })
        });
        let modified = self.store.modify_appointment(id, now, Some(actor.id()), decide).await;
        if let Ok(a) = &modified {
            self.availability_changed(a.doctor_id);
        }
        match modified {
            Err(StoreError::SlotTaken) => Err(self.slot_taken(&b).await),
            Err(StoreError::PatientBusy) => {
                let patient = self.store.appointment(id).await?.map_or(actor.id(), |a| a.patient_id);
                Err(self.patient_busy(patient, &b, Some(id)).await)
            }
            other => Ok(other?),
        }
    }

    pub async fn cancel(
        &self,
        actor: Option<&Actor>,
        id: AppointmentId,
        reason: Option<String>,
        if_match: Option<i64>,
    ) -> Result<AppointmentRecord, AppError> {
        if let Some(f) = self.remote_booking(require(actor)?, id).await? {
            check_reason(reason.as_deref().unwrap_or(""))?;
            let change = crate::RemoteChange {
                patient_id: f.patient_id,
                action: "cancel".into(),
                reason,
                slot_id: None,
                if_match,
            };
            return self.change_remote(f, change).await;
        }
        let (actor, staff, a) = self.for_change(actor, id).await?;
        let rules = self.rules_for(&a).await?;
        let reason = check_reason(reason.as_deref().unwrap_or(""))?;
        let now = self.now();
        let who = if staff { "staff" } else { "patient" };
        let decide: Decide = Box::new(move |a: &AppointmentRecord| {
            check_version(a, if_match)?;
            if !staff && a.start <= now && a.status != AppointmentStatus::Held {
                return Err(AppError::Conflict("this appointment has already started; ask the clinic").rejected());
            }
            closed_to_patients(a, staff, rules, now)?;
            let status = transition(a, Action::Cancel)?;
            Ok(AppointmentChange {
                status,
                start: a.start,
                end: a.end,
                cancel_reason: Some(if reason.is_empty() { format!("cancelled by {who}") } else { reason.clone() }),
                event: "appointment.cancelled",
                detail: Some(format!("cancelled by {who}")),
            })
        });
        let a = self.store.modify_appointment(id, now, Some(actor.id()), decide).await?;
        self.availability_changed(a.doctor_id);
        Ok(a)
    }

    /// Doctor and clinic actions: arrived, fulfilled, no-show.
    pub async fn mark(
        &self,
        actor: Option<&Actor>,
        id: AppointmentId,
        mark: Mark,
        if_match: Option<i64>,
    ) -> Result<AppointmentRecord, AppError> {
        let (actor, staff, _) = self.for_change(actor, id).await?;
        if !staff {
            return Err(AppError::Forbidden("only the doctor or the clinic marks appointments"));
        }
        let now = self.now();
        let arrival_window = self.config.arrival_window;
        let (action, event) = match mark {
            Mark::Arrived => (Action::Arrive, "appointment.arrived"),
            Mark::Fulfilled => (Action::Fulfil, "appointment.fulfilled"),
            Mark::Noshow => (Action::NoShow, "appointment.noshow"),
        };
        let decide: Decide = Box::new(move |a: &AppointmentRecord| {
            check_version(a, if_match)?;
            if matches!(mark, Mark::Fulfilled | Mark::Noshow) && now < a.start {
                return Err(AppError::Conflict("this appointment has not started yet").rejected());
            }
            if mark == Mark::Arrived && now < a.start - arrival_window {
                return Err(AppError::TooEarly { minutes: arrival_window.as_mins() }.rejected());
            }
            let status = transition(a, action)?;
            Ok(AppointmentChange { status, start: a.start, end: a.end, cancel_reason: None, event, detail: None })
        });
        let a = self.store.modify_appointment(id, now, Some(actor.id()), decide).await?;
        self.availability_changed(a.doctor_id);
        Ok(a)
    }
}

/// The clinic's cut-off: past it, a patient no longer cancels or moves a
/// booked appointment online (a hold they let go, and staff, still may).
fn closed_to_patients(
    a: &AppointmentRecord,
    staff: bool,
    rules: medislot_domain::ClinicRules,
    now: Timestamp,
) -> Result<(), StoreError> {
    if !staff && a.status != AppointmentStatus::Held && rules.changes_closed(a.start, now) {
        let closed_at = rules.changes_close_at(a.start);
        return Err(AppError::ChangesClosed { hours: rules.cutoff_hours(), closed_at }.rejected());
    }
    Ok(())
}

/// An appointment as it stands at `now`: a hold past its time reads as the
/// cancelled hold it is, before the next write to that doctor records it so.
pub(crate) fn as_of(mut a: AppointmentRecord, now: Timestamp) -> AppointmentRecord {
    if a.status == AppointmentStatus::Held && a.hold_expires_at.is_some_and(|t| t <= now) {
        a.status = AppointmentStatus::Cancelled;
        a.cancel_reason = Some("hold expired".into());
        a.hold_expires_at = None;
    }
    a
}

pub(crate) fn check_version(a: &AppointmentRecord, if_match: Option<i64>) -> Result<(), StoreError> {
    match if_match {
        Some(v) if v != a.version => Err(AppError::PreconditionFailed { current: a.version }.rejected()),
        _ => Ok(()),
    }
}

/// The state machine's answer, as a decide function returns it.
pub(crate) fn transition(a: &AppointmentRecord, action: Action) -> Result<AppointmentStatus, StoreError> {
    a.status.apply(action).map_err(|e| AppError::from(e).rejected())
}

impl App {
    /// Counts a booking or hold attempt by outcome (metrics; no ids, no personal data).
    pub(crate) fn count_booking(&self, out: Result<&'static str, &AppError>, region: &str) {
        let outcome = match out {
            Ok(o) => o,
            Err(AppError::SlotTaken { .. }) => "slot_taken",
            Err(AppError::Invalid(_)) => "invalid",
            Err(AppError::Unavailable(_)) => "unavailable",
            Err(AppError::OutcomeUnknown(_)) => "outcome_unknown",
            Err(_) => "other",
        };
        self.metrics.booking(outcome, region);
    }
}
