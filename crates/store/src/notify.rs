//! Notification storage: the delivery queue fed by the outbox and the reminder
//! scan, in-app notifications, clinics' webhooks, the waitlist and doctors'
//! calendar feeds. Every write that must not happen twice is guarded by a
//! unique key in the database, so workers on many nodes may race freely.

use crate::{AppointmentRecord, Result};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{AppointmentId, ClinicId, DoctorId, Mode, UserId};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Gave up after the last attempt (dead letter).
    Dead,
    /// Not sent on purpose (a reminder for an appointment that was cancelled or moved).
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            "skipped" => DeliveryStatus::Skipped,
            _ => return None,
        })
    }
}

/// One message to one recipient, to be queued.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Unique: the same message is queued once however often it is produced.
    pub dedup_key: String,
    pub channel: Channel,
    /// An e-mail address, or a webhook id.
    pub recipient: String,
    pub kind: String,
    pub event_id: Uuid,
    pub appointment_id: Option<AppointmentId>,
    pub clinic_id: Option<ClinicId>,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub dedup_key: String,
    pub channel: Channel,
    pub recipient: String,
    pub kind: String,
    pub event_id: Uuid,
    pub appointment_id: Option<AppointmentId>,
    pub clinic_id: Option<ClinicId>,
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// What became of one attempt to deliver.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered {
        http_status: Option<u16>,
    },
    /// Failed; try again at `at`.
    Retry {
        at: Timestamp,
        error: String,
        http_status: Option<u16>,
    },
    /// Failed for the last time.
    Dead {
        error: String,
        http_status: Option<u16>,
    },
    Skipped {
        why: String,
    },
}

/// An in-app notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub user_id: UserId,
    pub dedup_key: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub appointment_id: Option<AppointmentId>,
    pub link: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub appointment_id: Option<AppointmentId>,
    pub link: Option<String>,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub clinic_id: ClinicId,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitlistStatus {
    Waiting,
    /// A freed slot is held for this patient until the hold runs out.
    Offered,
    /// The patient confirmed an offered slot.
    Booked,
    Left,
}

impl WaitlistStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitlistStatus::Waiting => "waiting",
            WaitlistStatus::Offered => "offered",
            WaitlistStatus::Booked => "booked",
            WaitlistStatus::Left => "left",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => WaitlistStatus::Waiting,
            "offered" => WaitlistStatus::Offered,
            "booked" => WaitlistStatus::Booked,
            "left" => WaitlistStatus::Left,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct WaitlistRecord {
    pub id: Uuid,
    pub doctor_id: DoctorId,
    pub patient_id: UserId,
    /// Only slots starting in [not_before, not_after) are offered.
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    pub mode: Option<Mode>,
    pub status: WaitlistStatus,
    pub offered_appointment_id: Option<AppointmentId>,
    pub created_at: Timestamp,
}

/// A freed slot to offer to a doctor's waitlist, as a hold until `hold_until`.
#[derive(Debug, Clone)]
pub struct WaitlistOffer {
    pub doctor_id: DoctorId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
    pub hold_until: Timestamp,
    pub origin_region: String,
    pub now: Timestamp,
}

/// A slot whose waitlist offer ran out (or was declined): offer it to the next patient.
#[derive(Debug, Clone)]
pub struct LapsedOffer {
    pub doctor_id: DoctorId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
}

/// A booked appointment some reminder is due for, with its patient's address.
#[derive(Debug, Clone)]
pub struct ReminderDue {
    pub appointment: AppointmentRecord,
    pub patient_email: String,
    pub offset: SignedDuration,
}

#[async_trait]
pub trait NotifyStore: Send + Sync {
    // The outbox's fan-out.
    /// Outbox events not fanned out yet, oldest first.
    async fn outbox_undispatched(&self, limit: u32) -> Result<Vec<crate::OutboxRecord>>;
    /// In one transaction: queues the deliveries and creates the notifications
    /// (each at most once, by its dedup key) and marks the outbox event done.
    /// `false` when another worker had already done it.
    async fn dispatch(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        notifications: &[NewNotification],
        now: Timestamp,
    ) -> Result<bool>;
    /// Queues deliveries outside any outbox event (reminders); returns how many were new.
    async fn enqueue(&self, deliveries: &[NewDelivery], now: Timestamp) -> Result<u64>;

    // The delivery queue.
    /// Claims up to `limit` due deliveries for `worker` until `now + lease`
    /// (SQLite: one writer at a time; PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    /// A worker that dies leaves its claims to run out; they are claimed again.
    async fn claim_deliveries(
        &self,
        worker: &str,
        now: Timestamp,
        lease: SignedDuration,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>>;
    /// Records an attempt's outcome, if `worker` still holds the claim.
    async fn finish_delivery(&self, id: i64, worker: &str, outcome: &DeliveryOutcome, now: Timestamp) -> Result<()>;
    /// Deliveries by recipient (a webhook's log) or all, newest first.
    async fn deliveries(&self, recipient: Option<&str>, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Deliveries not finished yet (pending), and the oldest one's creation time.
    async fn delivery_backlog(&self) -> Result<(u64, Option<Timestamp>)>;

    // Reminders.
    /// Booked appointments starting in (now, now + longest offset] for which a
    /// reminder at one of `offsets` before the start has come due.
    async fn reminders_due(&self, now: Timestamp, offsets: &[SignedDuration]) -> Result<Vec<ReminderDue>>;

    // In-app notifications.
    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<NotificationRecord>>;
    /// Marks one of the user's notifications read; `false` when it is not theirs or does not exist.
    async fn mark_notification_read(&self, user: UserId, id: Uuid, now: Timestamp) -> Result<bool>;

    // Webhooks.
    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()>;
    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>>;
    async fn webhooks_of(&self, clinic: ClinicId) -> Result<Vec<WebhookRecord>>;
    async fn delete_webhook(&self, id: Uuid) -> Result<bool>;

    // Waitlist.
    async fn join_waitlist(&self, entry: &WaitlistRecord) -> Result<()>;
    async fn waitlist_of_patient(&self, patient: UserId) -> Result<Vec<WaitlistRecord>>;
    async fn waitlist_of_doctor(&self, doctor: DoctorId) -> Result<Vec<WaitlistRecord>>;
    async fn leave_waitlist(&self, id: Uuid, patient: UserId, now: Timestamp) -> Result<bool>;
    /// In one transaction: the first waiting patient this slot suits (and was
    /// not offered before) gets a hold on it — under the overlap constraint
    /// like any booking — with an audit row and a `waitlist.offered` outbox
    /// event. `None` when nobody waits for it or the slot is not free.
    async fn offer_from_waitlist(&self, offer: &WaitlistOffer) -> Result<Option<(WaitlistRecord, AppointmentRecord)>>;
    /// Settles offers: a confirmed hold makes its entry `booked`; a hold that
    /// ran out or was cancelled puts its entry back to `waiting` and returns
    /// the slot, to be offered to the next patient.
    async fn settle_waitlist(&self, now: Timestamp) -> Result<Vec<LapsedOffer>>;

    // Calendar feeds.
    /// Sets (or replaces, revoking the old one) the doctor's feed secret.
    async fn set_calendar_token(&self, doctor: DoctorId, token_hash: &str, now: Timestamp) -> Result<()>;
    async fn revoke_calendar_token(&self, doctor: DoctorId) -> Result<bool>;
    async fn calendar_token_matches(&self, doctor: DoctorId, token_hash: &str) -> Result<bool>;
}

/// The dedup key (and message identity) of the reminder `offset` before an
/// appointment's start; a moved appointment gets new reminders.
pub fn reminder_dedup_key(appointment: AppointmentId, start: Timestamp, offset: SignedDuration) -> String {
    format!("reminder:{appointment}:{}:{}", start.as_second(), reminder_offset_key(offset))
}

/// The part of a reminder's dedup key that names its offset, e.g. `1440m`.
pub fn reminder_offset_key(offset: SignedDuration) -> String {
    format!("{}m", offset.as_mins())
}
