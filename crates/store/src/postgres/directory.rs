//! Clinics, doctors, time off, and what changed when.

use super::rows::*;
use super::{map_err, Tx};
use crate::columns::{CLINIC_COLS, DOCTOR_COLS};
use crate::*;
use sqlx::{postgres::PgArguments, query::Query, PgExecutor, PgPool, Postgres};

type Q<'q> = Query<'q, Postgres, PgArguments>;

pub(super) const INSERT_CLINIC: &str =
    "INSERT INTO clinics (id, name, address, city, district, postal_code, country, phone, latitude, longitude,
                          time_zone, region, policy, created_at, cancel_cutoff_minutes, noshow_limit,
                          noshow_period_days)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// Binds a clinic's columns in table order, `id` through `noshow_period_days` ($1–$17).
pub(super) fn bind_clinic<'q>(q: Q<'q>, c: &'q ClinicRecord) -> Q<'q> {
    q.bind(c.id.0)
        .bind(&c.name)
        .bind(&c.address)
        .bind(&c.postal.city)
        .bind(&c.postal.district)
        .bind(&c.postal.postal_code)
        .bind(&c.postal.country)
        .bind(&c.phone)
        .bind(c.position.lat)
        .bind(c.position.lon)
        .bind(c.time_zone.as_str())
        .bind(&c.region)
        .bind(c.policy.as_str())
        .bind(ts(c.created_at))
        .bind(i32::try_from(c.rules.cancel_cutoff_minutes).unwrap_or(i32::MAX))
        .bind(i32::try_from(c.rules.noshow_limit).unwrap_or(i32::MAX))
        .bind(i32::try_from(c.rules.noshow_period_days).unwrap_or(i32::MAX))
}

/// Sets the clinic's rules; its doctors are marked changed, so that peers
/// replicate the clinic again with them.
pub(super) async fn set_clinic_rules(tx: &mut Tx, clinic: ClinicId, rules: ClinicRules, now: Timestamp) -> Result<()> {
    let done = sqlx::query(
        "UPDATE clinics SET cancel_cutoff_minutes = $2, noshow_limit = $3, noshow_period_days = $4 WHERE id = $1",
    )
    .bind(clinic.0)
    .bind(i32::try_from(rules.cancel_cutoff_minutes).unwrap_or(i32::MAX))
    .bind(i32::try_from(rules.noshow_limit).unwrap_or(i32::MAX))
    .bind(i32::try_from(rules.noshow_period_days).unwrap_or(i32::MAX))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("UPDATE doctors SET updated_at = greatest(updated_at, $2) WHERE clinic_id = $1")
        .bind(clinic.0)
        .bind(ts(now))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn insert_clinic(tx: &mut Tx, c: &ClinicRecord, admin: UserId) -> Result<()> {
    bind_clinic(sqlx::query(INSERT_CLINIC), c).execute(&mut **tx).await.map_err(map_err)?;
    sqlx::query("INSERT INTO clinic_admins (clinic_id, user_id) VALUES ($1, $2)")
        .bind(c.id.0)
        .bind(admin.0)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn clinic(e: impl PgExecutor<'_>, id: ClinicId) -> Result<Option<ClinicRecord>> {
    let row = sqlx::query(&format!("SELECT {CLINIC_COLS} FROM clinics c WHERE c.id = $1"))
        .bind(id.0)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(clinic_row).transpose()
}

pub(super) async fn list_clinics(e: impl PgExecutor<'_>) -> Result<Vec<ClinicRecord>> {
    let rows = sqlx::query(&format!("SELECT {CLINIC_COLS} FROM clinics c ORDER BY c.name, c.id"))
        .fetch_all(e)
        .await
        .map_err(map_err)?;
    rows.iter().map(clinic_row).collect()
}

/// The cities with listed doctors (see [`Store::places`]).
pub(super) async fn places(pool: &PgPool, limit: u32) -> Result<Vec<Place>> {
    let rows = sqlx::query(PLACES_SQL).bind(i64::from(limit)).fetch_all(pool).await.map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(Place {
                city: get::<String>(r, "city")?,
                country: get::<Option<String>>(r, "country")?,
                position: medislot_domain::Coordinates { lat: get::<f64>(r, "lat")?, lon: get::<f64>(r, "lon")? },
                clinics: u64::try_from(get::<i64>(r, "clinics")?).unwrap_or(0),
            })
        })
        .collect()
}

const PLACES_SQL: &str =
    "SELECT c.city, c.country, avg(c.latitude) AS lat, avg(c.longitude) AS lon, count(*) AS clinics
     FROM clinics c
     WHERE c.city IS NOT NULL AND EXISTS (
         SELECT 1 FROM doctors d
         WHERE d.clinic_id = c.id AND d.verification = 'verified' AND d.membership = 'active')
     GROUP BY c.city, c.country
     ORDER BY count(*) DESC, c.city, c.country
     LIMIT $1";

pub(super) async fn clinics_administered_by(pool: &PgPool, user: UserId) -> Result<Vec<ClinicId>> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT clinic_id FROM clinic_admins WHERE user_id = $1 ORDER BY clinic_id")
            .bind(user.0)
            .fetch_all(pool)
            .await
            .map_err(map_err)?;
    Ok(ids.into_iter().map(ClinicId).collect())
}

pub(super) const INSERT_DOCTOR: &str =
    "INSERT INTO doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                          verification, verification_reason, membership, schedule, video_room_url,
                          visit_types, version, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// Binds a doctor's columns in table order, `id` through `updated_at` ($1–$18).
pub(super) fn bind_doctor<'q>(q: Q<'q>, d: &'q DoctorRecord) -> Q<'q> {
    bind_profile(q.bind(d.id.0), d).bind(d.version).bind(ts(d.created_at)).bind(ts(d.updated_at))
}

/// Binds a doctor's profile columns, `user_id` through `visit_types`, in
/// table order (the INSERT and the UPDATE list them alike).
fn bind_profile<'q>(q: Q<'q>, d: &'q DoctorRecord) -> Q<'q> {
    q.bind(d.user_id.map(|u| u.0))
        .bind(d.clinic_id.0)
        .bind(&d.name)
        .bind(&d.specialties)
        .bind(&d.languages)
        .bind(d.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>())
        .bind(&d.licence_number)
        .bind(&d.bio)
        .bind(d.verification.as_str())
        .bind(&d.verification_reason)
        .bind(d.membership.as_str())
        .bind(sqlx::types::Json(&d.schedule))
        .bind(&d.video_room_url)
        .bind(sqlx::types::Json(&d.visit_types))
}

pub(super) async fn insert_doctor(tx: &mut Tx, d: &DoctorRecord) -> Result<()> {
    bind_doctor(sqlx::query(INSERT_DOCTOR), d).execute(&mut **tx).await.map_err(map_err)?;
    Ok(())
}

pub(super) async fn doctor(e: impl PgExecutor<'_>, id: DoctorId) -> Result<Option<DoctorRecord>> {
    let row = sqlx::query(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.id = $1"))
        .bind(id.0)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(doctor_row).transpose()
}

pub(super) async fn doctor_of_user(pool: &PgPool, user: UserId) -> Result<Option<DoctorRecord>> {
    let row = sqlx::query(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.user_id = $1"))
        .bind(user.0)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(doctor_row).transpose()
}

pub(super) async fn doctors_with_licence(pool: &PgPool, licence: &str) -> Result<Vec<DoctorRecord>> {
    let rows = sqlx::query(&format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.licence_number = $1 ORDER BY d.id"))
        .bind(licence)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    rows.iter().map(doctor_row).collect()
}

pub(super) async fn update_doctor(tx: &mut Tx, d: &DoctorRecord, expected_version: i64) -> Result<()> {
    let q = sqlx::query(
        "UPDATE doctors SET user_id = $1, clinic_id = $2, name = $3, specialties = $4, languages = $5, modes = $6,
                licence_number = $7, bio = $8, verification = $9, verification_reason = $10, membership = $11,
                schedule = $12, video_room_url = $13, visit_types = $14, version = $15, updated_at = $16
         WHERE id = $17 AND version = $18",
    );
    let done = bind_profile(q, d)
        .bind(expected_version + 1)
        .bind(ts(d.updated_at))
        .bind(d.id.0)
        .bind(expected_version)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    if done.rows_affected() == 0 {
        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM doctors WHERE id = $1")
            .bind(d.id.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
        return Err(match current {
            Some(current) => StoreError::VersionMismatch { current },
            None => StoreError::NotFound,
        });
    }
    Ok(())
}

pub(super) async fn insert_time_off(pool: &PgPool, t: &TimeOffRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO time_off (id, doctor_id, start_at, end_at, reason, created_at) VALUES ($1, $2, $3, $4, $5, now())",
    )
    .bind(t.id)
    .bind(t.doctor_id.0)
    .bind(ts(t.interval.start))
    .bind(ts(t.interval.end))
    .bind(&t.reason)
    .execute(pool)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn time_off_of(pool: &PgPool, doctor: DoctorId, after: Timestamp) -> Result<Vec<TimeOffRecord>> {
    let rows = sqlx::query(
        "SELECT id, start_at, end_at, reason FROM time_off WHERE doctor_id = $1 AND end_at > $2 ORDER BY start_at, id",
    )
    .bind(doctor.0)
    .bind(ts(after))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(TimeOffRecord {
                id: get(r, "id")?,
                doctor_id: doctor,
                interval: Interval { start: time_of(r, "start_at")?, end: time_of(r, "end_at")? },
                reason: get(r, "reason")?,
            })
        })
        .collect()
}

pub(super) async fn delete_time_off(tx: &mut Tx, doctor: DoctorId, id: uuid::Uuid, now: Timestamp) -> Result<()> {
    let gone = sqlx::query("DELETE FROM time_off WHERE id = $1 AND doctor_id = $2")
        .bind(id)
        .bind(doctor.0)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    if gone.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("UPDATE doctors SET updated_at = greatest(updated_at, $2) WHERE id = $1")
        .bind(doctor.0)
        .bind(ts(now))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

pub(super) async fn list_doctors(
    e: impl PgExecutor<'_>,
    clinic: Option<ClinicId>,
    verification: Option<VerificationState>,
) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    let rows = sqlx::query(&format!(
        "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
         WHERE ($1::uuid IS NULL OR d.clinic_id = $1) AND ($2::text IS NULL OR d.verification = $2)
         ORDER BY d.name, d.id"
    ))
    .bind(clinic.map(|c| c.0))
    .bind(verification.map(|v| v.as_str()))
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter().map(doctor_and_clinic).collect()
}

/// These doctors, whatever their verification, with their clinics.
pub(super) async fn doctors_with_clinics(
    e: impl PgExecutor<'_>,
    ids: &[DoctorId],
) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    let rows = sqlx::query(&format!(
        "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id WHERE d.id = ANY($1)"
    ))
    .bind(ids.iter().map(|d| d.0).collect::<Vec<_>>())
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter().map(doctor_and_clinic).collect()
}

pub(super) async fn doctors_updated_since(
    pool: &PgPool,
    since: Timestamp,
) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    let rows = sqlx::query(&format!(
        "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
         WHERE d.updated_at >= $1"
    ))
    .bind(ts(since))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(doctor_and_clinic).collect()
}

pub(super) async fn search_doctors(pool: &PgPool, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    use futures::TryStreamExt;
    let mut p = Placeholders::default();
    let mut sql = format!(
        "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
         WHERE d.verification = 'verified'"
    );
    // Specialties and languages are text[] with GIN indexes: `@>` uses them.
    if q.specialty.is_some() {
        sql.push_str(&format!(" AND d.specialties @> ARRAY[{}::text]", p.next()));
    }
    if q.language.is_some() {
        sql.push_str(&format!(" AND d.languages @> ARRAY[{}::text]", p.next()));
    }
    if q.mode.is_some() {
        sql.push_str(&format!(" AND {} = ANY(d.modes)", p.next()));
    }
    if q.bounding_box.is_some() {
        let (a, b, c, d) = (p.next(), p.next(), p.next(), p.next());
        sql.push_str(&format!(" AND c.latitude BETWEEN {a} AND {b} AND c.longitude BETWEEN {c} AND {d}"));
    }
    if q.exclude_doctor.is_some() {
        sql.push_str(&format!(" AND d.id <> {}", p.next()));
    }
    let mut query = sqlx::query(&sql);
    if let Some(s) = &q.specialty {
        query = query.bind(s);
    }
    if let Some(l) = &q.language {
        query = query.bind(l);
    }
    if let Some(m) = q.mode {
        query = query.bind(m.as_str());
    }
    if let Some((a, b, c, d)) = q.bounding_box {
        query = query.bind(a).bind(b).bind(c).bind(d);
    }
    if let Some(d) = q.exclude_doctor {
        query = query.bind(d.0);
    }
    // Decoded row by row: the whole directory's raw rows are never held at once.
    let mut rows = query.fetch(pool);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await.map_err(map_err)? {
        out.push(doctor_and_clinic(&r)?);
    }
    Ok(out)
}

pub(super) async fn last_change(pool: &PgPool, now: Timestamp) -> Result<Option<Timestamp>> {
    let changed: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT greatest((SELECT max(updated_at) FROM doctors), (SELECT max(updated_at) FROM appointments),
                         (SELECT max(created_at) FROM clinics), (SELECT max(created_at) FROM time_off),
                         (SELECT max(hold_expires_at) FROM appointments WHERE status = 'held' AND hold_expires_at <= $1))",
    )
    .bind(ts(now))
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok(changed.map(from_ts).transpose()?.map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t)))
}

pub(super) async fn doctors_changed_since(
    e: impl PgExecutor<'_>,
    since: Timestamp,
    now: Timestamp,
) -> Result<Vec<DoctorId>> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM doctors WHERE updated_at >= $1
         UNION SELECT doctor_id FROM appointments WHERE updated_at >= $1
         UNION SELECT doctor_id FROM appointments WHERE status = 'held' AND hold_expires_at >= $1 AND hold_expires_at <= $2
         UNION SELECT doctor_id FROM time_off WHERE created_at >= $1",
    )
    .bind(ts(since))
    .bind(ts(now))
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    Ok(ids.into_iter().map(DoctorId).collect())
}
