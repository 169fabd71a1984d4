//! The row decoders, written once for both backends: each reads the cells of
//! a row through [`Cells`], which every backend implements on its own column
//! types (SQLite: text ids, Unix seconds or RFC 3339 text, JSON text;
//! PostgreSQL: uuid, timestamptz, text[], jsonb, boolean).

use crate::*;
use medislot_domain::{AppointmentStatus, Coordinates, Membership, Mode, Policy, PostalAddress, Role, TimeZoneName};
use std::str::FromStr;
use uuid::Uuid;

/// One row's cells, by column name.
pub(crate) trait Cells {
    fn text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<Option<i64>>;
    fn real(&self, col: &str) -> Result<f64>;
    fn id(&self, col: &str) -> Result<Option<Uuid>>;
    fn time(&self, col: &str) -> Result<Option<Timestamp>>;
    /// A list of strings (specialties, languages, modes, webhook events).
    fn list(&self, col: &str) -> Result<Vec<String>>;
    /// A structured value (a schedule, a payload, a detail).
    fn json(&self, col: &str) -> Result<Option<serde_json::Value>>;
    fn flag(&self, col: &str) -> Result<bool>;
}

/// A cell that may not be NULL.
fn required<T>(value: Option<T>, col: &str) -> Result<T> {
    value.ok_or_else(|| StoreError::Internal(format!("column {col} is NULL")))
}

fn text(r: &impl Cells, col: &str) -> Result<String> {
    required(r.text(col)?, col)
}

fn int(r: &impl Cells, col: &str) -> Result<i64> {
    required(r.int(col)?, col)
}

fn id(r: &impl Cells, col: &str) -> Result<Uuid> {
    required(r.id(col)?, col)
}

fn time(r: &impl Cells, col: &str) -> Result<Timestamp> {
    required(r.time(col)?, col)
}

fn parsed<T, E: std::fmt::Display>(col: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

fn named<T>(col: &str, value: &str, parsed: Option<T>) -> Result<T> {
    parsed.ok_or_else(|| StoreError::Internal(format!("column {col}: unknown value {value:?}")))
}

fn status(col: &str, s: &str) -> Result<AppointmentStatus> {
    parsed(col, AppointmentStatus::parse(col, s))
}

fn mode(col: &str, s: &str) -> Result<Mode> {
    parsed(col, Mode::parse(col, s))
}

pub(crate) fn user(r: &impl Cells) -> Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(id(r, "u_id")?),
        email: text(r, "u_email")?,
        password_hash: text(r, "u_password_hash")?,
        role: parsed("u_role", Role::from_str(&text(r, "u_role")?))?,
        name: text(r, "u_name")?,
        created_at: time(r, "u_created_at")?,
    })
}

pub(crate) fn clinic(r: &impl Cells) -> Result<ClinicRecord> {
    Ok(ClinicRecord {
        id: ClinicId(id(r, "c_id")?),
        name: text(r, "c_name")?,
        address: text(r, "c_address")?,
        postal: PostalAddress {
            city: r.text("c_city")?,
            district: r.text("c_district")?,
            postal_code: r.text("c_postal_code")?,
            country: r.text("c_country")?,
        },
        phone: r.text("c_phone")?,
        position: Coordinates { lat: r.real("c_latitude")?, lon: r.real("c_longitude")? },
        time_zone: parsed("c_time_zone", TimeZoneName::parse("time_zone", &text(r, "c_time_zone")?))?,
        region: text(r, "c_region")?,
        policy: parsed("c_policy", Policy::parse("policy", &text(r, "c_policy")?))?,
        rules: medislot_domain::ClinicRules {
            cancel_cutoff_minutes: int(r, "c_cancel_cutoff_minutes")?,
            noshow_limit: int(r, "c_noshow_limit")?,
            noshow_period_days: int(r, "c_noshow_period_days")?,
        },
        created_at: time(r, "c_created_at")?,
    })
}

pub(crate) fn doctor(r: &impl Cells) -> Result<DoctorRecord> {
    let verification = text(r, "d_verification")?;
    let membership = text(r, "d_membership")?;
    Ok(DoctorRecord {
        id: DoctorId(id(r, "d_id")?),
        user_id: r.id("d_user_id")?.map(UserId),
        clinic_id: ClinicId(id(r, "d_clinic_id")?),
        name: text(r, "d_name")?,
        specialties: r.list("d_specialties")?,
        languages: r.list("d_languages")?,
        modes: r.list("d_modes")?.iter().map(|m| mode("d_modes", m)).collect::<Result<_>>()?,
        licence_number: text(r, "d_licence_number")?,
        bio: text(r, "d_bio")?,
        verification: named("d_verification", &verification, VerificationState::parse(&verification))?,
        verification_reason: r.text("d_verification_reason")?,
        membership: named("d_membership", &membership, Membership::parse(&membership))?,
        schedule: parsed("d_schedule", serde_json::from_value(required(r.json("d_schedule")?, "d_schedule")?))?,
        video_room_url: r.text("d_video_room_url")?,
        visit_types: parsed(
            "d_visit_types",
            serde_json::from_value(required(r.json("d_visit_types")?, "d_visit_types")?),
        )?,
        version: int(r, "d_version")?,
        created_at: time(r, "d_created_at")?,
        updated_at: time(r, "d_updated_at")?,
    })
}

pub(crate) fn doctor_and_clinic(r: &impl Cells) -> Result<(DoctorRecord, ClinicRecord)> {
    Ok((doctor(r)?, clinic(r)?))
}

pub(crate) fn appointment(r: &impl Cells) -> Result<AppointmentRecord> {
    Ok(AppointmentRecord {
        id: AppointmentId(id(r, "a_id")?),
        doctor_id: DoctorId(id(r, "a_doctor_id")?),
        patient_id: UserId(id(r, "a_patient_id")?),
        start: time(r, "a_start_at")?,
        end: time(r, "a_end_at")?,
        mode: mode("a_mode", &text(r, "a_mode")?)?,
        reason: text(r, "a_reason")?,
        status: status("a_status", &text(r, "a_status")?)?,
        version: int(r, "a_version")?,
        origin_region: text(r, "a_origin_region")?,
        hold_expires_at: r.time("a_hold_expires_at")?,
        cancel_reason: r.text("a_cancel_reason")?,
        cancelled_by: r.id("a_cancelled_by")?.map(UserId),
        created_at: time(r, "a_created_at")?,
        updated_at: time(r, "a_updated_at")?,
        video_room: r.text("a_video_room")?,
        visit: visit(r)?,
        awaiting_clinic: r.text("a_awaiting")?.is_some(),
    })
}

fn visit(r: &impl Cells) -> Result<Option<Visit>> {
    let Some(code) = r.text("a_visit_type")? else { return Ok(None) };
    let intake = match r.json("a_intake")? {
        Some(v) => parsed("a_intake", serde_json::from_value(v))?,
        None => vec![],
    };
    Ok(Some(Visit { name: r.text("a_visit_type_name")?.unwrap_or_else(|| code.clone()), code, intake }))
}

pub(crate) fn audit(r: &impl Cells) -> Result<AuditRecord> {
    Ok(AuditRecord {
        appointment_id: AppointmentId(id(r, "appointment_id")?),
        actor_id: r.id("actor_id")?.map(UserId),
        at: time(r, "at")?,
        from_status: r.text("from_status")?.map(|s| status("from_status", &s)).transpose()?,
        to_status: status("to_status", &text(r, "to_status")?)?,
        from_start: r.time("from_start")?,
        to_start: r.time("to_start")?,
        detail: r.text("detail")?,
    })
}

pub(crate) fn outbox(r: &impl Cells) -> Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: int(r, "id")?,
        event_id: id(r, "event_id")?,
        topic: text(r, "topic")?,
        payload: required(r.json("payload")?, "payload")?,
        created_at: time(r, "created_at")?,
    })
}

/// A doctor's busy interval (`doctor_id`, `start_at`, `end_at`).
pub(crate) fn busy(r: &impl Cells) -> Result<(DoctorId, Interval)> {
    Ok((DoctorId(id(r, "doctor_id")?), Interval { start: time(r, "start_at")?, end: time(r, "end_at")? }))
}

pub(crate) fn delivery(r: &impl Cells) -> Result<DeliveryRecord> {
    let channel = match text(r, "channel")?.as_str() {
        "email" => Channel::Email,
        "webhook" => Channel::Webhook,
        other => return Err(StoreError::Internal(format!("bad channel {other:?}"))),
    };
    let state = text(r, "status")?;
    Ok(DeliveryRecord {
        id: int(r, "id")?,
        dedup_key: text(r, "dedup_key")?,
        channel,
        recipient: text(r, "recipient")?,
        kind: text(r, "kind")?,
        event_id: id(r, "event_id")?,
        appointment_id: r.id("appointment_id")?.map(AppointmentId),
        clinic_id: r.id("clinic_id")?.map(ClinicId),
        payload: required(r.json("payload")?, "payload")?,
        status: named("status", &state, DeliveryStatus::parse(&state))?,
        attempts: u32::try_from(int(r, "attempts")?).unwrap_or(0),
        next_attempt_at: time(r, "next_attempt_at")?,
        last_error: r.text("last_error")?,
        last_status: r.int("last_status")?.and_then(|s| u16::try_from(s).ok()),
        created_at: time(r, "created_at")?,
        delivered_at: r.time("delivered_at")?,
    })
}

pub(crate) fn notification(r: &impl Cells) -> Result<NotificationRecord> {
    Ok(NotificationRecord {
        id: id(r, "id")?,
        user_id: UserId(id(r, "user_id")?),
        kind: text(r, "kind")?,
        title: text(r, "title")?,
        body: text(r, "body")?,
        appointment_id: r.id("appointment_id")?.map(AppointmentId),
        link: r.text("link")?,
        created_at: time(r, "created_at")?,
        read_at: r.time("read_at")?,
    })
}

pub(crate) fn webhook(r: &impl Cells) -> Result<WebhookRecord> {
    Ok(WebhookRecord {
        id: id(r, "id")?,
        clinic_id: ClinicId(id(r, "clinic_id")?),
        url: text(r, "url")?,
        secret: text(r, "secret")?,
        events: r.list("events")?,
        active: r.flag("active")?,
        created_at: time(r, "created_at")?,
    })
}

pub(crate) fn waitlist(r: &impl Cells) -> Result<WaitlistRecord> {
    let state = text(r, "w_status")?;
    Ok(WaitlistRecord {
        id: id(r, "w_id")?,
        doctor_id: DoctorId(id(r, "w_doctor_id")?),
        patient_id: UserId(id(r, "w_patient_id")?),
        not_before: r.time("w_not_before")?,
        not_after: r.time("w_not_after")?,
        mode: r.text("w_mode")?.map(|m| mode("w_mode", &m)).transpose()?,
        status: named("w_status", &state, WaitlistStatus::parse(&state))?,
        offered_appointment_id: r.id("w_offered")?.map(AppointmentId),
        created_at: time(r, "w_created_at")?,
    })
}

pub(crate) fn forward(r: &impl Cells) -> Result<ForwardRecord> {
    let state = text(r, "status")?;
    Ok(ForwardRecord {
        id: AppointmentId(id(r, "id")?),
        region: text(r, "region")?,
        patient_id: UserId(id(r, "patient_id")?),
        doctor_id: DoctorId(id(r, "doctor_id")?),
        start: time(r, "start_at")?,
        end: time(r, "end_at")?,
        mode: mode("mode", &text(r, "mode")?)?,
        reason: text(r, "reason")?,
        idempotency_key: r.text("idempotency_key")?,
        fingerprint: r.text("fingerprint")?,
        status: named("status", &state, ForwardStatus::parse(&state))?,
        detail: r.json("detail")?,
        attempts: u32::try_from(int(r, "attempts")?).unwrap_or(0),
        created_at: time(r, "created_at")?,
        resolved_at: r.time("resolved_at")?,
        visit: r.json("visit")?.map(|v| parsed("visit", serde_json::from_value(v))).transpose()?,
    })
}

/// Each backend's decoders, by the names its statements use, over its own row type.
macro_rules! row_decoders {
    ($row:ty) => {
        pub(super) fn user_row(r: &$row) -> Result<UserRecord> {
            crate::decode::user(r)
        }
        pub(super) fn clinic_row(r: &$row) -> Result<ClinicRecord> {
            crate::decode::clinic(r)
        }
        pub(super) fn doctor_row(r: &$row) -> Result<DoctorRecord> {
            crate::decode::doctor(r)
        }
        pub(super) fn doctor_and_clinic(r: &$row) -> Result<(DoctorRecord, ClinicRecord)> {
            crate::decode::doctor_and_clinic(r)
        }
        pub(super) fn appointment_row(r: &$row) -> Result<AppointmentRecord> {
            crate::decode::appointment(r)
        }
        pub(super) fn audit_row(r: &$row) -> Result<AuditRecord> {
            crate::decode::audit(r)
        }
        pub(super) fn outbox_row(r: &$row) -> Result<OutboxRecord> {
            crate::decode::outbox(r)
        }
        pub(super) fn busy_row(r: &$row) -> Result<(DoctorId, Interval)> {
            crate::decode::busy(r)
        }
        pub(super) fn delivery_row(r: &$row) -> Result<DeliveryRecord> {
            crate::decode::delivery(r)
        }
        pub(super) fn notification_row(r: &$row) -> Result<NotificationRecord> {
            crate::decode::notification(r)
        }
        pub(super) fn webhook_row(r: &$row) -> Result<WebhookRecord> {
            crate::decode::webhook(r)
        }
        pub(super) fn waitlist_row(r: &$row) -> Result<WaitlistRecord> {
            crate::decode::waitlist(r)
        }
        pub(super) fn forward_row(r: &$row) -> Result<ForwardRecord> {
            crate::decode::forward(r)
        }
    };
}
pub(crate) use row_decoders;
