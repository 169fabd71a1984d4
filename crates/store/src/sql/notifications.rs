//! [`NotifyStore`] over both SQL backends.

use super::*;
use jiff::SignedDuration;

fn delivery_row(r: &AnyRow) -> Result<DeliveryRecord> {
    let channel = match get::<String>(r, "channel")?.as_str() {
        "email" => Channel::Email,
        "webhook" => Channel::Webhook,
        other => return Err(StoreError::Internal(format!("bad channel {other:?}"))),
    };
    let status = get::<String>(r, "status")?;
    let appointment: Option<String> = get(r, "appointment_id")?;
    let clinic: Option<String> = get(r, "clinic_id")?;
    let delivered: Option<String> = get(r, "delivered_at")?;
    let last_status: Option<i64> = get(r, "last_status")?;
    Ok(DeliveryRecord {
        id: get(r, "id")?,
        dedup_key: get(r, "dedup_key")?,
        channel,
        recipient: get(r, "recipient")?,
        kind: get(r, "kind")?,
        event_id: uuid(&get::<String>(r, "event_id")?)?,
        appointment_id: appointment.map(|a| uuid(&a).map(AppointmentId)).transpose()?,
        clinic_id: clinic.map(|c| uuid(&c).map(ClinicId)).transpose()?,
        payload: json(&get::<String>(r, "payload")?)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("bad delivery status {status:?}")))?,
        attempts: u32::try_from(get::<i64>(r, "attempts")?).unwrap_or(0),
        next_attempt_at: from_secs(get(r, "next_attempt_at")?)?,
        last_error: get(r, "last_error")?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        created_at: text_ts(&get::<String>(r, "created_at")?)?,
        delivered_at: delivered.as_deref().map(text_ts).transpose()?,
    })
}

fn notification_row(r: &AnyRow) -> Result<NotificationRecord> {
    let appointment: Option<String> = get(r, "appointment_id")?;
    let read: Option<String> = get(r, "read_at")?;
    Ok(NotificationRecord {
        id: uuid(&get::<String>(r, "id")?)?,
        user_id: UserId(uuid(&get::<String>(r, "user_id")?)?),
        kind: get(r, "kind")?,
        title: get(r, "title")?,
        body: get(r, "body")?,
        appointment_id: appointment.map(|a| uuid(&a).map(AppointmentId)).transpose()?,
        link: get(r, "link")?,
        created_at: text_ts(&get::<String>(r, "created_at")?)?,
        read_at: read.as_deref().map(text_ts).transpose()?,
    })
}

fn webhook_row(r: &AnyRow) -> Result<WebhookRecord> {
    Ok(WebhookRecord {
        id: uuid(&get::<String>(r, "id")?)?,
        clinic_id: ClinicId(uuid(&get::<String>(r, "clinic_id")?)?),
        url: get(r, "url")?,
        secret: get(r, "secret")?,
        events: json(&get::<String>(r, "events")?)?,
        active: get::<i64>(r, "active")? != 0,
        created_at: text_ts(&get::<String>(r, "created_at")?)?,
    })
}

fn waitlist_row(r: &AnyRow) -> Result<WaitlistRecord> {
    let internal = |e: medislot_domain::Invalid| StoreError::Internal(e.to_string());
    let status = get::<String>(r, "w_status")?;
    let not_before: Option<i64> = get(r, "w_not_before")?;
    let not_after: Option<i64> = get(r, "w_not_after")?;
    let mode: Option<String> = get(r, "w_mode")?;
    let offered: Option<String> = get(r, "w_offered")?;
    Ok(WaitlistRecord {
        id: uuid(&get::<String>(r, "w_id")?)?,
        doctor_id: DoctorId(uuid(&get::<String>(r, "w_doctor_id")?)?),
        patient_id: UserId(uuid(&get::<String>(r, "w_patient_id")?)?),
        not_before: not_before.map(from_secs).transpose()?,
        not_after: not_after.map(from_secs).transpose()?,
        mode: mode.map(|m| Mode::parse("mode", &m)).transpose().map_err(internal)?,
        status: WaitlistStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("bad waitlist status {status:?}")))?,
        offered_appointment_id: offered.map(|a| uuid(&a).map(AppointmentId)).transpose()?,
        created_at: text_ts(&get::<String>(r, "w_created_at")?)?,
    })
}

impl SqlStore {
    async fn insert_delivery(&self, tx: &mut WriteTx, d: &NewDelivery, now: Timestamp) -> Result<u64> {
        let done = sqlx::query(&self.d.sql(
            "INSERT INTO deliveries (dedup_key, channel, recipient, kind, event_id, appointment_id, clinic_id, payload,
                                     status, attempts, next_attempt_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)
             ON CONFLICT (dedup_key) DO NOTHING",
        ))
        .bind(&d.dedup_key)
        .bind(d.channel.as_str())
        .bind(&d.recipient)
        .bind(&d.kind)
        .bind(d.event_id.to_string())
        .bind(d.appointment_id.map(|a| a.to_string()))
        .bind(d.clinic_id.map(|c| c.to_string()))
        .bind(d.payload.to_string())
        .bind(secs(now))
        .bind(now.to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    /// Waitlist entries matching `filter` (one `?`, bound to `key`), first come first.
    async fn waitlist_where(&self, filter: &str, key: String) -> Result<Vec<WaitlistRecord>> {
        let sql = self.d.sql(&format!("SELECT {WAITLIST_COLS} FROM waitlist w WHERE {filter} ORDER BY w.id"));
        let rows = sqlx::query(&sql).bind(key).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(waitlist_row).collect()
    }

    async fn dispatch_once(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        notifications: &[NewNotification],
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let lock = "SELECT id FROM outbox WHERE id = ? AND delivered_at IS NULL FOR UPDATE SKIP LOCKED";
        let open = sqlx::query(&self.d.sql(lock)).bind(outbox_id).fetch_optional(&mut *tx).await.map_err(map_err)?;
        if open.is_none() {
            return Ok(false);
        }
        for d in deliveries {
            self.insert_delivery(&mut tx, d, now).await?;
        }
        for n in notifications {
            sqlx::query(&self.d.sql(
                "INSERT INTO notifications (id, user_id, dedup_key, kind, title, body, appointment_id, link, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (dedup_key) DO NOTHING",
            ))
            .bind(Uuid::now_v7().to_string())
            .bind(n.user_id.to_string())
            .bind(&n.dedup_key)
            .bind(&n.kind)
            .bind(&n.title)
            .bind(&n.body)
            .bind(n.appointment_id.map(|a| a.to_string()))
            .bind(&n.link)
            .bind(now.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        sqlx::query(&self.d.sql("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?"))
            .bind(now.to_string())
            .bind(outbox_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn offer_once(&self, o: &WaitlistOffer) -> Result<Option<(WaitlistRecord, AppointmentRecord)>> {
        let mut tx = self.write_tx().await?;
        self.lock(&mut tx, &format!("doctor:{}", o.doctor_id)).await?;
        let expired = self.expire_holds(&mut tx, o.doctor_id, o.now).await?;
        let start = secs(o.start);
        let row = sqlx::query(&self.d.sql(&format!(
            "SELECT {WAITLIST_COLS} FROM waitlist w
             WHERE w.doctor_id = ? AND w.status = 'waiting'
               AND (w.not_before IS NULL OR w.not_before <= ?)
               AND (w.not_after IS NULL OR ? < w.not_after)
               AND (w.mode IS NULL OR w.mode = ?)
               AND NOT EXISTS (SELECT 1 FROM waitlist_offers x WHERE x.entry_id = w.id AND x.start_at = ?)
             ORDER BY w.id
             LIMIT 1"
        )))
        .bind(o.doctor_id.to_string())
        .bind(start)
        .bind(start)
        .bind(o.mode.as_str())
        .bind(start)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(entry) = row.as_ref().map(waitlist_row).transpose()? else {
            self.commit(tx).await?;
            self.count_expired(expired);
            return Ok(None);
        };
        let id = AppointmentId::new();
        let now = o.now.to_string();
        let inserted = sqlx::query(&self.d.sql(
            "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                       origin_region, hold_expires_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, 'Offered from the waitlist', 'held', 1, ?, ?, ?, ?)",
        ))
        .bind(id.to_string())
        .bind(o.doctor_id.to_string())
        .bind(entry.patient_id.to_string())
        .bind(start)
        .bind(secs(o.end))
        .bind(o.mode.as_str())
        .bind(&o.origin_region)
        .bind(secs(o.hold_until))
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(map_err);
        match inserted {
            Ok(_) => {}
            // Someone else has the slot: nothing to offer (the transaction rolls back).
            Err(StoreError::SlotTaken) => return Ok(None),
            Err(e) => return Err(e),
        }
        let after = self.appointment_in(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let what =
            Event { actor: None, at: o.now, topic: "waitlist.offered", detail: Some("offered from the waitlist") };
        self.record_change(&mut tx, None, &after, what).await?;
        sqlx::query(
            &self.d.sql(
                "INSERT INTO waitlist_offers (entry_id, start_at, appointment_id, created_at) VALUES (?, ?, ?, ?)",
            ),
        )
        .bind(entry.id.to_string())
        .bind(start)
        .bind(id.to_string())
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            &self
                .d
                .sql("UPDATE waitlist SET status = 'offered', offered_appointment_id = ?, updated_at = ? WHERE id = ?"),
        )
        .bind(id.to_string())
        .bind(&now)
        .bind(entry.id.to_string())
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
impl NotifyStore for SqlStore {
    async fn outbox_undispatched(&self, limit: u32) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query(&self.d.sql(
            "SELECT id, event_id, topic, payload, created_at FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?",
        ))
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
        let mut tx = self.write_tx().await?;
        let mut n = 0;
        for d in deliveries {
            n += self.insert_delivery(&mut tx, d, now).await?;
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
        let skip_locked = "FOR UPDATE SKIP LOCKED";
        // The pick is a CTE, evaluated once: PostgreSQL may run an `IN (subquery)`
        // once per outer row, and with SKIP LOCKED each run can pick other rows.
        let sql = format!(
            "WITH picked AS (SELECT id FROM deliveries
                             WHERE status = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)
                             ORDER BY id LIMIT ? {skip_locked})
             UPDATE deliveries SET claimed_by = ?, claimed_until = ?
             WHERE id IN (SELECT id FROM picked)
               AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)
             RETURNING {DELIVERY_COLS}"
        );
        let n = secs(now);
        let rows = sqlx::query(&self.d.sql(&sql))
            .bind(n)
            .bind(n)
            .bind(i64::from(limit))
            .bind(worker)
            .bind(secs(now + lease))
            .bind(n)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut out = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
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
        let sql = self.d.sql(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, last_status = ?, delivered_at = ?,
                    attempts = attempts + ?, claimed_by = NULL, claimed_until = NULL
             WHERE id = ? AND claimed_by = ? AND status = 'pending'",
        );
        let write = sqlx::query(&sql)
            .bind(status)
            .bind(secs(next))
            .bind(error)
            .bind(http.map(i64::from))
            .bind(delivered)
            .bind(i64::from(!matches!(outcome, DeliveryOutcome::Skipped { .. })))
            .bind(id)
            .bind(worker);
        self.execute_write(write).await?;
        Ok(())
    }

    async fn deliveries(&self, recipient: Option<&str>, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let filter = if recipient.is_some() { "WHERE recipient = ?" } else { "" };
        let sql = self.d.sql(&format!("SELECT {DELIVERY_COLS} FROM deliveries {filter} ORDER BY id DESC LIMIT ?"));
        let mut q = sqlx::query(&sql);
        if let Some(r) = recipient {
            q = q.bind(r);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(delivery_row).collect()
    }

    async fn delivery_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        let row =
            sqlx::query("SELECT count(*) AS n, min(created_at) AS oldest FROM deliveries WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        let n: i64 = get(&row, "n")?;
        let oldest: Option<String> = get(&row, "oldest")?;
        Ok((u64::try_from(n).unwrap_or(0), oldest.as_deref().map(text_ts).transpose()?))
    }

    async fn reminders_due(&self, now: Timestamp, offsets: &[SignedDuration]) -> Result<Vec<ReminderDue>> {
        let mut out = Vec::new();
        for &offset in offsets {
            // Due: the reminder time (start - offset) has come and the start has not.
            let rows = sqlx::query(&self.d.sql(&format!(
                "SELECT {APPT_COLS}, u.email AS p_email FROM appointments a JOIN users u ON u.id = a.patient_id
                 WHERE a.status = 'booked' AND a.start_at > ? AND a.start_at <= ?
                   AND NOT EXISTS (SELECT 1 FROM deliveries x
                                   WHERE x.dedup_key = 'reminder:' || a.id || ':' || a.start_at || ':' || ?)
                 ORDER BY a.start_at"
            )))
            .bind(secs(now))
            .bind(secs(now + offset))
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
        let rows = sqlx::query(&self.d.sql(&format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
        )))
        .bind(user.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(notification_row).collect()
    }

    async fn mark_notification_read(&self, user: UserId, id: Uuid, now: Timestamp) -> Result<bool> {
        let done = self
            .execute_write(
                sqlx::query(
                    &self.d.sql("UPDATE notifications SET read_at = COALESCE(read_at, ?) WHERE id = ? AND user_id = ?"),
                )
                .bind(now.to_string())
                .bind(id.to_string())
                .bind(user.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_webhook(&self, w: &WebhookRecord) -> Result<()> {
        let sql = self.d.sql(
            "INSERT INTO webhooks (id, clinic_id, url, secret, events, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        );
        let write = sqlx::query(&sql)
            .bind(w.id.to_string())
            .bind(w.clinic_id.to_string())
            .bind(&w.url)
            .bind(&w.secret)
            .bind(to_json(&w.events))
            .bind(i64::from(w.active))
            .bind(w.created_at.to_string());
        self.execute_write(write).await?;
        Ok(())
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>> {
        self.optional(&format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = ?"), id.to_string(), webhook_row).await
    }

    async fn webhooks_of(&self, clinic: ClinicId) -> Result<Vec<WebhookRecord>> {
        let rows = sqlx::query(
            &self.d.sql(&format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE clinic_id = ? ORDER BY created_at, id")),
        )
        .bind(clinic.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(webhook_row).collect()
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        // Kept for its delivery log; only switched off.
        let done = self
            .execute_write(
                sqlx::query(&self.d.sql("UPDATE webhooks SET active = 0 WHERE id = ? AND active = 1"))
                    .bind(id.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn join_waitlist(&self, e: &WaitlistRecord) -> Result<()> {
        let at = e.created_at.to_string();
        let sql = self.d.sql(
            "INSERT INTO waitlist (id, doctor_id, patient_id, not_before, not_after, mode, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
        );
        let write = sqlx::query(&sql)
            .bind(e.id.to_string())
            .bind(e.doctor_id.to_string())
            .bind(e.patient_id.to_string())
            .bind(e.not_before.map(secs))
            .bind(e.not_after.map(secs))
            .bind(e.mode.map(|m| m.as_str()))
            .bind(&at)
            .bind(&at);
        self.execute_write(write).await?;
        Ok(())
    }

    async fn waitlist_of_patient(&self, patient: UserId) -> Result<Vec<WaitlistRecord>> {
        self.waitlist_where("w.patient_id = ? AND w.status <> 'left'", patient.to_string()).await
    }

    async fn waitlist_of_doctor(&self, doctor: DoctorId) -> Result<Vec<WaitlistRecord>> {
        self.waitlist_where("w.doctor_id = ? AND w.status IN ('waiting', 'offered')", doctor.to_string()).await
    }

    async fn leave_waitlist(&self, id: Uuid, patient: UserId, now: Timestamp) -> Result<bool> {
        let done = self
            .execute_write(
                sqlx::query(&self.d.sql(
                    "UPDATE waitlist SET status = 'left', updated_at = ?
             WHERE id = ? AND patient_id = ? AND status IN ('waiting', 'offered')",
                ))
                .bind(now.to_string())
                .bind(id.to_string())
                .bind(patient.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn offer_from_waitlist(&self, offer: &WaitlistOffer) -> Result<Option<(WaitlistRecord, AppointmentRecord)>> {
        retrying(|| self.offer_once(offer)).await
    }

    async fn settle_waitlist(&self, now: Timestamp) -> Result<Vec<LapsedOffer>> {
        let rows = sqlx::query(&self.d.sql(&format!(
            "SELECT w.id AS entry_id, {APPT_COLS} FROM waitlist w JOIN appointments a ON a.id = w.offered_appointment_id
             WHERE w.status = 'offered'"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut lapsed = Vec::new();
        for r in &rows {
            let entry: String = get(r, "entry_id")?;
            let a = appointment_row(r)?;
            let (to, freed) = match a.status {
                AppointmentStatus::Held if a.hold_expires_at.is_some_and(|t| t <= now) => ("waiting", true),
                AppointmentStatus::Held | AppointmentStatus::Pending => continue,
                AppointmentStatus::Cancelled | AppointmentStatus::Conflict => ("waiting", true),
                _ => ("booked", false),
            };
            let sql = self.d.sql(
                "UPDATE waitlist SET status = ?, offered_appointment_id = CASE WHEN ? = 'booked' THEN offered_appointment_id END,
                        updated_at = ?
                 WHERE id = ? AND status = 'offered'",
            );
            let write = sqlx::query(&sql).bind(to).bind(to).bind(now.to_string()).bind(&entry);
            let done = self.execute_write(write).await?;
            if freed && done.rows_affected() == 1 {
                lapsed.push(LapsedOffer { doctor_id: a.doctor_id, start: a.start, end: a.end, mode: a.mode });
            }
        }
        Ok(lapsed)
    }

    async fn set_calendar_token(&self, doctor: DoctorId, token_hash: &str, now: Timestamp) -> Result<()> {
        self.execute_write(
            sqlx::query(&self.d.sql(
                "INSERT INTO calendar_feeds (doctor_id, token_hash, created_at) VALUES (?, ?, ?)
             ON CONFLICT (doctor_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
            ))
            .bind(doctor.to_string())
            .bind(token_hash)
            .bind(now.to_string()),
        )
        .await?;
        Ok(())
    }

    async fn revoke_calendar_token(&self, doctor: DoctorId) -> Result<bool> {
        let done = self
            .execute_write(
                sqlx::query(&self.d.sql("DELETE FROM calendar_feeds WHERE doctor_id = ?")).bind(doctor.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn calendar_token_matches(&self, doctor: DoctorId, token_hash: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            &self.d.sql("SELECT count(*) FROM calendar_feeds WHERE doctor_id = ? AND token_hash = ?"),
        )
        .bind(doctor.to_string())
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(n == 1)
    }
}
