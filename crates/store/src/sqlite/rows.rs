//! Running statements and decoding their rows into the store's records.

use super::map_err;
use super::values::*;
use crate::*;
use medislot_domain::{
    AppointmentStatus, Coordinates, Membership, Mode, Policy, PostalAddress, Role, Schedule, TimeZoneName,
};
use rusqlite::{types::FromSql, Connection, Params, Row};
use std::str::FromStr;

/// Every row of a fixed statement (prepared once per connection), decoded.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    collect(&mut stmt, params, decode)
}

/// Every row of a statement whose text varies (`IN` lists of any length):
/// not kept prepared, or each length would hold a place in the cache.
pub(super) fn all_once<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).map_err(map_err)?;
    collect(&mut stmt, params, decode)
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut rows = stmt.query(params).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The first row of a fixed statement, decoded, or `None`.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let mut rows = stmt.query(params).map_err(map_err)?;
    rows.next().map_err(map_err)?.map(decode).transpose()
}

/// A fixed statement's single value (`count(*)`, `max(…)`).
pub(super) fn scalar<T: FromSql>(conn: &Connection, sql: &str, params: impl Params) -> Result<T> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.query_row(params, |r| r.get(0)).map_err(map_err)
}

/// Runs a fixed write statement; how many rows it changed.
pub(super) fn exec(conn: &Connection, sql: &str, params: impl Params) -> Result<usize> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.execute(params).map_err(map_err)
}

pub(super) fn get<T: FromSql>(row: &Row, col: &str) -> Result<T> {
    row.get(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

pub(super) fn id_of(row: &Row, col: &str) -> Result<uuid::Uuid> {
    uuid(&get::<String>(row, col)?)
}

pub(super) fn opt_id(row: &Row, col: &str) -> Result<Option<uuid::Uuid>> {
    get::<Option<String>>(row, col)?.as_deref().map(uuid).transpose()
}

pub(super) fn time_of(row: &Row, col: &str) -> Result<Timestamp> {
    text_ts(&get::<String>(row, col)?)
}

pub(super) fn opt_time(row: &Row, col: &str) -> Result<Option<Timestamp>> {
    get::<Option<String>>(row, col)?.as_deref().map(text_ts).transpose()
}

pub(super) fn instant(row: &Row, col: &str) -> Result<Timestamp> {
    from_secs(get(row, col)?)
}

pub(super) fn opt_instant(row: &Row, col: &str) -> Result<Option<Timestamp>> {
    get::<Option<i64>>(row, col)?.map(from_secs).transpose()
}

fn internal(e: medislot_domain::Invalid) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub(super) fn user_row(row: &Row) -> Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(id_of(row, "u_id")?),
        email: get(row, "u_email")?,
        password_hash: get(row, "u_password_hash")?,
        role: Role::from_str(&get::<String>(row, "u_role")?).map_err(|e| StoreError::Internal(e.to_string()))?,
        name: get(row, "u_name")?,
        created_at: time_of(row, "u_created_at")?,
    })
}

pub(super) fn clinic_row(row: &Row) -> Result<ClinicRecord> {
    Ok(ClinicRecord {
        id: ClinicId(id_of(row, "c_id")?),
        name: get(row, "c_name")?,
        address: get(row, "c_address")?,
        postal: PostalAddress {
            city: get(row, "c_city")?,
            district: get(row, "c_district")?,
            postal_code: get(row, "c_postal_code")?,
            country: get(row, "c_country")?,
        },
        phone: get(row, "c_phone")?,
        position: Coordinates { lat: get(row, "c_latitude")?, lon: get(row, "c_longitude")? },
        time_zone: TimeZoneName::parse("time_zone", &get::<String>(row, "c_time_zone")?).map_err(internal)?,
        region: get(row, "c_region")?,
        policy: Policy::parse("policy", &get::<String>(row, "c_policy")?).map_err(internal)?,
        created_at: time_of(row, "c_created_at")?,
    })
}

pub(super) fn doctor_row(row: &Row) -> Result<DoctorRecord> {
    let verification: String = get(row, "d_verification")?;
    let membership: String = get(row, "d_membership")?;
    Ok(DoctorRecord {
        id: DoctorId(id_of(row, "d_id")?),
        user_id: opt_id(row, "d_user_id")?.map(UserId),
        clinic_id: ClinicId(id_of(row, "d_clinic_id")?),
        name: get(row, "d_name")?,
        specialties: json(&get::<String>(row, "d_specialties")?)?,
        languages: json(&get::<String>(row, "d_languages")?)?,
        modes: json(&get::<String>(row, "d_modes")?)?,
        licence_number: get(row, "d_licence_number")?,
        bio: get(row, "d_bio")?,
        verification: VerificationState::parse(&verification)
            .ok_or_else(|| StoreError::Internal(format!("bad verification {verification}")))?,
        verification_reason: get(row, "d_verification_reason")?,
        membership: Membership::parse(&membership)
            .ok_or_else(|| StoreError::Internal(format!("bad membership {membership}")))?,
        schedule: json::<Schedule>(&get::<String>(row, "d_schedule")?)?,
        version: get(row, "d_version")?,
        created_at: time_of(row, "d_created_at")?,
        updated_at: time_of(row, "d_updated_at")?,
    })
}

pub(super) fn doctor_and_clinic(row: &Row) -> Result<(DoctorRecord, ClinicRecord)> {
    Ok((doctor_row(row)?, clinic_row(row)?))
}

pub(super) fn appointment_row(row: &Row) -> Result<AppointmentRecord> {
    Ok(AppointmentRecord {
        id: AppointmentId(id_of(row, "a_id")?),
        doctor_id: DoctorId(id_of(row, "a_doctor_id")?),
        patient_id: UserId(id_of(row, "a_patient_id")?),
        start: instant(row, "a_start_at")?,
        end: instant(row, "a_end_at")?,
        mode: Mode::parse("mode", &get::<String>(row, "a_mode")?).map_err(internal)?,
        reason: get(row, "a_reason")?,
        status: AppointmentStatus::parse("status", &get::<String>(row, "a_status")?).map_err(internal)?,
        version: get(row, "a_version")?,
        origin_region: get(row, "a_origin_region")?,
        hold_expires_at: opt_instant(row, "a_hold_expires_at")?,
        cancel_reason: get(row, "a_cancel_reason")?,
        cancelled_by: opt_id(row, "a_cancelled_by")?.map(UserId),
        created_at: time_of(row, "a_created_at")?,
        updated_at: time_of(row, "a_updated_at")?,
    })
}

pub(super) fn outbox_row(r: &Row) -> Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: get(r, "id")?,
        event_id: id_of(r, "event_id")?,
        topic: get(r, "topic")?,
        payload: json(&get::<String>(r, "payload")?)?,
        created_at: time_of(r, "created_at")?,
    })
}

/// A doctor's busy interval (`doctor_id`, `start_at`, `end_at`).
pub(super) fn busy_row(r: &Row) -> Result<(DoctorId, Interval)> {
    Ok((DoctorId(id_of(r, "doctor_id")?), Interval { start: instant(r, "start_at")?, end: instant(r, "end_at")? }))
}
