//! [`RegionStore`] on PostgreSQL: replicas of other regions' directories and
//! busy time, and bookings forwarded to the region that owns the doctor.

use super::directory::{bind_clinic, bind_doctor, INSERT_CLINIC, INSERT_DOCTOR};
use super::rows::*;
use super::{accounts, appointments, directory, map_err, retrying, PgStore};
use crate::columns::{APPT_COLS, FORWARD_COLS};
use crate::*;
use sqlx::PgPool;
use std::collections::HashSet;
use uuid::Uuid;

/// Other regions' busy time for these doctors, as last replicated.
pub(super) async fn replica_busy(
    pool: &PgPool,
    doctors: &[DoctorId],
    window: Interval,
) -> Result<Vec<(DoctorId, Interval)>> {
    let ids: Vec<Uuid> = doctors.iter().map(|d| d.0).collect();
    let rows = sqlx::query(
        "SELECT doctor_id, start_at, end_at FROM replica_busy WHERE doctor_id = ANY($1) AND start_at < $2 AND end_at > $3",
    )
    .bind(ids)
    .bind(ts(window.end))
    .bind(ts(window.start))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(busy_row).collect()
}

impl PgStore {
    /// Forwards matching `filter`, which names `key` as `$2` when there is one.
    async fn forwards_where(&self, filter: &str, key: Option<Uuid>, limit: u32) -> Result<Vec<ForwardRecord>> {
        let sql = format!("SELECT {FORWARD_COLS} FROM forwards WHERE {filter} ORDER BY created_at, id LIMIT $1");
        let mut query = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(key) = key {
            query = query.bind(key);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(forward_row).collect()
    }

    async fn apply_once(&self, snap: &RegionSnapshot, now: Timestamp) -> Result<()> {
        let (mut tx, _admitted) = self.write_tx().await?;
        for c in snap.clinics.iter().filter(|c| c.region == snap.region) {
            let sql = format!(
                "{INSERT_CLINIC}
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, address = excluded.address,
                     city = excluded.city, district = excluded.district, postal_code = excluded.postal_code,
                     country = excluded.country, phone = excluded.phone,
                     latitude = excluded.latitude, longitude = excluded.longitude, time_zone = excluded.time_zone,
                     policy = excluded.policy, cancel_cutoff_minutes = excluded.cancel_cutoff_minutes,
                     noshow_limit = excluded.noshow_limit, noshow_period_days = excluded.noshow_period_days
                 WHERE clinics.region = excluded.region"
            );
            bind_clinic(sqlx::query(&sql), c).execute(&mut *tx).await.map_err(map_err)?;
        }
        let owned: HashSet<ClinicId> = snap.clinics.iter().filter(|c| c.region == snap.region).map(|c| c.id).collect();
        let mut replicated = Vec::new();
        for d in snap.doctors.iter().filter(|d| owned.contains(&d.clinic_id)) {
            // Accounts stay in their region: a replicated doctor has no user here.
            let d = DoctorRecord { user_id: None, ..d.clone() };
            let sql = format!(
                "{INSERT_DOCTOR}
                 ON CONFLICT (id) DO UPDATE SET clinic_id = excluded.clinic_id, name = excluded.name,
                     specialties = excluded.specialties, languages = excluded.languages, modes = excluded.modes,
                     licence_number = excluded.licence_number, bio = excluded.bio, verification = excluded.verification,
                     verification_reason = excluded.verification_reason, membership = excluded.membership,
                     schedule = excluded.schedule, video_room_url = excluded.video_room_url,
                     visit_types = excluded.visit_types, version = excluded.version, updated_at = excluded.updated_at"
            );
            bind_doctor(sqlx::query(&sql), &d).execute(&mut *tx).await.map_err(map_err)?;
            replicated.push(d.id.0);
        }
        if snap.full {
            sqlx::query("DELETE FROM replica_busy WHERE region = $1")
                .bind(&snap.region)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        } else {
            sqlx::query("DELETE FROM replica_busy WHERE region = $1 AND doctor_id = ANY($2)")
                .bind(&snap.region)
                .bind(&replicated)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let replicated: HashSet<Uuid> = replicated.into_iter().collect();
        let busy: Vec<_> = snap.busy.iter().filter(|(d, _)| replicated.contains(&d.0)).collect();
        sqlx::query(
            "INSERT INTO replica_busy (region, doctor_id, start_at, end_at)
             SELECT $1, * FROM unnest($2::uuid[], $3::timestamptz[], $4::timestamptz[])",
        )
        .bind(&snap.region)
        .bind(busy.iter().map(|(d, _)| d.0).collect::<Vec<_>>())
        .bind(busy.iter().map(|(_, iv)| ts(iv.start)).collect::<Vec<_>>())
        .bind(busy.iter().map(|(_, iv)| ts(iv.end)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // The home's word on what was forwarded from here: a pending one it
        // has booked is settled by the forwarder; here its current state is kept.
        for a in &snap.forwarded {
            let detail = serde_json::json!({
                "appointment": {
                    "id": a.id, "status": a.status.as_str(), "start": a.start.to_string(), "end": a.end.to_string(),
                    "version": a.version, "cancel_reason": a.cancel_reason,
                }
            });
            sqlx::query(
                "UPDATE forwards SET detail = $1, start_at = $2, end_at = $3 WHERE id = $4 AND status = 'booked'",
            )
            .bind(detail)
            .bind(ts(a.start))
            .bind(ts(a.end))
            .bind(a.id.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        sqlx::query(
            "INSERT INTO replicas (region, as_of, synced_at) VALUES ($1, $2, $3)
             ON CONFLICT (region) DO UPDATE SET as_of = excluded.as_of, synced_at = excluded.synced_at",
        )
        .bind(&snap.region)
        .bind(ts(snap.as_of))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await
    }
}

#[async_trait]
impl RegionStore for PgStore {
    async fn region_snapshot(
        &self,
        region: &str,
        peer: &str,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<RegionSnapshot> {
        // One snapshot: every read of it in one REPEATABLE READ transaction.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let (clinics, doctors) = match since {
            None => {
                let clinics = directory::list_clinics(&mut *tx).await?;
                crate::regions::own_part(region, clinics, directory::list_doctors(&mut *tx, None, None).await?)
            }
            // Incremental: only the changed doctors, and their clinics.
            Some(t) => {
                let changed = directory::doctors_changed_since(&mut *tx, t, now).await?;
                crate::regions::own_part(region, Vec::new(), directory::doctors_with_clinics(&mut *tx, &changed).await?)
            }
        };
        let doctor_ids: Vec<DoctorId> = doctors.iter().map(|d| d.id).collect();
        let recent = now - jiff::SignedDuration::from_hours(1);
        let window = Interval { start: recent, end: now + jiff::SignedDuration::from_hours(24 * 400) };
        // Only the home's own appointments and time off (never its replicas).
        let busy = appointments::own_busy(&mut *tx, &doctor_ids, window, now).await?;
        let rows = sqlx::query(&format!(
            "SELECT {APPT_COLS} FROM appointments a WHERE a.origin_region = $1 AND a.end_at > $2 ORDER BY a.start_at"
        ))
        .bind(peer)
        .bind(ts(now - jiff::SignedDuration::from_hours(24)))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let forwarded = rows.iter().map(appointment_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await.map_err(map_err)?;
        Ok(RegionSnapshot {
            region: region.to_string(),
            as_of: now,
            full: since.is_none(),
            clinics,
            doctors,
            busy,
            forwarded,
        })
    }

    async fn apply_replica(&self, own_region: &str, snap: &RegionSnapshot, now: Timestamp) -> Result<()> {
        if snap.region == own_region {
            return Ok(());
        }
        retrying(|| self.apply_once(snap, now)).await
    }

    async fn replicas(&self) -> Result<Vec<ReplicaState>> {
        let rows = sqlx::query("SELECT region, as_of, synced_at FROM replicas ORDER BY region")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(ReplicaState {
                    region: get(r, "region")?,
                    as_of: time_of(r, "as_of")?,
                    synced_at: time_of(r, "synced_at")?,
                })
            })
            .collect()
    }

    async fn ensure_remote_user(&self, u: &UserRecord) -> Result<()> {
        if self.user_by_id(u.id).await?.is_some() {
            return Ok(());
        }
        let _admitted = self.admission.enter().await?;
        accounts::insert_user_if_new(&self.pool, u).await
    }

    async fn create_forward(&self, f: &ForwardRecord) -> Result<ForwardRecord> {
        // The check for an earlier request with the key and the insert, in one write.
        let (mut tx, _admitted) = self.write_tx().await?;
        if let Some(key) = &f.idempotency_key {
            let row = sqlx::query(&format!(
                "SELECT {FORWARD_COLS} FROM forwards WHERE patient_id = $1 AND idempotency_key = $2"
            ))
            .bind(f.patient_id.0)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if let Some(existing) = row.as_ref().map(forward_row).transpose()? {
                if existing.fingerprint != f.fingerprint {
                    return Err(StoreError::IdempotencyMismatch);
                }
                return Ok(existing);
            }
        }
        sqlx::query(
            "INSERT INTO forwards (id, region, patient_id, doctor_id, start_at, end_at, mode, reason, idempotency_key,
                                   fingerprint, status, detail, attempts, created_at, resolved_at, visit)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $15)",
        )
        .bind(f.id.0)
        .bind(&f.region)
        .bind(f.patient_id.0)
        .bind(f.doctor_id.0)
        .bind(ts(f.start))
        .bind(ts(f.end))
        .bind(f.mode.as_str())
        .bind(&f.reason)
        .bind(&f.idempotency_key)
        .bind(&f.fingerprint)
        .bind(f.status.as_str())
        .bind(&f.detail)
        .bind(ts(f.created_at))
        .bind(f.resolved_at.map(ts))
        .bind(f.visit.as_ref().map(sqlx::types::Json))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(f.clone())
    }

    async fn forward(&self, id: AppointmentId) -> Result<Option<ForwardRecord>> {
        Ok(self.forwards_where("id = $2", Some(id.0), 1).await?.into_iter().next())
    }

    async fn forwards_of_patient(&self, patient: UserId) -> Result<Vec<ForwardRecord>> {
        self.forwards_where("patient_id = $2", Some(patient.0), 500).await
    }

    async fn pending_forwards(&self, limit: u32) -> Result<Vec<ForwardRecord>> {
        self.forwards_where("status = 'pending'", None, limit).await
    }

    async fn count_forward_attempt(&self, id: AppointmentId) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        sqlx::query("UPDATE forwards SET attempts = attempts + 1 WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn record_forward_state(&self, id: AppointmentId, detail: &serde_json::Value) -> Result<()> {
        let _admitted = self.admission.enter().await?;
        sqlx::query("UPDATE forwards SET detail = $1 WHERE id = $2 AND status = 'booked'")
            .bind(detail)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn resolve_forward(
        &self,
        id: AppointmentId,
        status: ForwardStatus,
        detail: &serde_json::Value,
        event: Option<(&str, serde_json::Value)>,
        now: Timestamp,
    ) -> Result<bool> {
        let (mut tx, _admitted) = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE forwards SET status = $1, detail = $2, resolved_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some((topic, mut payload)) = event {
            let event_id = Uuid::now_v7();
            payload["event_id"] = event_id.to_string().into();
            sqlx::query("INSERT INTO outbox (event_id, topic, payload, created_at) VALUES ($1, $2, $3, $4)")
                .bind(event_id)
                .bind(topic)
                .bind(payload)
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        self.commit(tx).await?;
        Ok(true)
    }

    async fn forwarding_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        super::notifications::backlog(&self.pool, "forwards", "status = 'pending'").await
    }
}
