//! Appointments: placing and changing them (each one closure on the writer's
//! thread, in its own savepoint), their audit trail and outbox rows, and the
//! reads over them.

use super::rows::*;
use super::values::*;
use crate::columns::*;
use crate::*;
use medislot_domain::AppointmentStatus;
use rusqlite::{params, params_from_iter, types::Value, Connection};
use uuid::Uuid;

/// Whether the write would surely end in "slot taken": a committed, live
/// appointment of someone else overlaps it, and neither an earlier use of
/// the request's Idempotency-Key (a replay) nor the patient's own holds
/// (a confirmation, or "too many holds") could decide otherwise. One
/// statement, so one snapshot.
pub(super) fn plainly_taken(c: &Connection, cmd: &PlaceAppointment) -> Result<bool> {
    if !matches!(cmd.status, AppointmentStatus::Booked | AppointmentStatus::Held) {
        return Ok(false);
    }
    let (seen, own_holds, taken): (i64, i64, i64) = c
        .prepare_cached(&format!(
            "SELECT
               (SELECT count(*) FROM idempotency_keys WHERE user_id = ?1 AND key = ?2),
               (SELECT count(*) FROM appointments WHERE patient_id = ?1 AND status = 'held'),
               (SELECT count(*) FROM appointments a
                 WHERE a.doctor_id = ?3 AND a.status IN {ACTIVE} AND a.start_at < ?4 AND a.end_at > ?5
                   AND NOT (a.status = 'held' AND a.hold_expires_at <= ?6))"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![
                    cmd.patient_id.to_string(),
                    cmd.idempotency.as_ref().map(|i| i.key.as_str()),
                    cmd.doctor_id.to_string(),
                    secs(cmd.end),
                    secs(cmd.start),
                    secs(cmd.now)
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .map_err(super::map_err)?;
    Ok(seen == 0 && own_holds == 0 && taken > 0)
}

/// Places a hold or a booking: expired holds of the doctor released, the
/// idempotency key checked and recorded, the patient's own hold confirmed
/// (compare-and-swap) or a row inserted under the overlap trigger, with its
/// audit and outbox rows. Returns what was placed and how many holds ran out.
pub(super) fn place(c: &Connection, cmd: &PlaceAppointment) -> Result<(Placed, u64)> {
    let patient = cmd.patient_id.to_string();
    let expired = expire_holds(c, cmd.doctor_id, Some(cmd.patient_id), cmd.now)?;
    if let Some(idem) = &cmd.idempotency {
        let seen = one(
            c,
            "SELECT fingerprint, appointment_id, status_code FROM idempotency_keys WHERE user_id = ? AND key = ?",
            params![patient, idem.key],
            |r| Ok((get::<String>(r, "fingerprint")?, id_of(r, "appointment_id")?, get::<i64>(r, "status_code")?)),
        )?;
        if let Some((fingerprint, id, status_code)) = seen {
            if fingerprint != idem.fingerprint {
                return Err(StoreError::IdempotencyMismatch);
            }
            let appointment = appointment(c, AppointmentId(id))?.ok_or(StoreError::NotFound)?;
            return Ok((Placed::Replayed { appointment, status_code: status_code as u16 }, expired));
        }
    }

    let own_hold = if cmd.status != AppointmentStatus::Held {
        one(
            c,
            &format!(
                "SELECT {APPT_COLS} FROM appointments a
                 WHERE a.doctor_id = ? AND a.patient_id = ? AND a.start_at = ? AND a.status = 'held'"
            ),
            params![cmd.doctor_id.to_string(), patient, secs(cmd.start)],
            appointment_row,
        )?
    } else {
        let holds: i64 = scalar(
            c,
            "SELECT count(*) FROM appointments WHERE patient_id = ? AND status = 'held' AND hold_expires_at > ?",
            params![patient, secs(cmd.now)],
        )?;
        if holds >= i64::from(cmd.max_holds) {
            return Err(StoreError::TooManyHolds(cmd.max_holds));
        }
        None
    };

    let now = cmd.now.to_string();
    let (visit_type, visit_type_name, intake) = visit_columns(cmd.visit.as_ref());
    let awaiting = (cmd.status == AppointmentStatus::Pending).then_some("clinic");
    let created = if let Some(hold) = own_hold {
        // Compare-and-swap: only a still-held row of this version becomes booked.
        let done = exec(
            c,
            "UPDATE appointments SET status = ?, end_at = ?, mode = ?, reason = ?, hold_expires_at = NULL,
                    visit_type = ?, visit_type_name = ?, intake = ?, awaiting = ?, version = version + 1, updated_at = ?
             WHERE id = ? AND status = 'held' AND version = ?",
            params![
                cmd.status.as_str(),
                secs(cmd.end),
                cmd.mode.as_str(),
                cmd.reason,
                visit_type,
                visit_type_name,
                intake,
                awaiting,
                now,
                hold.id.to_string(),
                hold.version
            ],
        )?;
        if done != 1 {
            return Err(StoreError::SlotTaken);
        }
        let after = appointment(c, hold.id)?.ok_or(StoreError::NotFound)?;
        let detail = if cmd.status == AppointmentStatus::Pending {
            "hold confirmed as a request to the clinic"
        } else {
            "hold confirmed"
        };
        let what = Event {
            actor: Some(cmd.patient_id),
            at: cmd.now,
            topic: crate::placed_topic(cmd.status),
            detail: Some(detail),
        };
        record_change(c, Some(&hold), &after, what)?;
        after
    } else {
        exec(
            c,
            "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                       origin_region, hold_expires_at, created_at, updated_at, video_room,
                                       visit_type, visit_type_name, intake, awaiting)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                cmd.id.to_string(),
                cmd.doctor_id.to_string(),
                patient,
                secs(cmd.start),
                secs(cmd.end),
                cmd.mode.as_str(),
                cmd.reason,
                cmd.status.as_str(),
                cmd.origin_region,
                cmd.hold_expires_at.map(secs),
                now,
                now,
                crate::new_video_room(),
                visit_type,
                visit_type_name,
                intake,
                awaiting
            ],
        )?;
        let after = appointment(c, cmd.id)?.ok_or(StoreError::NotFound)?;
        let topic = crate::placed_topic(cmd.status);
        record_change(c, None, &after, Event { actor: Some(cmd.patient_id), at: cmd.now, topic, detail: None })?;
        after
    };

    if let Some(idem) = &cmd.idempotency {
        exec(
            c,
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, appointment_id, status_code, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            params![
                patient,
                idem.key,
                idem.fingerprint,
                created.id.to_string(),
                if cmd.status == AppointmentStatus::Pending { 202 } else { 201 },
                now
            ],
        )?;
    }
    Ok((Placed::Created(created), expired))
}

/// Changes one appointment as `decide` says, given its current row.
pub(super) fn modify(
    c: &Connection,
    id: AppointmentId,
    now: Timestamp,
    actor: Option<UserId>,
    decide: &Decide,
) -> Result<(AppointmentRecord, u64)> {
    let Some(first) = appointment(c, id)? else {
        return Err(StoreError::NotFound);
    };
    let expired = expire_holds(c, first.doctor_id, Some(first.patient_id), now)?;
    let before = appointment(c, id)?.ok_or(StoreError::NotFound)?;
    let change = decide(&before)?;
    let cancelled = change.status == AppointmentStatus::Cancelled;
    let done = exec(
        c,
        "UPDATE appointments SET status = ?1, start_at = ?2, end_at = ?3, cancel_reason = ?4, cancelled_by = ?5,
                hold_expires_at = CASE WHEN ?1 = 'held' THEN hold_expires_at ELSE NULL END,
                patient_overlap_allowed = patient_overlap_allowed AND start_at = ?2 AND end_at = ?3,
                video_room = CASE WHEN start_at = ?2 AND end_at = ?3 THEN video_room ELSE ?9 END,
                awaiting = CASE WHEN ?1 = 'pending' THEN awaiting END,
                version = version + 1, updated_at = ?6
         WHERE id = ?7 AND version = ?8",
        params![
            change.status.as_str(),
            secs(change.start),
            secs(change.end),
            if cancelled { change.cancel_reason.clone() } else { before.cancel_reason.clone() },
            if cancelled { actor.map(|a| a.to_string()) } else { None },
            now.to_string(),
            id.to_string(),
            before.version,
            crate::new_video_room()
        ],
    )?;
    if done != 1 {
        return Err(StoreError::VersionMismatch { current: before.version });
    }
    let after = appointment(c, id)?.ok_or(StoreError::NotFound)?;
    let what = Event { actor, at: now, topic: change.event, detail: change.detail.as_deref() };
    record_change(c, Some(&before), &after, what)?;
    Ok((after, expired))
}

/// Releases the holds of the doctor (and of the patient, if named) that ran
/// out by `now`, with their audit rows, so that their time is free for the
/// write that follows; returns how many.
pub(super) fn expire_holds(c: &Connection, doctor: DoctorId, patient: Option<UserId>, now: Timestamp) -> Result<u64> {
    let (d, p, n, at) = (doctor.to_string(), patient.map(|p| p.to_string()), secs(now), now.to_string());
    exec(
        c,
        "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
         SELECT id, NULL, ?1, 'held', 'cancelled', start_at, start_at, 'hold expired'
         FROM appointments WHERE (doctor_id = ?2 OR patient_id = ?3) AND status = 'held' AND hold_expires_at <= ?4",
        params![at, d, p, n],
    )?;
    let done = exec(
        c,
        "UPDATE appointments SET status = 'cancelled', cancel_reason = 'hold expired', hold_expires_at = NULL,
                version = version + 1, updated_at = ?1
         WHERE (doctor_id = ?2 OR patient_id = ?3) AND status = 'held' AND hold_expires_at <= ?4",
        params![at, d, p, n],
    )?;
    Ok(done as u64)
}

/// The audit row and the outbox row that accompany every appointment change.
pub(super) fn record_change(
    c: &Connection,
    before: Option<&AppointmentRecord>,
    after: &AppointmentRecord,
    what: Event<'_>,
) -> Result<()> {
    let Event { actor, at, topic, detail } = what;
    exec(
        c,
        "INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            after.id.to_string(),
            actor.map(|a| a.to_string()),
            at.to_string(),
            before.map(|b| b.status.as_str()),
            after.status.as_str(),
            before.map(|b| secs(b.start)),
            secs(after.start),
            detail
        ],
    )?;
    let event_id = Uuid::now_v7();
    let payload = crate::outbox_payload(event_id, topic, before, after, actor, at);
    super::notifications::insert_outbox(c, event_id, topic, &payload, at)
}

/// A booked appointment from seed data: no audit or outbox rows (nothing happened to it).
pub(super) fn insert_seeded(c: &Connection, a: &AppointmentRecord) -> Result<()> {
    let (visit_type, visit_type_name, intake) = visit_columns(a.visit.as_ref());
    exec(
        c,
        "INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                   origin_region, hold_expires_at, created_at, updated_at, video_room,
                                   visit_type, visit_type_name, intake)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
        params![
            a.id.to_string(),
            a.doctor_id.to_string(),
            a.patient_id.to_string(),
            secs(a.start),
            secs(a.end),
            a.mode.as_str(),
            a.reason,
            a.status.as_str(),
            a.version,
            a.origin_region,
            a.created_at.to_string(),
            a.updated_at.to_string(),
            a.video_room,
            visit_type,
            visit_type_name,
            intake
        ],
    )?;
    Ok(())
}

/// An appointment's visit as its columns: code, name, intake answers (JSON).
fn visit_columns(visit: Option<&Visit>) -> (Option<&str>, Option<&str>, Option<String>) {
    match visit {
        Some(v) => (Some(&v.code), Some(&v.name), serde_json::to_string(&v.intake).ok()),
        None => (None, None, None),
    }
}

pub(super) fn appointment(c: &Connection, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
    one(c, &format!("SELECT {APPT_COLS} FROM appointments a WHERE a.id = ?"), [id.to_string()], appointment_row)
}

/// This region's own busy time: active appointments (holds that ran out
/// excluded) and time off; not the replicas of other regions'.
pub(super) fn own_busy(
    c: &Connection,
    doctors: &[DoctorId],
    window: Interval,
    now: Timestamp,
) -> Result<Vec<(DoctorId, Interval)>> {
    let mut out = Vec::new();
    // SQLite caps bound parameters; large searches go in chunks.
    for chunk in doctors.chunks(400) {
        let ph = placeholders(chunk.len());
        let sql = format!(
            "SELECT doctor_id, start_at, end_at FROM appointments
             WHERE doctor_id IN ({ph}) AND status IN {ACTIVE}
               AND NOT (status = 'held' AND hold_expires_at <= ?)
               AND start_at < ? AND end_at > ?
             UNION ALL
             SELECT doctor_id, start_at, end_at FROM time_off
             WHERE doctor_id IN ({ph}) AND start_at < ? AND end_at > ?"
        );
        let ids = chunk.iter().map(|d| Value::Text(d.to_string()));
        let mut values: Vec<Value> = ids.clone().collect();
        values.extend([
            Value::Integer(secs(now)),
            Value::Integer(secs(window.end)),
            Value::Integer(secs(window.start)),
        ]);
        values.extend(ids);
        values.extend([Value::Integer(secs(window.end)), Value::Integer(secs(window.start))]);
        out.extend(all_once(c, &sql, params_from_iter(values), busy_row)?);
    }
    Ok(out)
}

pub(super) fn list(c: &Connection, q: &AppointmentQuery) -> Result<(Vec<AppointmentRecord>, u64)> {
    let mut conds: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    match &q.scope {
        Scope::Patient(p) => {
            conds.push("a.patient_id = ?".into());
            values.push(Value::Text(p.to_string()));
        }
        Scope::Doctor(d) => {
            conds.push("a.doctor_id = ?".into());
            values.push(Value::Text(d.to_string()));
        }
        Scope::Clinics(cs) => {
            if cs.is_empty() {
                return Ok((vec![], 0));
            }
            conds.push(format!(
                "a.doctor_id IN (SELECT id FROM doctors WHERE clinic_id IN ({}))",
                placeholders(cs.len())
            ));
            values.extend(cs.iter().map(|c| Value::Text(c.to_string())));
        }
        Scope::All => {}
    }
    if let Some(d) = q.doctor {
        conds.push("a.doctor_id = ?".into());
        values.push(Value::Text(d.to_string()));
    }
    if let Some(s) = q.status {
        conds.push("a.status = ?".into());
        values.push(Value::Text(s.as_str().into()));
    }
    if let Some(f) = q.from {
        conds.push("a.end_at > ?".into());
        values.push(Value::Integer(secs(f)));
    }
    if let Some(t) = q.to {
        conds.push("a.start_at < ?".into());
        values.push(Value::Integer(secs(t)));
    }
    let wher = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let total: i64 = c
        .prepare(&format!("SELECT count(*) FROM appointments a {wher}"))
        .and_then(|mut s| s.query_row(params_from_iter(values.iter()), |r| r.get(0)))
        .map_err(super::map_err)?;
    values.extend([Value::Integer(i64::from(q.limit)), Value::Integer(q.offset as i64)]);
    let items = all_once(
        c,
        &format!("SELECT {APPT_COLS} FROM appointments a {wher} ORDER BY a.start_at, a.id LIMIT ? OFFSET ?"),
        params_from_iter(values),
        appointment_row,
    )?;
    Ok((items, total as u64))
}

pub(super) fn audit_of(c: &Connection, id: AppointmentId) -> Result<Vec<AuditRecord>> {
    all(
        c,
        "SELECT appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail
         FROM audit_log WHERE appointment_id = ? ORDER BY id",
        [id.to_string()],
        audit_row,
    )
}

pub(super) fn activity_since(c: &Connection, since: Timestamp, clinics: Option<&[ClinicId]>) -> Result<Activity> {
    // Change times are RFC 3339 text in UTC; one second of slack for fractions.
    let from = (since - jiff::SignedDuration::from_secs(1)).to_string();
    let scope = match clinics {
        None => String::new(),
        Some([]) => " AND 1 = 0".to_string(),
        Some(cs) => {
            format!(" AND a.doctor_id IN (SELECT id FROM doctors WHERE clinic_id IN ({}))", placeholders(cs.len()))
        }
    };
    let sql = format!(
        "SELECT l.to_status AS status, CASE WHEN l.detail = 'hold expired' THEN 1 ELSE 0 END AS expired,
                CASE WHEN l.from_status = l.to_status THEN 1 ELSE 0 END AS moved, count(*) AS n
         FROM audit_log l JOIN appointments a ON a.id = l.appointment_id
         WHERE l.at >= ?{scope}
         GROUP BY 1, 2, 3"
    );
    let mut values = vec![Value::Text(from)];
    values.extend(clinics.unwrap_or_default().iter().map(|c| Value::Text(c.to_string())));
    let groups = all_once(c, &sql, params_from_iter(values), |r| {
        Ok((get::<String>(r, "status")?, get::<i64>(r, "expired")?, get::<i64>(r, "moved")?, get::<i64>(r, "n")?))
    })?;
    let mut out = Activity::default();
    for (status, expired, moved, n) in groups {
        let n = u64::try_from(n).unwrap_or(0);
        match status.as_str() {
            "held" => out.held += n,
            "booked" if moved == 1 => out.rescheduled += n,
            "booked" => out.booked += n,
            "cancelled" if expired == 1 => out.holds_expired += n,
            "cancelled" => out.cancelled += n,
            "noshow" => out.noshows += n,
            "fulfilled" => out.fulfilled += n,
            _ => {}
        }
    }
    let (pending, oldest) = super::notifications::backlog(c, "outbox", "delivered_at IS NULL")?;
    out.outbox_pending = pending;
    out.outbox_oldest = oldest;
    Ok(out)
}
