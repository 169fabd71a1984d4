//! [`NotifyStore`] on PostgreSQL: the outbox, deliveries, in-app
//! notifications, webhooks, the waitlist and calendar feeds.

use super::appointments::{appointment_in, expire_holds, record_change};
use super::rows::*;
use super::{lock, map_err, retrying, PgStore};
use crate::columns::{Event, APPT_COLS, DELIVERY_COLS, NOTIFICATION_COLS, WAITLIST_COLS, WEBHOOK_COLS};
use crate::*;
use jiff::SignedDuration;
use medislot_domain::AppointmentStatus;
use sqlx::PgPool;
use uuid::Uuid;

pub(super) async fn outbox_after(pool: &PgPool, after_id: i64, limit: u32) -> Result<Vec<OutboxRecord>> {
    let rows =
        sqlx::query("SELECT id, event_id, topic, payload, created_at FROM outbox WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_err)?;
    rows.iter().map(outbox_row).collect()
}

/// How many rows of `table` match `filter`, and the oldest one's `created_at`.
pub(super) async fn backlog(pool: &PgPool, table: &str, filter: &str) -> Result<(u64, Option<Timestamp>)> {
    let row = sqlx::query(&format!("SELECT count(*) AS n, min(created_at) AS oldest FROM {table} WHERE {filter}"))
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    Ok((u64::try_from(get::<i64>(&row, "n")?).unwrap_or(0), opt_time(&row, "oldest")?))
}

async fn insert_delivery(tx: &mut super::Tx, d: &NewDelivery, now: Timestamp) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO deliveries (dedup_key, channel, recipient, kind, event_id, appointment_id, clinic_id, payload,
                                 status, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9)
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(&d.dedup_key)
    .bind(d.channel.as_str())
    .bind(&d.recipient)
    .bind(&d.kind)
    .bind(d.event_id)
    .bind(d.appointment_id.map(|a| a.0))
    .bind(d.clinic_id.map(|c| c.0))
    .bind(&d.payload)
    .bind(ts(now))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

async fn waitlist_where(pool: &PgPool, filter: &str, key: Uuid) -> Result<Vec<WaitlistRecord>> {
    let rows = sqlx::query(&format!("SELECT {WAITLIST_COLS} FROM waitlist w WHERE {filter} ORDER BY w.id"))
        .bind(key)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(waitlist_row).collect()
}

impl PgStore {
    async fn dispatch_once(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        notifications: &[NewNotification],
        now: Timestamp,
    ) -> Result<bool> {
        let (mut tx, _admitted) = self.write_tx().await?;
        let open: Option<i64> =
            sqlx::query_scalar("SELECT id FROM outbox WHERE id = $1 AND delivered_at IS NULL FOR UPDATE SKIP LOCKED")
                .bind(outbox_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if open.is_none() {
            return Ok(false);
        }
        for d in deliveries {
            insert_delivery(&mut tx, d, now).await?;
        }
        for n in notifications {
            sqlx::query(
                "INSERT INTO notifications (id, user_id, dedup_key, kind, title, body, appointment_id, link, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (dedup_key) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(n.user_id.0)
            .bind(&n.dedup_key)
            .bind(&n.kind)
            .bind(&n.title)
            .bind(&n.body)
            .bind(n.appointment_id.map(|a| a.0))
            .bind(&n.link)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(ts(now))
            .bind(outbox_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn offer_once(&self, o: &WaitlistOffer) -> Result<Option<(WaitlistRecord, AppointmentRecord)>> {
        let (mut tx, _admitted) = self.write_tx().await?;
        lock(&mut tx, &format!("doctor:{}", o.doctor_id)).await?;
        let mut expired = expire_holds(&mut tx, o.doctor_id, None, o.now).await?;
        let row = sqlx::query(&format!(
            "SELECT {WAITLIST_COLS} FROM waitlist w
             WHERE w.doctor_id = $1 AND w.status = 'waiting'
               AND (w.not_before IS NULL OR w.not_before <= $2)
               AND (w.not_after IS NULL OR $2 < w.not_after)
               AND (w.mode IS NULL OR w.mode = $3)
               AND NOT EXISTS (SELECT 1 FROM waitlist_offers x WHERE x.entry_id = w.id AND x.start_at = $2)
             ORDER BY w.id
             LIMIT 1"
        ))
        .bind(o.doctor_id.0)
        .bind(ts(o.start))
        .bind(o.mode.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(entry) = row.as_ref().map(waitlist_row).transpose()? else {
            self.commit(tx).await?;
            self.count_expired(expired);
            return Ok(None);
        };
        expired += expire_holds(&mut tx, o.doctor_id, Some(entry.patient_id), o.now).await?;
        let id = AppointmentId::new();
        let inserted = sqlx::query(
            "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                       origin_region, hold_expires_at, created_at, updated_at, video_room)
             VALUES ($1, $2, $3, $4, $5, $6, 'Offered from the waitlist', 'held', 1, $7, $8, $9, $9, $10)",
        )
        .bind(id.0)
        .bind(o.doctor_id.0)
        .bind(entry.patient_id.0)
        .bind(ts(o.start))
        .bind(ts(o.end))
        .bind(o.mode.as_str())
        .bind(&o.origin_region)
        .bind(ts(o.hold_until))
        .bind(ts(o.now))
        .bind(crate::new_video_room())
        .execute(&mut *tx)
        .await
        .map_err(map_err);
        match inserted {
            Ok(_) => {}
            // Someone else has the slot, or the patient is busy then: nothing
            // to offer (the transaction rolls back).
            Err(StoreError::SlotTaken | StoreError::PatientBusy) => return Ok(None),
            Err(e) => return Err(e),
        }
        let after = appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let what =
            Event { actor: None, at: o.now, topic: "waitlist.offered", detail: Some("offered from the waitlist") };
        record_change(&mut tx, None, &after, what).await?;
        sqlx::query(
            "WITH offered AS (
                 INSERT INTO waitlist_offers (entry_id, start_at, appointment_id, created_at) VALUES ($1, $2, $3, $4))
             UPDATE waitlist SET status = 'offered', offered_appointment_id = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(entry.id)
        .bind(ts(o.start))
        .bind(id.0)
        .bind(ts(o.now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await?;
        self.count_expired(expired);
        let entry = WaitlistRecord { status: WaitlistStatus::Offered, offered_appointment_id: Some(id), ..entry };
        Ok(Some((entry, after)))
    }
}

#[async_trait]
impl NotifyStore for PgStore {
    async fn outbox_undispatched(&self, limit: u32) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(
            "SELECT id, event_id, topic, payload, created_at FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(outbox_row).collect()
    }

    async fn dispatch(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        notifications: &[NewNotification],
        now: Timestamp,
    ) -> Result<bool> {
        retrying(|| self.dispatch_once(outbox_id, deliveries, notifications, now)).await
    }

    async fn enqueue(&self, deliveries: &[NewDelivery], now: Timestamp) -> Result<u64> {
        let (mut tx, _admitted) = self.write_tx().await?;
        let mut n = 0;
        for d in deliveries {
            n += insert_delivery(&mut tx, d, now).await?;
        }
        self.commit(tx).await?;
        Ok(n)
    }

    async fn claim_deliveries(
        &self,
        worker: &str,
        now: Timestamp,
        lease: SignedDuration,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        let _admitted = self.admission.enter().await?;
        // The pick is a CTE, evaluated once: PostgreSQL may run an `IN (subquery)`
        // once per outer row, and with SKIP LOCKED each run can pick other rows.
        let rows = sqlx::query(&format!(
            "WITH picked AS (SELECT id FROM deliveries
                             WHERE status = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
                             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE deliveries SET claimed_by = $3, claimed_until = $4
             WHERE id IN (SELECT id FROM picked)
               AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= $1)
             RETURNING {DELIVERY_COLS}"
        ))
        .bind(ts(now))
        .bind(i64::from(limit))
        .bind(worker)
        .bind(ts(now + lease))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut out = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn finish_delivery(&self, id: i64, worker: &str, outcome: &DeliveryOutcome, now: Timestamp) -> Result<()> {
        let (status, next, error, http, delivered) = match outcome {
            DeliveryOutcome::Delivered { http_status } => ("delivered", now, None, *http_status, Some(now)),
            DeliveryOutcome::Retry { at, error, http_status } => {
                ("pending", *at, Some(error.clone()), *http_status, None)
            }
            DeliveryOutcome::Dead { error, http_status } => ("dead", now, Some(error.clone()), *http_status, None),
            DeliveryOutcome::Skipped { why } => ("skipped", now, Some(why.clone()), None, None),
        };
        let _admitted = self.admission.enter().await?;
        sqlx::query(
            "UPDATE deliveries SET status = $1, next_attempt_at = $2, last_error = $3, last_status = $4, delivered_at = $5,
                    attempts = attempts + $6, claimed_by = NULL, claimed_until = NULL
             WHERE id = $7 AND claimed_by = $8 AND status = 'pending'",
        )
        .bind(status)
        .bind(ts(next))
        .bind(error)
        .bind(http.map(i32::from))
        .bind(delivered.map(ts))
        .bind(i64::from(!matches!(outcome, DeliveryOutcome::Skipped { .. })))
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn deliveries(&self, recipient: Option<&str>, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let filter = if recipient.is_some() { "WHERE recipient = $2" } else { "" };
        let sql = format!("SELECT {DELIVERY_COLS} FROM deliveries {filter} ORDER BY id DESC LIMIT $1");
        let mut q = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(r) = recipient {
            q = q.bind(r);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(delivery_row).collect()
    }

    async fn delivery_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        backlog(&self.pool, "deliveries", "status = 'pending'").await
    }

    async fn reminders_due(&self, now: Timestamp, offsets: &[SignedDuration]) -> Result<Vec<ReminderDue>> {
        let mut out = Vec::new();
        for &offset in offsets {
            // Due: the reminder time (start - offset) has come and the start has not.
            let rows = sqlx::query(&format!(
                "SELECT {APPT_COLS}, u.email AS p_email FROM appointments a JOIN users u ON u.id = a.patient_id
                 WHERE a.status = 'booked' AND a.start_at > $1 AND a.start_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM deliveries x
                                   WHERE x.dedup_key = 'reminder:' || a.id || ':' || extract(epoch FROM a.start_at)::bigint
                                                       || ':' || $3)
                 ORDER BY a.start_at"
            ))
            .bind(ts(now))
            .bind(ts(now + offset))
            .bind(crate::reminder_offset_key(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            for r in &rows {
                out.push(ReminderDue { appointment: appointment_row(r)?, patient_email: get(r, "p_email")?, offset });
            }
        }
        Ok(out)
    }

    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<NotificationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(user.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(notification_row).collect()
    }

    async fn mark_notification_read(&self, user: UserId, id: Uuid, now: Timestamp) -> Result<bool> {
        let _admitted = self.admission.enter().await?;
        let done =
            sqlx::query("UPDATE notifications SET read_at = coalesce(read_at, $1) WHERE id = $2 AND user_id = $3")
                .bind(ts(now))
                .bind(id)
                .bind(user.0)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, clinic_id, url, secret, events, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(w.id)
        .bind(w.clinic_id.0)
        .bind(&w.url)
        .bind(&w.secret)
        .bind(&w.events)
        .bind(w.active)
        .bind(ts(w.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>> {
        let row = sqlx::query(&format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(webhook_row).transpose()
    }

    async fn webhooks_of(&self, clinic: ClinicId) -> Result<Vec<WebhookRecord>> {
        let rows =
            sqlx::query(&format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE clinic_id = $1 ORDER BY created_at, id"))
                .bind(clinic.0)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(webhook_row).collect()
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        // Kept for its delivery log; only switched off.
        let _admitted = self.admission.enter().await?;
        let done = sqlx::query("UPDATE webhooks SET active = false WHERE id = $1 AND active")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn join_waitlist(&self, e: &WaitlistRecord) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        sqlx::query(
            "INSERT INTO waitlist (id, doctor_id, patient_id, not_before, not_after, mode, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7, $7)",
        )
        .bind(e.id)
        .bind(e.doctor_id.0)
        .bind(e.patient_id.0)
        .bind(e.not_before.map(ts))
        .bind(e.not_after.map(ts))
        .bind(e.mode.map(|m| m.as_str()))
        .bind(ts(e.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn waitlist_of_patient(&self, patient: UserId) -> Result<Vec<WaitlistRecord>> {
        waitlist_where(&self.pool, "w.patient_id = $1 AND w.status <> 'left'", patient.0).await
    }

    async fn waitlist_of_doctor(&self, doctor: DoctorId) -> Result<Vec<WaitlistRecord>> {
        waitlist_where(&self.pool, "w.doctor_id = $1 AND w.status IN ('waiting', 'offered')", doctor.0).await
    }

    async fn leave_waitlist(&self, id: Uuid, patient: UserId, now: Timestamp) -> Result<bool> {
        let _admitted = self.admission.enter().await?;
        let done = sqlx::query(
            "UPDATE waitlist SET status = 'left', updated_at = $1
             WHERE id = $2 AND patient_id = $3 AND status IN ('waiting', 'offered')",
        )
        .bind(ts(now))
        .bind(id)
        .bind(patient.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn offer_from_waitlist(&self, offer: &WaitlistOffer) -> Result<Option<(WaitlistRecord, AppointmentRecord)>> {
        retrying(|| self.offer_once(offer)).await
    }

    async fn settle_waitlist(&self, now: Timestamp) -> Result<Vec<LapsedOffer>> {
        let rows = sqlx::query(&format!(
            "SELECT w.id AS entry_id, {APPT_COLS} FROM waitlist w JOIN appointments a ON a.id = w.offered_appointment_id
             WHERE w.status = 'offered'"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut lapsed = Vec::new();
        for r in &rows {
            let entry: Uuid = get(r, "entry_id")?;
            let a = appointment_row(r)?;
            let (to, freed) = match a.status {
                AppointmentStatus::Held if a.hold_expires_at.is_some_and(|t| t <= now) => ("waiting", true),
                AppointmentStatus::Held | AppointmentStatus::Pending => continue,
                AppointmentStatus::Cancelled | AppointmentStatus::Conflict => ("waiting", true),
                _ => ("booked", false),
            };
            let _admitted = self.admission.enter().await?;
            let done = sqlx::query(
                "UPDATE waitlist SET status = $1, offered_appointment_id = CASE WHEN $1 = 'booked' THEN offered_appointment_id END,
                        updated_at = $2
                 WHERE id = $3 AND status = 'offered'",
            )
            .bind(to)
            .bind(ts(now))
            .bind(entry)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            if freed && done.rows_affected() == 1 {
                lapsed.push(LapsedOffer { doctor_id: a.doctor_id, start: a.start, end: a.end, mode: a.mode });
            }
        }
        Ok(lapsed)
    }

    async fn set_calendar_token(&self, doctor: DoctorId, token_hash: &str, now: Timestamp) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        sqlx::query(
            "INSERT INTO calendar_feeds (doctor_id, token_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (doctor_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
        )
        .bind(doctor.0)
        .bind(token_hash)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn revoke_calendar_token(&self, doctor: DoctorId) -> Result<bool> {
        let _admitted = self.admission.enter().await?;
        let done = sqlx::query("DELETE FROM calendar_feeds WHERE doctor_id = $1")
            .bind(doctor.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn calendar_token_matches(&self, doctor: DoctorId, token_hash: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM calendar_feeds WHERE doctor_id = $1 AND token_hash = $2")
            .bind(doctor.0)
            .bind(token_hash)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n == 1)
    }
}
