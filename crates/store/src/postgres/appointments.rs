//! Appointments: a booking is one call of `place_appointment` (migration 10);
//! changes are transactions that lock the doctor, release holds that ran out,
//! and write the change with its audit and outbox rows.

use super::rows::*;
use super::{commit_write, lock, map_err, Tx};
use crate::columns::{Event, APPT_COLS};
use crate::*;
use medislot_domain::AppointmentStatus;
use sqlx::PgPool;
use uuid::Uuid;

/// Places a hold or a booking in one transaction of one call; returns what was
/// placed and how many of the doctor's holds ran out meanwhile.
pub(super) async fn place(pool: &PgPool, cmd: &PlaceAppointment) -> Result<(Placed, u64)> {
    // The outbox payloads are made here, by the function every backend uses;
    // the database fills in what only it knows (a confirmed hold's id and version).
    let created = AppointmentRecord {
        id: cmd.id,
        doctor_id: cmd.doctor_id,
        patient_id: cmd.patient_id,
        start: cmd.start,
        end: cmd.end,
        mode: cmd.mode,
        reason: cmd.reason.clone(),
        status: cmd.status,
        version: 1,
        origin_region: cmd.origin_region.clone(),
        hold_expires_at: cmd.hold_expires_at,
        cancel_reason: None,
        cancelled_by: None,
        created_at: cmd.now,
        updated_at: cmd.now,
        video_room: Some(crate::new_video_room()),
        visit: cmd.visit.clone(),
        awaiting_clinic: cmd.status == AppointmentStatus::Pending,
    };
    let topic = crate::placed_topic(cmd.status);
    let created_payload = outbox_payload(Uuid::now_v7(), topic, None, &created, Some(cmd.patient_id), cmd.now);
    // Only a booking (or a request) can confirm the patient's own hold.
    let confirmed_payload = (cmd.status != AppointmentStatus::Held).then(|| {
        let hold = AppointmentRecord { status: AppointmentStatus::Held, ..created.clone() };
        let confirmed = AppointmentRecord { hold_expires_at: None, ..created.clone() };
        outbox_payload(Uuid::now_v7(), topic, Some(&hold), &confirmed, Some(cmd.patient_id), cmd.now)
    });

    let mut tx = pool.begin().await.map_err(map_err)?;
    let row = sqlx::query(
        "SELECT * FROM place_appointment($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(cmd.id.0)
    .bind(cmd.doctor_id.0)
    .bind(cmd.patient_id.0)
    .bind(ts(cmd.start))
    .bind(ts(cmd.end))
    .bind(cmd.mode.as_str())
    .bind(&cmd.reason)
    .bind(cmd.status.as_str())
    .bind(cmd.hold_expires_at.map(ts))
    .bind(&cmd.origin_region)
    .bind(ts(cmd.now))
    .bind(cmd.idempotency.as_ref().map(|i| i.key.as_str()))
    .bind(cmd.idempotency.as_ref().map(|i| i.fingerprint.as_str()))
    .bind(i32::try_from(cmd.max_holds).unwrap_or(i32::MAX))
    .bind(created_payload)
    .bind(confirmed_payload)
    .bind(&created.video_room)
    .bind(cmd.visit.as_ref().map(|v| v.code.as_str()))
    .bind(cmd.visit.as_ref().map(|v| v.name.as_str()))
    .bind(cmd.visit.as_ref().map(|v| sqlx::types::Json(&v.intake)))
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("MS002") => StoreError::TooManyHolds(cmd.max_holds),
        _ => map_err(e),
    })?;
    // The function lifted the statement timeout for the rest of the transaction: the commit may wait.
    commit_write(tx).await?;
    let row = row.ok_or(StoreError::NotFound)?;
    let expired = u64::try_from(get::<i64>(&row, "expired")?).unwrap_or(0);
    let appointment = appointment_row(&row)?;
    let placed = match get::<String>(&row, "outcome")?.as_str() {
        "replayed" => Placed::Replayed {
            appointment,
            status_code: u16::try_from(get::<i32>(&row, "status_code")?).unwrap_or(201),
        },
        _ => Placed::Created(appointment),
    };
    Ok((placed, expired))
}

/// Changes one appointment as `decide` says, given its current row.
pub(super) async fn modify(
    tx: &mut Tx,
    id: AppointmentId,
    now: Timestamp,
    actor: Option<UserId>,
    decide: &Decide,
) -> Result<(AppointmentRecord, u64)> {
    let Some(first) = appointment_in(tx, id).await? else {
        return Err(StoreError::NotFound);
    };
    lock(tx, &format!("doctor:{}", first.doctor_id)).await?;
    let expired = expire_holds(tx, first.doctor_id, Some(first.patient_id), now).await?;
    let before = appointment_in(tx, id).await?.ok_or(StoreError::NotFound)?;
    let change = decide(&before)?;
    let cancelled = change.status == AppointmentStatus::Cancelled;
    let done = sqlx::query(
        "UPDATE appointments SET status = $1, start_at = $2, end_at = $3, cancel_reason = $4, cancelled_by = $5,
                hold_expires_at = CASE WHEN $1 = 'held' THEN hold_expires_at END,
                patient_overlap_allowed = patient_overlap_allowed AND start_at = $2 AND end_at = $3,
                video_room = CASE WHEN start_at = $2 AND end_at = $3 THEN video_room ELSE $9 END,
                awaiting = CASE WHEN $1 = 'pending' THEN awaiting END,
                version = version + 1, updated_at = $6
         WHERE id = $7 AND version = $8",
    )
    .bind(change.status.as_str())
    .bind(ts(change.start))
    .bind(ts(change.end))
    .bind(if cancelled { change.cancel_reason.clone() } else { before.cancel_reason.clone() })
    .bind(if cancelled { actor.map(|a| a.0) } else { None })
    .bind(ts(now))
    .bind(id.0)
    .bind(before.version)
    .bind(crate::new_video_room())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::VersionMismatch { current: before.version });
    }
    let after = appointment_in(tx, id).await?.ok_or(StoreError::NotFound)?;
    let what = Event { actor, at: now, topic: change.event, detail: change.detail.as_deref() };
    record_change(tx, Some(&before), &after, what).await?;
    Ok((after, expired))
}

/// Releases the holds of the doctor (and of the patient, if named) that ran
/// out by `now`, with their audit rows, so that their time is free for the
/// write that follows; returns how many. Migration 14's function, which the
/// booking function calls too.
pub(super) async fn expire_holds(
    tx: &mut Tx,
    doctor: DoctorId,
    patient: Option<UserId>,
    now: Timestamp,
) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT medislot_expire_holds($1, $2, $3)")
        .bind(doctor.0)
        .bind(patient.map(|p| p.0))
        .bind(ts(now))
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The audit row and the outbox row that accompany every appointment change.
pub(super) async fn record_change(
    tx: &mut Tx,
    before: Option<&AppointmentRecord>,
    after: &AppointmentRecord,
    what: Event<'_>,
) -> Result<()> {
    let Event { actor, at, topic, detail } = what;
    let event_id = Uuid::now_v7();
    let payload = outbox_payload(event_id, topic, before, after, actor, at);
    sqlx::query(
        "WITH audit AS (
             INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8))
         INSERT INTO outbox (event_id, topic, payload, created_at) VALUES ($9, $10, $11, $3)",
    )
    .bind(after.id.0)
    .bind(actor.map(|a| a.0))
    .bind(ts(at))
    .bind(before.map(|b| b.status.as_str()))
    .bind(after.status.as_str())
    .bind(before.map(|b| ts(b.start)))
    .bind(ts(after.start))
    .bind(detail)
    .bind(event_id)
    .bind(topic)
    .bind(payload)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// A booked appointment from seed data: no audit or outbox rows (nothing happened to it).
pub(super) async fn appointment(pool: &PgPool, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
    let row = sqlx::query(&format!("SELECT {APPT_COLS} FROM appointments a WHERE a.id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(appointment_row).transpose()
}

pub(super) async fn appointment_in(tx: &mut Tx, id: AppointmentId) -> Result<Option<AppointmentRecord>> {
    let row = sqlx::query(&format!("SELECT {APPT_COLS} FROM appointments a WHERE a.id = $1"))
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
    row.as_ref().map(appointment_row).transpose()
}

/// This region's own busy time: active appointments (holds that ran out
/// excluded) and time off; not the replicas of other regions'.
pub(super) async fn own_busy<'e>(
    e: impl sqlx::PgExecutor<'e>,
    doctors: &[DoctorId],
    window: Interval,
    now: Timestamp,
) -> Result<Vec<(DoctorId, Interval)>> {
    let ids: Vec<Uuid> = doctors.iter().map(|d| d.0).collect();
    let rows = sqlx::query(
        "SELECT doctor_id, start_at, end_at FROM appointments
         WHERE doctor_id = ANY($1) AND status IN ('held', 'pending', 'booked', 'arrived')
           AND NOT (status = 'held' AND hold_expires_at <= $2)
           AND during && tstzrange($3, $4, '[)')
         UNION ALL
         SELECT doctor_id, start_at, end_at FROM time_off
         WHERE doctor_id = ANY($1) AND start_at < $4 AND end_at > $3",
    )
    .bind(ids)
    .bind(ts(now))
    .bind(ts(window.start))
    .bind(ts(window.end))
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter().map(busy_row).collect()
}

pub(super) async fn list(pool: &PgPool, q: &AppointmentQuery) -> Result<(Vec<AppointmentRecord>, u64)> {
    enum Arg {
        Id(Uuid),
        Ids(Vec<Uuid>),
        Text(&'static str),
        Time(Timestamp),
    }
    let mut p = Placeholders::default();
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    match &q.scope {
        Scope::Patient(u) => {
            conds.push(format!("a.patient_id = {}", p.next()));
            args.push(Arg::Id(u.0));
        }
        Scope::Doctor(d) => {
            conds.push(format!("a.doctor_id = {}", p.next()));
            args.push(Arg::Id(d.0));
        }
        Scope::Clinics(cs) => {
            if cs.is_empty() {
                return Ok((vec![], 0));
            }
            conds.push(format!("a.doctor_id IN (SELECT id FROM doctors WHERE clinic_id = ANY({}))", p.next()));
            args.push(Arg::Ids(cs.iter().map(|c| c.0).collect()));
        }
        Scope::All => {}
    }
    if let Some(d) = q.doctor {
        conds.push(format!("a.doctor_id = {}", p.next()));
        args.push(Arg::Id(d.0));
    }
    if let Some(s) = q.status {
        conds.push(format!("a.status = {}", p.next()));
        args.push(Arg::Text(s.as_str()));
    }
    if let Some(f) = q.from {
        conds.push(format!("a.end_at > {}", p.next()));
        args.push(Arg::Time(f));
    }
    if let Some(t) = q.to {
        conds.push(format!("a.start_at < {}", p.next()));
        args.push(Arg::Time(t));
    }
    let wher = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    let bind_all = |sql| {
        args.iter().fold(sqlx::query(sql), |query, arg| match arg {
            Arg::Id(id) => query.bind(*id),
            Arg::Ids(ids) => query.bind(ids.clone()),
            Arg::Text(t) => query.bind(*t),
            Arg::Time(t) => query.bind(ts(*t)),
        })
    };
    let count_sql = format!("SELECT count(*) AS n FROM appointments a {wher}");
    let total: i64 = get(&bind_all(&count_sql).fetch_one(pool).await.map_err(map_err)?, "n")?;
    let (limit, offset) = (p.next(), p.next());
    let list_sql = format!(
        "SELECT {APPT_COLS} FROM appointments a {wher} ORDER BY a.start_at, a.id LIMIT {limit} OFFSET {offset}"
    );
    let rows = bind_all(&list_sql)
        .bind(i64::from(q.limit))
        .bind(i64::try_from(q.offset).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    let items = rows.iter().map(appointment_row).collect::<Result<Vec<_>>>()?;
    Ok((items, u64::try_from(total).unwrap_or(0)))
}

pub(super) async fn audit_of(pool: &PgPool, id: AppointmentId) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(
        "SELECT appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail
         FROM audit_log WHERE appointment_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(audit_row).collect()
}

pub(super) async fn activity_since(pool: &PgPool, since: Timestamp, clinics: Option<&[ClinicId]>) -> Result<Activity> {
    let clinics: Option<Vec<Uuid>> = clinics.map(|cs| cs.iter().map(|c| c.0).collect());
    let rows = sqlx::query(
        "SELECT l.to_status AS status, l.detail = 'hold expired' AS expired,
                l.from_status IS NOT DISTINCT FROM l.to_status AS moved, count(*) AS n
         FROM audit_log l JOIN appointments a ON a.id = l.appointment_id
         WHERE l.at >= $1
           AND ($2::uuid[] IS NULL OR a.doctor_id IN (SELECT id FROM doctors WHERE clinic_id = ANY($2)))
         GROUP BY 1, 2, 3",
    )
    .bind(ts(since))
    .bind(clinics)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let mut out = Activity::default();
    for r in &rows {
        let n = u64::try_from(get::<i64>(r, "n")?).unwrap_or(0);
        let expired = get::<Option<bool>>(r, "expired")?.unwrap_or(false);
        let moved = get::<Option<bool>>(r, "moved")?.unwrap_or(false);
        match get::<String>(r, "status")?.as_str() {
            "held" => out.held += n,
            "booked" if moved => out.rescheduled += n,
            "booked" => out.booked += n,
            "cancelled" if expired => out.holds_expired += n,
            "cancelled" => out.cancelled += n,
            "noshow" => out.noshows += n,
            "fulfilled" => out.fulfilled += n,
            _ => {}
        }
    }
    let (pending, oldest) = super::notifications::backlog(pool, "outbox", "delivered_at IS NULL").await?;
    out.outbox_pending = pending;
    out.outbox_oldest = oldest;
    Ok(out)
}
