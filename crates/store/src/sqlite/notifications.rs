//! [`NotifyStore`] on SQLite: the outbox, deliveries, in-app notifications,
//! webhooks, the waitlist and calendar feeds.

use super::appointments::{expire_holds, record_change};
use super::rows::*;
use super::values::*;
use super::SqliteStore;
use crate::columns::*;
use crate::*;
use jiff::SignedDuration;
use medislot_domain::AppointmentStatus;
use rusqlite::{params, Connection};
use uuid::Uuid;

pub(super) fn insert_outbox(
    c: &Connection,
    event_id: Uuid,
    topic: &str,
    payload: &serde_json::Value,
    at: Timestamp,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)",
        params![event_id.to_string(), topic, payload.to_string(), at.to_string()],
    )?;
    Ok(())
}

pub(super) fn outbox_after(c: &Connection, after_id: i64, limit: u32) -> Result<Vec<OutboxRecord>> {
    all(
        c,
        "SELECT id, event_id, topic, payload, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
        params![after_id, i64::from(limit)],
        outbox_row,
    )
}

/// How many rows of `table` match `filter`, and the oldest one's `created_at`.
pub(super) fn backlog(c: &Connection, table: &str, filter: &str) -> Result<(u64, Option<Timestamp>)> {
    let (n, oldest) =
        one(c, &format!("SELECT count(*) AS n, min(created_at) AS oldest FROM {table} WHERE {filter}"), [], |r| {
            Ok((get::<i64>(r, "n")?, opt_time(r, "oldest")?))
        })?
        .unwrap_or((0, None));
    Ok((u64::try_from(n).unwrap_or(0), oldest))
}

fn insert_delivery(c: &Connection, d: &NewDelivery, now: Timestamp) -> Result<u64> {
    let done = exec(
        c,
        "INSERT INTO deliveries (dedup_key, channel, recipient, kind, event_id, appointment_id, clinic_id, payload,
                                 status, attempts, next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)
         ON CONFLICT (dedup_key) DO NOTHING",
        params![
            d.dedup_key,
            d.channel.as_str(),
            d.recipient,
            d.kind,
            d.event_id.to_string(),
            d.appointment_id.map(|a| a.to_string()),
            d.clinic_id.map(|c| c.to_string()),
            d.payload.to_string(),
            secs(now),
            now.to_string()
        ],
    )?;
    Ok(done as u64)
}

fn dispatch(
    c: &Connection,
    outbox_id: i64,
    deliveries: &[NewDelivery],
    notifications: &[NewNotification],
    now: Timestamp,
) -> Result<bool> {
    let open: Option<i64> =
        one(c, "SELECT id FROM outbox WHERE id = ? AND delivered_at IS NULL", [outbox_id], |r| get(r, "id"))?;
    if open.is_none() {
        return Ok(false);
    }
    for d in deliveries {
        insert_delivery(c, d, now)?;
    }
    for n in notifications {
        exec(
            c,
            "INSERT INTO notifications (id, user_id, dedup_key, kind, title, body, appointment_id, link, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (dedup_key) DO NOTHING",
            params![
                Uuid::now_v7().to_string(),
                n.user_id.to_string(),
                n.dedup_key,
                n.kind,
                n.title,
                n.body,
                n.appointment_id.map(|a| a.to_string()),
                n.link,
                now.to_string()
            ],
        )?;
    }
    exec(
        c,
        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
        params![now.to_string(), outbox_id],
    )?;
    Ok(true)
}

/// Offers a freed slot to the first waiting patient it suits, as a hold.
fn offer(c: &Connection, o: &WaitlistOffer) -> Result<(Option<(WaitlistRecord, AppointmentRecord)>, u64)> {
    let mut expired = expire_holds(c, o.doctor_id, None, o.now)?;
    let start = secs(o.start);
    let entry = one(
        c,
        &format!(
            "SELECT {WAITLIST_COLS} FROM waitlist w
             WHERE w.doctor_id = ?1 AND w.status = 'waiting'
               AND (w.not_before IS NULL OR w.not_before <= ?2)
               AND (w.not_after IS NULL OR ?2 < w.not_after)
               AND (w.mode IS NULL OR w.mode = ?3)
               AND NOT EXISTS (SELECT 1 FROM waitlist_offers x WHERE x.entry_id = w.id AND x.start_at = ?2)
             ORDER BY w.id
             LIMIT 1"
        ),
        params![o.doctor_id.to_string(), start, o.mode.as_str()],
        waitlist_row,
    )?;
    let Some(entry) = entry else {
        return Ok((None, expired));
    };
    expired += expire_holds(c, o.doctor_id, Some(entry.patient_id), o.now)?;
    let id = AppointmentId::new();
    let now = o.now.to_string();
    let inserted = exec(
        c,
        "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                   origin_region, hold_expires_at, created_at, updated_at, video_room)
         VALUES (?, ?, ?, ?, ?, ?, 'Offered from the waitlist', 'held', 1, ?, ?, ?, ?, ?)",
        params![
            id.to_string(),
            o.doctor_id.to_string(),
            entry.patient_id.to_string(),
            start,
            secs(o.end),
            o.mode.as_str(),
            o.origin_region,
            secs(o.hold_until),
            now,
            now,
            crate::new_video_room()
        ],
    );
    match inserted {
        Ok(_) => {}
        // Someone else has the slot, or the patient is busy then: nothing to offer.
        Err(StoreError::SlotTaken | StoreError::PatientBusy) => return Ok((None, expired)),
        Err(e) => return Err(e),
    }
    let after = super::appointments::appointment(c, id)?.ok_or(StoreError::NotFound)?;
    let what = Event { actor: None, at: o.now, topic: "waitlist.offered", detail: Some("offered from the waitlist") };
    record_change(c, None, &after, what)?;
    exec(
        c,
        "INSERT INTO waitlist_offers (entry_id, start_at, appointment_id, created_at) VALUES (?, ?, ?, ?)",
        params![entry.id.to_string(), start, id.to_string(), now],
    )?;
    exec(
        c,
        "UPDATE waitlist SET status = 'offered', offered_appointment_id = ?, updated_at = ? WHERE id = ?",
        params![id.to_string(), now, entry.id.to_string()],
    )?;
    let entry = WaitlistRecord { status: WaitlistStatus::Offered, offered_appointment_id: Some(id), ..entry };
    Ok((Some((entry, after)), expired))
}

/// Offers whose hold ran out or was cancelled go back to waiting (their
/// slots are free again); booked ones are settled.
fn settle(c: &Connection, now: Timestamp) -> Result<Vec<LapsedOffer>> {
    let offers = all(
        c,
        &format!(
            "SELECT w.id AS entry_id, {APPT_COLS} FROM waitlist w JOIN appointments a ON a.id = w.offered_appointment_id
             WHERE w.status = 'offered'"
        ),
        [],
        |r| Ok((get::<String>(r, "entry_id")?, appointment_row(r)?)),
    )?;
    let mut lapsed = Vec::new();
    for (entry, a) in offers {
        let (to, freed) = match a.status {
            AppointmentStatus::Held if a.hold_expires_at.is_some_and(|t| t <= now) => ("waiting", true),
            AppointmentStatus::Held | AppointmentStatus::Pending => continue,
            AppointmentStatus::Cancelled | AppointmentStatus::Conflict => ("waiting", true),
            _ => ("booked", false),
        };
        let done = exec(
            c,
            "UPDATE waitlist SET status = ?1, offered_appointment_id = CASE WHEN ?1 = 'booked' THEN offered_appointment_id END,
                    updated_at = ?2
             WHERE id = ?3 AND status = 'offered'",
            params![to, now.to_string(), entry],
        )?;
        if freed && done == 1 {
            lapsed.push(LapsedOffer { doctor_id: a.doctor_id, start: a.start, end: a.end, mode: a.mode });
        }
    }
    Ok(lapsed)
}

fn waitlist_where(c: &Connection, filter: &str, key: String) -> Result<Vec<WaitlistRecord>> {
    all(c, &format!("SELECT {WAITLIST_COLS} FROM waitlist w WHERE {filter} ORDER BY w.id"), [key], waitlist_row)
}

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn outbox_undispatched(&self, limit: u32) -> Result<Vec<OutboxRecord>> {
        self.read(move |c| {
            all(
                c,
                "SELECT id, event_id, topic, payload, created_at FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?",
                [i64::from(limit)],
                outbox_row,
            )
        })
        .await
    }

    async fn dispatch(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        notifications: &[NewNotification],
        now: Timestamp,
    ) -> Result<bool> {
        let (deliveries, notifications) = (deliveries.to_vec(), notifications.to_vec());
        self.write(move |c| dispatch(c, outbox_id, &deliveries, &notifications, now)).await
    }

    async fn enqueue(&self, deliveries: &[NewDelivery], now: Timestamp) -> Result<u64> {
        let deliveries = deliveries.to_vec();
        self.write(move |c| deliveries.iter().map(|d| insert_delivery(c, d, now)).sum()).await
    }

    async fn claim_deliveries(
        &self,
        worker: &str,
        now: Timestamp,
        lease: SignedDuration,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        let worker = worker.to_string();
        let n = secs(now);
        let mut out = self
            .write(move |c| {
                all(
                    c,
                    &format!(
                        "UPDATE deliveries SET claimed_by = ?1, claimed_until = ?2
                         WHERE id IN (SELECT id FROM deliveries
                                      WHERE status = 'pending' AND next_attempt_at <= ?3
                                        AND (claimed_until IS NULL OR claimed_until <= ?3)
                                      ORDER BY id LIMIT ?4)
                         RETURNING {DELIVERY_COLS}"
                    ),
                    params![worker, secs(now + lease), n, i64::from(limit)],
                    delivery_row,
                )
            })
            .await?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn finish_delivery(&self, id: i64, worker: &str, outcome: &DeliveryOutcome, now: Timestamp) -> Result<()> {
        let (status, next, error, http, delivered) = match outcome {
            DeliveryOutcome::Delivered { http_status } => ("delivered", now, None, *http_status, Some(now.to_string())),
            DeliveryOutcome::Retry { at, error, http_status } => {
                ("pending", *at, Some(error.clone()), *http_status, None)
            }
            DeliveryOutcome::Dead { error, http_status } => ("dead", now, Some(error.clone()), *http_status, None),
            DeliveryOutcome::Skipped { why } => ("skipped", now, Some(why.clone()), None, None),
        };
        let attempted = i64::from(!matches!(outcome, DeliveryOutcome::Skipped { .. }));
        let worker = worker.to_string();
        self.write(move |c| {
            exec(
                c,
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, last_status = ?, delivered_at = ?,
                        attempts = attempts + ?, claimed_by = NULL, claimed_until = NULL
                 WHERE id = ? AND claimed_by = ? AND status = 'pending'",
                params![status, secs(next), error, http.map(i64::from), delivered, attempted, id, worker],
            )?;
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, recipient: Option<&str>, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let recipient = recipient.map(str::to_string);
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries WHERE ?1 IS NULL OR recipient = ?1 ORDER BY id DESC LIMIT ?2"
                ),
                params![recipient, i64::from(limit)],
                delivery_row,
            )
        })
        .await
    }

    async fn delivery_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        self.read(|c| backlog(c, "deliveries", "status = 'pending'")).await
    }

    async fn reminders_due(&self, now: Timestamp, offsets: &[SignedDuration]) -> Result<Vec<ReminderDue>> {
        let offsets = offsets.to_vec();
        self.read(move |c| {
            let mut out = Vec::new();
            for offset in offsets {
                // Due: the reminder time (start - offset) has come and the start has not.
                let due = all(
                    c,
                    &format!(
                        "SELECT {APPT_COLS}, u.email AS p_email FROM appointments a JOIN users u ON u.id = a.patient_id
                         WHERE a.status = 'booked' AND a.start_at > ? AND a.start_at <= ?
                           AND NOT EXISTS (SELECT 1 FROM deliveries x
                                           WHERE x.dedup_key = 'reminder:' || a.id || ':' || a.start_at || ':' || ?)
                         ORDER BY a.start_at"
                    ),
                    params![secs(now), secs(now + offset), crate::reminder_offset_key(offset)],
                    |r| Ok((appointment_row(r)?, get::<String>(r, "p_email")?)),
                )?;
                out.extend(due.into_iter().map(|(appointment, patient_email)| ReminderDue {
                    appointment,
                    patient_email,
                    offset,
                }));
            }
            Ok(out)
        })
        .await
    }

    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<NotificationRecord>> {
        self.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {NOTIFICATION_COLS} FROM notifications WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
                ),
                params![user.to_string(), i64::from(limit)],
                notification_row,
            )
        })
        .await
    }

    async fn mark_notification_read(&self, user: UserId, id: Uuid, now: Timestamp) -> Result<bool> {
        self.write(move |c| {
            let done = exec(
                c,
                "UPDATE notifications SET read_at = COALESCE(read_at, ?) WHERE id = ? AND user_id = ?",
                params![now.to_string(), id.to_string(), user.to_string()],
            )?;
            Ok(done == 1)
        })
        .await
    }

    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()> {
        let w = w.clone();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO webhooks (id, clinic_id, url, secret, events, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    w.id.to_string(),
                    w.clinic_id.to_string(),
                    w.url,
                    w.secret,
                    to_json(&w.events),
                    i64::from(w.active),
                    w.created_at.to_string()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>> {
        self.read(move |c| {
            one(c, &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = ?"), [id.to_string()], webhook_row)
        })
        .await
    }

    async fn webhooks_of(&self, clinic: ClinicId) -> Result<Vec<WebhookRecord>> {
        self.read(move |c| {
            all(
                c,
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE clinic_id = ? ORDER BY created_at, id"),
                [clinic.to_string()],
                webhook_row,
            )
        })
        .await
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        // Kept for its delivery log; only switched off.
        self.write(move |c| {
            Ok(exec(c, "UPDATE webhooks SET active = 0 WHERE id = ? AND active = 1", [id.to_string()])? == 1)
        })
        .await
    }

    async fn join_waitlist(&self, e: &WaitlistRecord) -> Result<()> {
        let e = e.clone();
        self.write(move |c| {
            let at = e.created_at.to_string();
            exec(
                c,
                "INSERT INTO waitlist (id, doctor_id, patient_id, not_before, not_after, mode, status, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
                params![
                    e.id.to_string(),
                    e.doctor_id.to_string(),
                    e.patient_id.to_string(),
                    e.not_before.map(secs),
                    e.not_after.map(secs),
                    e.mode.map(|m| m.as_str()),
                    at,
                    at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn waitlist_of_patient(&self, patient: UserId) -> Result<Vec<WaitlistRecord>> {
        self.read(move |c| waitlist_where(c, "w.patient_id = ? AND w.status <> 'left'", patient.to_string())).await
    }

    async fn waitlist_of_doctor(&self, doctor: DoctorId) -> Result<Vec<WaitlistRecord>> {
        self.read(move |c| {
            waitlist_where(c, "w.doctor_id = ? AND w.status IN ('waiting', 'offered')", doctor.to_string())
        })
        .await
    }

    async fn leave_waitlist(&self, id: Uuid, patient: UserId, now: Timestamp) -> Result<bool> {
        self.write(move |c| {
            let done = exec(
                c,
                "UPDATE waitlist SET status = 'left', updated_at = ?
                 WHERE id = ? AND patient_id = ? AND status IN ('waiting', 'offered')",
                params![now.to_string(), id.to_string(), patient.to_string()],
            )?;
            Ok(done == 1)
        })
        .await
    }

    async fn offer_from_waitlist(&self, o: &WaitlistOffer) -> Result<Option<(WaitlistRecord, AppointmentRecord)>> {
        let o = o.clone();
        let (offered, expired) = self.write(move |c| offer(c, &o)).await?;
        self.count_expired(expired);
        Ok(offered)
    }

    async fn settle_waitlist(&self, now: Timestamp) -> Result<Vec<LapsedOffer>> {
        self.write(move |c| settle(c, now)).await
    }

    async fn set_calendar_token(&self, doctor: DoctorId, token_hash: &str, now: Timestamp) -> Result<()> {
        let hash = token_hash.to_string();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO calendar_feeds (doctor_id, token_hash, created_at) VALUES (?, ?, ?)
                 ON CONFLICT (doctor_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
                params![doctor.to_string(), hash, now.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_calendar_token(&self, doctor: DoctorId) -> Result<bool> {
        self.write(move |c| Ok(exec(c, "DELETE FROM calendar_feeds WHERE doctor_id = ?", [doctor.to_string()])? == 1))
            .await
    }

    async fn calendar_token_matches(&self, doctor: DoctorId, token_hash: &str) -> Result<bool> {
        let hash = token_hash.to_string();
        self.read(move |c| {
            let n: i64 = scalar(
                c,
                "SELECT count(*) FROM calendar_feeds WHERE doctor_id = ? AND token_hash = ?",
                params![doctor.to_string(), hash],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
