//! Background work, off the request path, safe to run on every node at once:
//!
//! 1. **Fan-out**: each outbox event (written with the change it describes, P6)
//!    becomes, in one transaction, its deliveries — e-mails to the patient and
//!    the doctor, one request per subscribed webhook — and in-app notifications,
//!    each under a unique dedup key, so two workers or a restart add nothing twice.
//!    A freed slot (cancel, reschedule away) is offered to the doctor's waitlist.
//! 2. **Reminders**: booked appointments whose reminder time has come are queued
//!    under a key naming appointment, start and offset: sent once, even across restarts.
//! 3. **Waitlist**: offers that ran out go to the next waiting patient.
//! 4. **Delivery**: due deliveries are claimed for a lease, sent, and marked;
//!    failures back off exponentially and end in a dead-letter state. A worker
//!    that dies between sending and marking leaves its claim to run out: the
//!    message is sent again with the same Message-ID / event id (at-least-once,
//!    deduplicable by the receiver).

pub mod mail;
pub mod messages;
pub mod regions;
pub mod webhook;

use jiff::{SignedDuration, Timestamp};
use medislot_app::App;
use medislot_store::{
    reminder_dedup_key, Channel, DeliveryOutcome, DeliveryRecord, NewDelivery, NewNotification, OutboxRecord,
    StoreError, UserRecord,
};
use messages::{Audience, EventView, Kind, Parties};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker's claims.
    pub worker_id: String,
    /// How often to look for work.
    pub poll: std::time::Duration,
    /// How long a claimed delivery is this worker's before another may take it.
    pub lease: SignedDuration,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt up to `backoff_max`.
    pub backoff_base: SignedDuration,
    pub backoff_max: SignedDuration,
    /// Reminders this long before an appointment (default 24 h and 2 h).
    pub reminder_offsets: Vec<SignedDuration>,
    /// The `From:` of e-mails and the organizer of their invitations.
    pub mail_from: String,
    /// Where links in messages point.
    pub public_url: String,
    /// Test hook: the probability of aborting the process after a send and
    /// before it is recorded (the crash the at-least-once design must survive).
    pub crash_after_send: f64,
    /// Webhooks may go to loopback and private addresses (on-premises receivers, tests).
    pub allow_private_webhooks: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            poll: std::time::Duration::from_millis(500),
            lease: SignedDuration::from_secs(60),
            max_attempts: 10,
            backoff_base: SignedDuration::from_secs(5),
            backoff_max: SignedDuration::from_mins(30),
            reminder_offsets: vec![SignedDuration::from_hours(24), SignedDuration::from_hours(2)],
            mail_from: "medislot <no-reply@medislot.localhost>".into(),
            public_url: "http://127.0.0.1:8080".into(),
            crash_after_send: 0.0,
            allow_private_webhooks: false,
        }
    }
}

impl WorkerConfig {
    /// The bare address of `mail_from` (`no-reply@x` of `medislot <no-reply@x>`).
    pub fn sender_address(&self) -> &str {
        match (self.mail_from.find('<'), self.mail_from.rfind('>')) {
            (Some(a), Some(b)) if a < b => &self.mail_from[a + 1..b],
            _ => self.mail_from.trim(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub events: u32,
    pub reminders: u32,
    pub offers: u32,
    pub delivered: u32,
    pub retried: u32,
    pub dead: u32,
    pub skipped: u32,
}

impl Pass {
    fn idle(&self) -> bool {
        *self == Pass::default()
    }
}

#[derive(Clone)]
pub struct Workers {
    app: App,
    mailer: mail::Mailer,
    http: reqwest::Client,
    config: Arc<WorkerConfig>,
}

impl Workers {
    pub fn new(app: App, mailer: mail::Mailer, config: WorkerConfig) -> Self {
        let http = webhook::client(config.allow_private_webhooks);
        Self { app, mailer, http, config: Arc::new(config) }
    }

    /// Runs passes until `stop` resolves; errors are logged and retried next pass.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tracing::info!(worker = %self.config.worker_id, mail = %self.mailer.describe(), "notification worker started");
        tokio::pin!(stop);
        loop {
            let busy = match self.pass().await {
                Ok(p) => !p.idle(),
                Err(e) => {
                    tracing::warn!(error = %e, "notification pass failed; retrying");
                    false
                }
            };
            if busy {
                // More may be waiting: go on at once, unless asked to stop.
                if futures::poll!(&mut stop).is_ready() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// One pass over everything due now (tests drive the clock and call this).
    pub async fn pass(&self) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        self.fan_out(&mut pass).await?;
        self.queue_reminders(&mut pass).await?;
        self.settle_waitlist(&mut pass).await?;
        self.deliver(&mut pass).await?;
        let (pending, oldest) = self.store().delivery_backlog().await?;
        let age = oldest.map_or(0, |t| self.app.now().duration_since(t).as_millis().max(0));
        let age = std::time::Duration::from_millis(u64::try_from(age).unwrap_or(0));
        self.app.metrics().notification_queue(pending, age);
        Ok(pass)
    }

    fn store(&self) -> &medislot_store::DynStore {
        self.app.store()
    }

    async fn fan_out(&self, pass: &mut Pass) -> Result<(), StoreError> {
        for event in self.store().outbox_undispatched(100).await? {
            let (deliveries, notifications) = match self.plan(&event).await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(event = %event.event_id, error = %e, "cannot fan out an event yet");
                    continue;
                }
            };
            if self.store().dispatch(event.id, &deliveries, &notifications, self.app.now()).await? {
                pass.events += 1;
            }
            // A slot came free: the doctor's waitlist gets it (idempotent: a
            // second run finds the slot held by the patient offered it).
            if let Some(ev) = EventView::parse(event.event_id, &event.topic, &event.payload) {
                if let Some(start) = freed_slot(&ev) {
                    let doctor = event_doctor(&event);
                    if let Some(doctor) = doctor {
                        if self.offer(doctor, start, ev.mode).await {
                            pass.offers += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn offer(&self, doctor: medislot_domain::DoctorId, start: Timestamp, mode: medislot_domain::Mode) -> bool {
        match self.app.offer_freed_slot(doctor, start, mode).await {
            Ok(offered) => offered.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "waitlist offer failed");
                false
            }
        }
    }

    /// The deliveries and notifications one outbox event calls for.
    async fn plan(&self, event: &OutboxRecord) -> Result<(Vec<NewDelivery>, Vec<NewNotification>), StoreError> {
        let mut deliveries = Vec::new();
        let mut notifications = Vec::new();
        let Some(ev) = EventView::parse(event.event_id, &event.topic, &event.payload) else {
            return Ok((deliveries, notifications));
        };
        let Some(doctor_id) = event_doctor(event) else { return Ok((deliveries, notifications)) };
        let Some(doctor) = self.store().doctor(doctor_id).await? else { return Ok((deliveries, notifications)) };
        let Some(clinic) = self.store().clinic(doctor.clinic_id).await? else {
            return Ok((deliveries, notifications));
        };

        // Webhooks: every subscribed, active endpoint of the doctor's clinic.
        if medislot_app::WEBHOOK_EVENTS.contains(&event.topic.as_str()) {
            for w in self.store().webhooks_of(clinic.id).await? {
                if !w.active || !w.events.iter().any(|e| e == &event.topic) {
                    continue;
                }
                let body = serde_json::json!({
                    "id": event.event_id,
                    "type": event.topic,
                    "created_at": event.created_at.to_string(),
                    "clinic_id": clinic.id,
                    "data": event.payload,
                });
                deliveries.push(NewDelivery {
                    dedup_key: format!("webhook:{}:{}", w.id, event.event_id),
                    channel: Channel::Webhook,
                    recipient: w.id.to_string(),
                    kind: event.topic.clone(),
                    event_id: event.event_id,
                    appointment_id: Some(ev.appointment_id),
                    clinic_id: Some(clinic.id),
                    payload: body,
                });
            }
        }

        // People: e-mail and in-app, for the changes they care about.
        let Some(kind) = Kind::of_topic(&event.topic) else { return Ok((deliveries, notifications)) };
        if kind == Kind::Cancelled && !matches!(ev.previous_status.as_deref(), Some("booked" | "arrived" | "pending")) {
            // A hold let go before it was confirmed: nobody was told about it.
            return Ok((deliveries, notifications));
        }
        if ev.end <= self.app.now() {
            // Over already (data loaded after the fact): nothing left to tell anyone.
            return Ok((deliveries, notifications));
        }
        let Some(patient) = self.store().user_by_id(ev.patient_id).await? else {
            return Ok((deliveries, notifications));
        };
        let doctor_user = match doctor.user_id {
            Some(u) if !matches!(kind, Kind::WaitlistOffer | Kind::Conflict) => self.store().user_by_id(u).await?,
            _ => None,
        };
        // The link as it is now (a later move sends its own message with the new one).
        let video_url = if ev.mode == medislot_domain::Mode::Online && !matches!(kind, Kind::Cancelled | Kind::Conflict)
        {
            self.store().appointment(ev.appointment_id).await?.and_then(|a| self.app.video_link(&a, &doctor))
        } else {
            None
        };
        let parties = Parties {
            doctor: &doctor,
            clinic: &clinic,
            patient: &patient,
            organizer: self.config.sender_address(),
            public_url: self.config.public_url.trim_end_matches('/'),
            video_url: video_url.as_deref(),
        };
        let now = self.app.now();
        // An erased account's pseudonym has no one to write to.
        let mut audiences: Vec<(Audience, &UserRecord)> =
            if patient.is_erased() { vec![] } else { vec![(Audience::Patient, &patient)] };
        if let Some(u) = &doctor_user {
            audiences.push((Audience::Doctor, u));
        }
        for (audience, user) in audiences {
            let m = messages::compose(kind, audience, &ev, &parties, now);
            let key = format!("{}:{}:{}", ev.appointment_id, event.event_id, audience.as_str());
            deliveries.push(email_delivery(&key, &user.email, kind, &ev, clinic.id, &m, None));
            notifications.push(NewNotification {
                user_id: user.id,
                dedup_key: format!("notification:{key}"),
                kind: kind.as_str().into(),
                title: m.subject.clone(),
                body: m.summary.clone(),
                appointment_id: Some(ev.appointment_id),
                link: m.link.as_ref().map(|l| l.trim_start_matches(parties.public_url).to_string()),
            });
        }
        Ok((deliveries, notifications))
    }

    async fn queue_reminders(&self, pass: &mut Pass) -> Result<(), StoreError> {
        if self.config.reminder_offsets.is_empty() {
            return Ok(());
        }
        let now = self.app.now();
        let due = self.store().reminders_due(now, &self.config.reminder_offsets).await?;
        let mut queued = Vec::new();
        let mut zones = std::collections::HashMap::new();
        for r in due {
            let a = &r.appointment;
            let key = reminder_dedup_key(a.id, a.start, r.offset);
            // A reminder for an appointment made (or moved) after its reminder
            // time would only repeat the confirmation: recorded as skipped.
            let late = a.updated_at > a.start - r.offset;
            let Some(patient) = self.store().user_by_id(a.patient_id).await? else { continue };
            if let std::collections::hash_map::Entry::Vacant(e) = zones.entry(a.doctor_id) {
                if let Some(found) =
                    self.app.doctors_with_clinics([a.doctor_id]).await.ok().and_then(|mut m| m.remove(&a.doctor_id))
                {
                    e.insert(found);
                }
            }
            let Some((doctor, clinic)) = zones.get(&a.doctor_id) else { continue };
            let video_url = self.app.video_link(a, doctor);
            let ev = EventView {
                event_id: uuid::Uuid::now_v7(),
                topic: "appointment.reminder".into(),
                appointment_id: a.id,
                patient_id: a.patient_id,
                actor_id: None,
                start: a.start,
                end: a.end,
                previous_start: None,
                previous_status: None,
                status: a.status.as_str().into(),
                version: a.version,
                mode: a.mode,
                cancel_reason: None,
                hold_expires_at: None,
                alternatives: vec![],
            };
            let parties = Parties {
                doctor,
                clinic,
                patient: &patient,
                organizer: self.config.sender_address(),
                public_url: self.config.public_url.trim_end_matches('/'),
                video_url: video_url.as_deref(),
            };
            let m = messages::compose(Kind::Reminder, Audience::Patient, &ev, &parties, now);
            let check = serde_json::json!({ "start": a.start.to_string(), "late": late });
            queued.push(email_delivery(&key, &r.patient_email, Kind::Reminder, &ev, clinic.id, &m, Some(check)));
        }
        if !queued.is_empty() {
            pass.reminders += u32::try_from(self.store().enqueue(&queued, now).await?).unwrap_or(u32::MAX);
        }
        Ok(())
    }

    async fn settle_waitlist(&self, pass: &mut Pass) -> Result<(), StoreError> {
        for lapsed in self.store().settle_waitlist(self.app.now()).await? {
            if self.offer(lapsed.doctor_id, lapsed.start, lapsed.mode).await {
                pass.offers += 1;
            }
        }
        Ok(())
    }

    async fn deliver(&self, pass: &mut Pass) -> Result<(), StoreError> {
        let now = self.app.now();
        let claimed = self.store().claim_deliveries(&self.config.worker_id, now, self.config.lease, 32).await?;
        for d in claimed {
            let outcome = match d.channel {
                Channel::Email => self.send_email(&d).await,
                Channel::Webhook => self.send_webhook(&d).await,
            };
            if matches!(outcome, DeliveryOutcome::Delivered { .. }) && self.config.crash_after_send > 0.0 {
                use rand::Rng;
                if rand::thread_rng().gen_bool(self.config.crash_after_send.min(1.0)) {
                    tracing::error!(delivery = d.id, "crash injected after sending, before recording it");
                    std::process::abort();
                }
            }
            let label = match &outcome {
                DeliveryOutcome::Delivered { .. } => {
                    pass.delivered += 1;
                    "delivered"
                }
                DeliveryOutcome::Retry { .. } => {
                    pass.retried += 1;
                    "retry"
                }
                DeliveryOutcome::Dead { .. } => {
                    pass.dead += 1;
                    "dead"
                }
                DeliveryOutcome::Skipped { .. } => {
                    pass.skipped += 1;
                    "skipped"
                }
            };
            self.app.metrics().delivery(d.channel.as_str(), label);
            if let DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::Dead { error, .. } = &outcome {
                tracing::warn!(delivery = d.id, channel = d.channel.as_str(), attempt = d.attempts + 1, %error, "delivery failed");
            }
            self.store().finish_delivery(d.id, &self.config.worker_id, &outcome, self.app.now()).await?;
        }
        Ok(())
    }

    /// After a failed attempt: back off, or give up after the last one.
    fn failed(&self, d: &DeliveryRecord, error: String, http_status: Option<u16>, permanent: bool) -> DeliveryOutcome {
        let attempt = d.attempts + 1;
        if permanent || attempt >= self.config.max_attempts {
            return DeliveryOutcome::Dead { error, http_status };
        }
        let exp = self.config.backoff_base.as_millis().saturating_mul(1i128 << attempt.min(20).saturating_sub(1));
        let capped = exp.min(self.config.backoff_max.as_millis());
        // Up to a fifth of jitter, so a recovering receiver is not hit by every retry at once.
        let jitter = {
            use rand::Rng;
            rand::thread_rng().gen_range(0..=capped / 5)
        };
        let delay = SignedDuration::from_millis(i64::try_from(capped + jitter).unwrap_or(i64::MAX));
        DeliveryOutcome::Retry { at: self.app.now() + delay, error, http_status }
    }

    async fn send_email(&self, d: &DeliveryRecord) -> DeliveryOutcome {
        let p = &d.payload;
        let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        if let Some(why) = self.stale_reminder(d).await {
            return DeliveryOutcome::Skipped { why };
        }
        let ics = p.get("ics_method").and_then(|m| m.as_str()).map(|m| (m, text("ics")));
        let built = mail::build(&mail::Outgoing {
            from: &self.config.mail_from,
            to: &d.recipient,
            message_id: text("message_id"),
            subject: text("subject"),
            text: text("text"),
            ics,
        });
        let message = match built {
            Ok(m) => m,
            Err(e) => return DeliveryOutcome::Dead { error: e.to_string(), http_status: None },
        };
        match self.mailer.send(message).await {
            Ok(()) => DeliveryOutcome::Delivered { http_status: None },
            Err(e @ mail::MailError::Permanent(_)) => self.failed(d, e.to_string(), None, true),
            Err(e) => self.failed(d, e.to_string(), None, false),
        }
    }

    /// A reminder is sent only for an appointment still booked at the same
    /// start, still in the future, and booked before its reminder time.
    async fn stale_reminder(&self, d: &DeliveryRecord) -> Option<String> {
        let check = d.payload.get("check")?;
        if check.get("late").and_then(|v| v.as_bool()) == Some(true) {
            return Some("booked after the reminder time".into());
        }
        let id = d.appointment_id?;
        let current = match self.store().appointment(id).await {
            Ok(Some(a)) => a,
            Ok(None) => return Some("appointment gone".into()),
            Err(_) => return None,
        };
        let start = check.get("start").and_then(|v| v.as_str()).and_then(|s| s.parse::<Timestamp>().ok());
        if current.status != medislot_domain::AppointmentStatus::Booked {
            return Some(format!("appointment is {}", current.status.as_str()));
        }
        if Some(current.start) != start {
            return Some("appointment moved".into());
        }
        if current.start <= self.app.now() {
            return Some("appointment already started".into());
        }
        None
    }

    async fn send_webhook(&self, d: &DeliveryRecord) -> DeliveryOutcome {
        let hook = uuid::Uuid::parse_str(&d.recipient).ok();
        let w = match hook {
            Some(id) => self.store().webhook(id).await,
            None => Ok(None),
        };
        let w = match w {
            Ok(Some(w)) if w.active => w,
            Ok(_) => return DeliveryOutcome::Skipped { why: "webhook switched off".into() },
            Err(e) => return self.failed(d, e.to_string(), None, false),
        };
        let body = d.payload.to_string();
        let now = self.app.now().as_second();
        let allow = self.config.allow_private_webhooks;
        match webhook::post(&self.http, allow, &w.url, &w.secret, &d.event_id.to_string(), body.as_bytes(), now).await {
            webhook::Sent::Blocked => {
                self.failed(d, "blocked: the receiver's address is not public".into(), None, true)
            }
            webhook::Sent::Ok(status) => DeliveryOutcome::Delivered { http_status: Some(status) },
            webhook::Sent::Failed { status, error } => self.failed(d, error, status, false),
        }
    }
}

/// The e-mail delivery for one message; its Message-ID derives from the dedup key.
fn email_delivery(
    key: &str,
    to: &str,
    kind: Kind,
    ev: &EventView,
    clinic: medislot_domain::ClinicId,
    m: &messages::Message,
    check: Option<serde_json::Value>,
) -> NewDelivery {
    let domain = "medislot";
    let message_id = format!("<{}@{domain}>", key.replace(':', "."));
    let mut payload = serde_json::json!({
        "message_id": message_id,
        "subject": m.subject,
        "text": m.text,
    });
    if let Some((method, ics)) = &m.ics {
        payload["ics_method"] = (*method).into();
        payload["ics"] = ics.clone().into();
    }
    if let Some(c) = check {
        payload["check"] = c;
    }
    NewDelivery {
        dedup_key: format!("email:{key}"),
        channel: Channel::Email,
        recipient: to.to_string(),
        kind: kind.as_str().into(),
        event_id: ev.event_id,
        appointment_id: Some(ev.appointment_id),
        clinic_id: Some(clinic),
        payload,
    }
}

fn event_doctor(event: &OutboxRecord) -> Option<medislot_domain::DoctorId> {
    let id = event.payload.get("doctor_id")?.as_str()?;
    uuid::Uuid::parse_str(id).ok().map(medislot_domain::DoctorId)
}

/// The start of the slot an event freed, if it freed one: a cancelled
/// booking's, or the old slot of a rescheduled one.
fn freed_slot(ev: &EventView) -> Option<Timestamp> {
    match ev.topic.as_str() {
        "appointment.cancelled" if matches!(ev.previous_status.as_deref(), Some("booked" | "arrived" | "pending")) => {
            Some(ev.start)
        }
        "appointment.rescheduled" => ev.previous_start.filter(|p| *p != ev.start),
        _ => None,
    }
}
