//! PostgreSQL's values and the store's: instants as timestamptz (through
//! chrono, which sqlx speaks), and the row decoders.

use crate::*;
use chrono::{DateTime, Utc};
use medislot_domain::{
    AppointmentStatus, Coordinates, Membership, Mode, Policy, PostalAddress, Role, Schedule, TimeZoneName,
};
use sqlx::{postgres::PgRow, Row};
use std::str::FromStr;

/// An instant as PostgreSQL's timestamptz (microseconds; the app's clock
/// keeps no finer time).
pub(super) fn ts(t: Timestamp) -> DateTime<Utc> {
    let ns = t.as_nanosecond();
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    DateTime::from_timestamp(secs as i64, nanos as u32).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(super) fn from_ts(t: DateTime<Utc>) -> Result<Timestamp> {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .map_err(|e| StoreError::Internal(format!("bad instant {t}: {e}")))
}

pub(super) fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T> {
    row.try_get(col).map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

pub(super) fn time_of(row: &PgRow, col: &str) -> Result<Timestamp> {
    from_ts(get(row, col)?)
}

pub(super) fn opt_time(row: &PgRow, col: &str) -> Result<Option<Timestamp>> {
    get::<Option<DateTime<Utc>>>(row, col)?.map(from_ts).transpose()
}

fn internal(e: medislot_domain::Invalid) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub(super) fn user_row(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(get(row, "u_id")?),
        email: get(row, "u_email")?,
        password_hash: get(row, "u_password_hash")?,
        role: Role::from_str(&get::<String>(row, "u_role")?).map_err(|e| StoreError::Internal(e.to_string()))?,
        name: get(row, "u_name")?,
        created_at: time_of(row, "u_created_at")?,
    })
}

pub(super) fn clinic_row(row: &PgRow) -> Result<ClinicRecord> {
    Ok(ClinicRecord {
        id: ClinicId(get(row, "c_id")?),
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

pub(super) fn doctor_row(row: &PgRow) -> Result<DoctorRecord> {
    let verification: String = get(row, "d_verification")?;
    let membership: String = get(row, "d_membership")?;
    let modes = get::<Vec<String>>(row, "d_modes")?
        .iter()
        .map(|m| Mode::parse("mode", m))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(internal)?;
    let sqlx::types::Json(schedule) = get::<sqlx::types::Json<Schedule>>(row, "d_schedule")?;
    Ok(DoctorRecord {
        id: DoctorId(get(row, "d_id")?),
        user_id: get::<Option<uuid::Uuid>>(row, "d_user_id")?.map(UserId),
        clinic_id: ClinicId(get(row, "d_clinic_id")?),
        name: get(row, "d_name")?,
        specialties: get(row, "d_specialties")?,
        languages: get(row, "d_languages")?,
        modes,
        licence_number: get(row, "d_licence_number")?,
        bio: get(row, "d_bio")?,
        verification: VerificationState::parse(&verification)
            .ok_or_else(|| StoreError::Internal(format!("bad verification {verification}")))?,
        verification_reason: get(row, "d_verification_reason")?,
        membership: Membership::parse(&membership)
            .ok_or_else(|| StoreError::Internal(format!("bad membership {membership}")))?,
        schedule,
        version: get(row, "d_version")?,
        created_at: time_of(row, "d_created_at")?,
        updated_at: time_of(row, "d_updated_at")?,
    })
}

pub(super) fn doctor_and_clinic(row: &PgRow) -> Result<(DoctorRecord, ClinicRecord)> {
    Ok((doctor_row(row)?, clinic_row(row)?))
}

pub(super) fn appointment_row(row: &PgRow) -> Result<AppointmentRecord> {
    Ok(AppointmentRecord {
        id: AppointmentId(get(row, "a_id")?),
        doctor_id: DoctorId(get(row, "a_doctor_id")?),
        patient_id: UserId(get(row, "a_patient_id")?),
        start: time_of(row, "a_start_at")?,
        end: time_of(row, "a_end_at")?,
        mode: Mode::parse("mode", &get::<String>(row, "a_mode")?).map_err(internal)?,
        reason: get(row, "a_reason")?,
        status: AppointmentStatus::parse("status", &get::<String>(row, "a_status")?).map_err(internal)?,
        version: get(row, "a_version")?,
        origin_region: get(row, "a_origin_region")?,
        hold_expires_at: opt_time(row, "a_hold_expires_at")?,
        cancel_reason: get(row, "a_cancel_reason")?,
        cancelled_by: get::<Option<uuid::Uuid>>(row, "a_cancelled_by")?.map(UserId),
        created_at: time_of(row, "a_created_at")?,
        updated_at: time_of(row, "a_updated_at")?,
    })
}

pub(super) fn outbox_row(r: &PgRow) -> Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: get(r, "id")?,
        event_id: get(r, "event_id")?,
        topic: get(r, "topic")?,
        payload: get(r, "payload")?,
        created_at: time_of(r, "created_at")?,
    })
}

/// A doctor's busy interval (`doctor_id`, `start_at`, `end_at`).
pub(super) fn busy_row(r: &PgRow) -> Result<(DoctorId, Interval)> {
    Ok((DoctorId(get(r, "doctor_id")?), Interval { start: time_of(r, "start_at")?, end: time_of(r, "end_at")? }))
}

/// `$1`, `$2`…: numbered placeholders for a statement assembled from parts.
#[derive(Default)]
pub(super) struct Placeholders(usize);

impl Placeholders {
    pub fn next(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }
}
