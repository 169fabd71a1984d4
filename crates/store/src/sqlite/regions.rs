//! [`RegionStore`] on SQLite: replicas of other regions' directories and busy
//! time, and bookings forwarded to the region that owns the doctor.

use super::rows::*;
use super::values::*;
use super::{accounts, appointments, directory, SqliteStore};
use crate::columns::*;
use crate::*;
use rusqlite::{params, params_from_iter, types::Value, Connection};
use std::collections::HashSet;
use uuid::Uuid;

/// Other regions' busy time for these doctors, as last replicated.
pub(super) fn replica_busy(
    c: &Connection,
    doctors: &[DoctorId],
    window: Interval,
) -> Result<Vec<(DoctorId, Interval)>> {
    let mut out = Vec::new();
    for chunk in doctors.chunks(400) {
        let sql = format!(
            "SELECT doctor_id, start_at, end_at FROM replica_busy
             WHERE doctor_id IN ({}) AND start_at < ? AND end_at > ?",
            placeholders(chunk.len())
        );
        let mut values: Vec<Value> = chunk.iter().map(|d| Value::Text(d.to_string())).collect();
        values.extend([Value::Integer(secs(window.end)), Value::Integer(secs(window.start))]);
        out.extend(all_once(c, &sql, params_from_iter(values), busy_row)?);
    }
    Ok(out)
}

fn forwards_where(c: &Connection, filter: &str, key: String, limit: u32) -> Result<Vec<ForwardRecord>> {
    all(
        c,
        &format!("SELECT {FORWARD_COLS} FROM forwards WHERE {filter} ORDER BY created_at, id LIMIT ?2"),
        params![key, i64::from(limit)],
        forward_row,
    )
}

/// Applies another region's snapshot: its clinics and doctors (never ours),
/// their busy time, and its word on what was forwarded from here.
fn apply(c: &Connection, snap: &RegionSnapshot, now: Timestamp) -> Result<()> {
    for clinic in snap.clinics.iter().filter(|c| c.region == snap.region) {
        exec(
            c,
            "INSERT INTO clinics (id, name, address, city, district, postal_code, country, phone, latitude, longitude,
                                  time_zone, region, policy, created_at, cancel_cutoff_minutes, noshow_limit,
                                  noshow_period_days)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, address = excluded.address,
                 city = excluded.city, district = excluded.district, postal_code = excluded.postal_code,
                 country = excluded.country, phone = excluded.phone,
                 latitude = excluded.latitude, longitude = excluded.longitude, time_zone = excluded.time_zone,
                 policy = excluded.policy, cancel_cutoff_minutes = excluded.cancel_cutoff_minutes,
                 noshow_limit = excluded.noshow_limit, noshow_period_days = excluded.noshow_period_days
             WHERE clinics.region = excluded.region",
            params_from_iter(directory::clinic_values(clinic)),
        )?;
    }
    let owned: HashSet<ClinicId> = snap.clinics.iter().filter(|c| c.region == snap.region).map(|c| c.id).collect();
    let mut doctors = Vec::new();
    for d in snap.doctors.iter().filter(|d| owned.contains(&d.clinic_id)) {
        // Accounts stay in their region: a replicated doctor has no user here.
        let d = DoctorRecord { user_id: None, ..d.clone() };
        exec(
            c,
            "INSERT INTO doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                                  verification, verification_reason, membership, schedule, video_room_url,
                                  visit_types, version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET clinic_id = excluded.clinic_id, name = excluded.name,
                 specialties = excluded.specialties, languages = excluded.languages, modes = excluded.modes,
                 licence_number = excluded.licence_number, bio = excluded.bio, verification = excluded.verification,
                 verification_reason = excluded.verification_reason, membership = excluded.membership,
                 schedule = excluded.schedule, video_room_url = excluded.video_room_url,
                 visit_types = excluded.visit_types, version = excluded.version, updated_at = excluded.updated_at",
            params_from_iter(directory::doctor_values(&d)),
        )?;
        directory::write_tags(c, &d)?;
        doctors.push(d);
    }
    if snap.full {
        exec(c, "DELETE FROM replica_busy WHERE region = ?", [&snap.region])?;
    } else {
        for d in &doctors {
            exec(
                c,
                "DELETE FROM replica_busy WHERE region = ? AND doctor_id = ?",
                params![snap.region, d.id.to_string()],
            )?;
        }
    }
    let replicated: HashSet<DoctorId> = doctors.iter().map(|d| d.id).collect();
    for (doctor, iv) in snap.busy.iter().filter(|(d, _)| replicated.contains(d)) {
        exec(
            c,
            "INSERT INTO replica_busy (region, doctor_id, start_at, end_at) VALUES (?, ?, ?, ?)",
            params![snap.region, doctor.to_string(), secs(iv.start), secs(iv.end)],
        )?;
    }
    // The home's word on what was forwarded from here: a pending one it
    // has booked is settled by the forwarder; here its current state is kept.
    for a in &snap.forwarded {
        let detail = serde_json::json!({
            "appointment": {
                "id": a.id, "status": a.status.as_str(), "start": a.start.to_string(), "end": a.end.to_string(),
                "version": a.version, "cancel_reason": a.cancel_reason,
            }
        });
        exec(
            c,
            "UPDATE forwards SET detail = ?, start_at = ?, end_at = ? WHERE id = ? AND status = 'booked'",
            params![detail.to_string(), secs(a.start), secs(a.end), a.id.to_string()],
        )?;
    }
    exec(
        c,
        "INSERT INTO replicas (region, as_of, synced_at) VALUES (?, ?, ?)
         ON CONFLICT (region) DO UPDATE SET as_of = excluded.as_of, synced_at = excluded.synced_at",
        params![snap.region, snap.as_of.to_string(), now.to_string()],
    )?;
    Ok(())
}

/// What this region tells `peer`: its own clinics and doctors (all of them,
/// or those changed since `since`), their busy time, and the appointments
/// booked here on `peer`'s behalf. One read, so one snapshot.
fn snapshot(
    c: &Connection,
    region: &str,
    peer: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<RegionSnapshot> {
    let (clinics, doctors) = match since {
        None => crate::regions::own_part(region, directory::list_clinics(c)?, directory::list_doctors(c, None, None)?),
        // Incremental: only the changed doctors, and their clinics.
        Some(t) => {
            let changed = directory::doctors_changed_since(c, t, now)?;
            crate::regions::own_part(region, Vec::new(), directory::doctors_with_clinics(c, &changed)?)
        }
    };
    let doctor_ids: Vec<DoctorId> = doctors.iter().map(|d| d.id).collect();
    let recent = now - jiff::SignedDuration::from_hours(1);
    let window = Interval { start: recent, end: now + jiff::SignedDuration::from_hours(24 * 400) };
    // Only the home's own appointments and time off (never its replicas).
    let busy = appointments::own_busy(c, &doctor_ids, window, now)?;
    let forwarded = all(
        c,
        &format!(
            "SELECT {APPT_COLS} FROM appointments a WHERE a.origin_region = ? AND a.end_at > ? ORDER BY a.start_at"
        ),
        params![peer, secs(now - jiff::SignedDuration::from_hours(24))],
        appointment_row,
    )?;
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

fn create_forward(c: &Connection, f: &ForwardRecord) -> Result<ForwardRecord> {
    // The check for an earlier request with the key and the insert, in one write.
    if let Some(key) = &f.idempotency_key {
        let existing = one(
            c,
            &format!("SELECT {FORWARD_COLS} FROM forwards WHERE patient_id = ? AND idempotency_key = ?"),
            params![f.patient_id.to_string(), key],
            forward_row,
        )?;
        if let Some(existing) = existing {
            if existing.fingerprint != f.fingerprint {
                return Err(StoreError::IdempotencyMismatch);
            }
            return Ok(existing);
        }
    }
    exec(
        c,
        "INSERT INTO forwards (id, region, patient_id, doctor_id, start_at, end_at, mode, reason, idempotency_key,
                               fingerprint, status, detail, attempts, created_at, resolved_at, visit)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        params![
            f.id.to_string(),
            f.region,
            f.patient_id.to_string(),
            f.doctor_id.to_string(),
            secs(f.start),
            secs(f.end),
            f.mode.as_str(),
            f.reason,
            f.idempotency_key,
            f.fingerprint,
            f.status.as_str(),
            f.detail.as_ref().map(|d| d.to_string()),
            f.created_at.to_string(),
            f.resolved_at.map(|t| t.to_string()),
            f.visit.as_ref().and_then(|v| serde_json::to_string(v).ok())
        ],
    )?;
    Ok(f.clone())
}

fn resolve(
    c: &Connection,
    id: AppointmentId,
    status: ForwardStatus,
    detail: &serde_json::Value,
    event: Option<(&str, serde_json::Value)>,
    now: Timestamp,
) -> Result<bool> {
    let done = exec(
        c,
        "UPDATE forwards SET status = ?, detail = ?, resolved_at = ? WHERE id = ? AND status = 'pending'",
        params![status.as_str(), detail.to_string(), now.to_string(), id.to_string()],
    )?;
    if done != 1 {
        return Ok(false);
    }
    if let Some((topic, mut payload)) = event {
        let event_id = Uuid::now_v7();
        payload["event_id"] = event_id.to_string().into();
        super::notifications::insert_outbox(c, event_id, topic, &payload, now)?;
    }
    Ok(true)
}

#[async_trait]
impl RegionStore for SqliteStore {
    async fn region_snapshot(
        &self,
        region: &str,
        peer: &str,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<RegionSnapshot> {
        let (region, peer) = (region.to_string(), peer.to_string());
        self.read(move |c| snapshot(c, &region, &peer, since, now)).await
    }

    async fn apply_replica(&self, own_region: &str, snap: &RegionSnapshot, now: Timestamp) -> Result<()> {
        if snap.region == own_region {
            return Ok(());
        }
        let snap = snap.clone();
        self.write(move |c| apply(c, &snap, now)).await
    }

    async fn replicas(&self) -> Result<Vec<ReplicaState>> {
        self.read(|c| {
            all(c, "SELECT region, as_of, synced_at FROM replicas ORDER BY region", [], |r| {
                Ok(ReplicaState {
                    region: get(r, "region")?,
                    as_of: time_of(r, "as_of")?,
                    synced_at: time_of(r, "synced_at")?,
                })
            })
        })
        .await
    }

    async fn ensure_remote_user(&self, u: &UserRecord) -> Result<()> {
        if self.user_by_id(u.id).await?.is_some() {
            return Ok(());
        }
        let u = u.clone();
        self.write(move |c| accounts::insert_user_if_new(c, &u)).await
    }

    async fn create_forward(&self, f: &ForwardRecord) -> Result<ForwardRecord> {
        let f = f.clone();
        self.write(move |c| create_forward(c, &f)).await
    }

    async fn forward(&self, id: AppointmentId) -> Result<Option<ForwardRecord>> {
        Ok(self.read(move |c| forwards_where(c, "id = ?1", id.to_string(), 1)).await?.into_iter().next())
    }

    async fn forwards_of_patient(&self, patient: UserId) -> Result<Vec<ForwardRecord>> {
        self.read(move |c| forwards_where(c, "patient_id = ?1", patient.to_string(), 500)).await
    }

    async fn pending_forwards(&self, limit: u32) -> Result<Vec<ForwardRecord>> {
        self.read(move |c| forwards_where(c, "status = ?1", "pending".into(), limit)).await
    }

    async fn count_forward_attempt(&self, id: AppointmentId) -> Result<()> {
        self.write(move |c| {
            exec(c, "UPDATE forwards SET attempts = attempts + 1 WHERE id = ?", [id.to_string()]).map(drop)
        })
        .await
    }

    async fn record_forward_state(&self, id: AppointmentId, detail: &serde_json::Value) -> Result<()> {
        let detail = detail.to_string();
        self.write(move |c| {
            exec(
                c,
                "UPDATE forwards SET detail = ? WHERE id = ? AND status = 'booked'",
                params![detail, id.to_string()],
            )
            .map(drop)
        })
        .await
    }

    async fn resolve_forward(
        &self,
        id: AppointmentId,
        status: ForwardStatus,
        detail: &serde_json::Value,
        event: Option<(&str, serde_json::Value)>,
        now: Timestamp,
    ) -> Result<bool> {
        let detail = detail.clone();
        let event = event.map(|(topic, payload)| (topic.to_string(), payload));
        self.write(move |c| resolve(c, id, status, &detail, event.as_ref().map(|(t, p)| (t.as_str(), p.clone())), now))
            .await
    }

    async fn forwarding_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        self.read(|c| super::notifications::backlog(c, "forwards", "status = 'pending'")).await
    }
}
