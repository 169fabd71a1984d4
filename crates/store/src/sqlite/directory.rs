//! Clinics, doctors, their tags, time off, and what changed when.

use super::rows::*;
use super::values::*;
use crate::columns::*;
use crate::*;
use rusqlite::{params, params_from_iter, types::Value, Connection};

pub(super) fn insert_clinic(c: &Connection, clinic: &ClinicRecord, admin: UserId) -> Result<()> {
    exec(
        c,
        "INSERT INTO clinics (id, name, address, city, district, postal_code, country, phone, latitude, longitude,
                              time_zone, region, policy, created_at, cancel_cutoff_minutes, noshow_limit,
                              noshow_period_days)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params_from_iter(clinic_values(clinic)),
    )?;
    exec(
        c,
        "INSERT INTO clinic_admins (clinic_id, user_id) VALUES (?, ?)",
        [clinic.id.to_string(), admin.to_string()],
    )?;
    Ok(())
}

/// A clinic's columns in table order, `id` through `noshow_period_days`.
pub(super) fn clinic_values(c: &ClinicRecord) -> Vec<Value> {
    vec![
        Value::Text(c.id.to_string()),
        Value::Text(c.name.clone()),
        Value::Text(c.address.clone()),
        text(c.postal.city.clone()),
        text(c.postal.district.clone()),
        text(c.postal.postal_code.clone()),
        text(c.postal.country.clone()),
        text(c.phone.clone()),
        Value::Real(c.position.lat),
        Value::Real(c.position.lon),
        Value::Text(c.time_zone.as_str().to_string()),
        Value::Text(c.region.clone()),
        Value::Text(c.policy.as_str().to_string()),
        Value::Text(c.created_at.to_string()),
        Value::Integer(c.rules.cancel_cutoff_minutes),
        Value::Integer(c.rules.noshow_limit),
        Value::Integer(c.rules.noshow_period_days),
    ]
}

/// Sets the clinic's rules; its doctors are marked changed, so that peers
/// replicate the clinic again with them.
pub(super) fn set_clinic_rules(c: &Connection, clinic: ClinicId, rules: ClinicRules, now: Timestamp) -> Result<()> {
    let done = exec(
        c,
        "UPDATE clinics SET cancel_cutoff_minutes = ?, noshow_limit = ?, noshow_period_days = ? WHERE id = ?",
        params![rules.cancel_cutoff_minutes, rules.noshow_limit, rules.noshow_period_days, clinic.to_string()],
    )?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    exec(
        c,
        "UPDATE doctors SET updated_at = max(updated_at, ?) WHERE clinic_id = ?",
        params![now.to_string(), clinic.to_string()],
    )?;
    Ok(())
}

fn text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

pub(super) fn clinic(c: &Connection, id: ClinicId) -> Result<Option<ClinicRecord>> {
    one(c, &format!("SELECT {CLINIC_COLS} FROM clinics c WHERE c.id = ?"), [id.to_string()], clinic_row)
}

pub(super) fn list_clinics(c: &Connection) -> Result<Vec<ClinicRecord>> {
    all(c, &format!("SELECT {CLINIC_COLS} FROM clinics c ORDER BY c.name, c.id"), [], clinic_row)
}

/// The cities with listed doctors (see [`Store::places`]).
pub(super) fn places(c: &Connection, limit: u32) -> Result<Vec<Place>> {
    all(
        c,
        "SELECT c.city, c.country, avg(c.latitude) AS lat, avg(c.longitude) AS lon, count(*) AS clinics
         FROM clinics c
         WHERE c.city IS NOT NULL AND EXISTS (
             SELECT 1 FROM doctors d
             WHERE d.clinic_id = c.id AND d.verification = 'verified' AND d.membership = 'active')
         GROUP BY c.city, c.country
         ORDER BY count(*) DESC, c.city, c.country
         LIMIT ?",
        [i64::from(limit)],
        |r| {
            Ok(Place {
                city: get::<String>(r, "city")?,
                country: get::<Option<String>>(r, "country")?,
                position: medislot_domain::Coordinates { lat: get::<f64>(r, "lat")?, lon: get::<f64>(r, "lon")? },
                clinics: u64::try_from(get::<i64>(r, "clinics")?).unwrap_or(0),
            })
        },
    )
}

pub(super) fn clinics_administered_by(c: &Connection, user: UserId) -> Result<Vec<ClinicId>> {
    all(c, "SELECT clinic_id FROM clinic_admins WHERE user_id = ? ORDER BY clinic_id", [user.to_string()], |r| {
        Ok(ClinicId(id_of(r, "clinic_id")?))
    })
}

/// A doctor's columns in table order, `id` through `updated_at`.
pub(super) fn doctor_values(d: &DoctorRecord) -> Vec<Value> {
    let mut values = vec![Value::Text(d.id.to_string())];
    values.extend(profile_values(d));
    values.extend([
        Value::Integer(d.version),
        Value::Text(d.created_at.to_string()),
        Value::Text(d.updated_at.to_string()),
    ]);
    values
}

/// A doctor's profile columns, `user_id` through `video_room_url`, in table
/// order (the INSERT and the UPDATE list them alike).
fn profile_values(d: &DoctorRecord) -> Vec<Value> {
    vec![
        text(d.user_id.map(|u| u.to_string())),
        Value::Text(d.clinic_id.to_string()),
        Value::Text(d.name.clone()),
        Value::Text(to_json(&d.specialties)),
        Value::Text(to_json(&d.languages)),
        Value::Text(to_json(&d.modes)),
        Value::Text(d.licence_number.clone()),
        Value::Text(d.bio.clone()),
        Value::Text(d.verification.as_str().to_string()),
        text(d.verification_reason.clone()),
        Value::Text(d.membership.as_str().to_string()),
        Value::Text(to_json(&d.schedule)),
        text(d.video_room_url.clone()),
        Value::Text(to_json(&d.visit_types)),
    ]
}

pub(super) fn insert_doctor(c: &Connection, d: &DoctorRecord) -> Result<()> {
    exec(
        c,
        "INSERT INTO doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                              verification, verification_reason, membership, schedule, video_room_url,
                              visit_types, version, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params_from_iter(doctor_values(d)),
    )?;
    write_tags(c, d)
}

/// The doctor's specialties and languages, mirrored in `doctor_tags` for search.
pub(super) fn write_tags(c: &Connection, d: &DoctorRecord) -> Result<()> {
    exec(c, "DELETE FROM doctor_tags WHERE doctor_id = ?", [d.id.to_string()])?;
    let tags = d.specialties.iter().map(|s| ("specialty", s)).chain(d.languages.iter().map(|l| ("language", l)));
    for (kind, value) in tags {
        exec(
            c,
            "INSERT INTO doctor_tags (doctor_id, kind, value) VALUES (?, ?, ?)",
            params![d.id.to_string(), kind, value],
        )?;
    }
    Ok(())
}

pub(super) fn doctor(c: &Connection, id: DoctorId) -> Result<Option<DoctorRecord>> {
    one(c, &format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.id = ?"), [id.to_string()], doctor_row)
}

pub(super) fn doctor_of_user(c: &Connection, user: UserId) -> Result<Option<DoctorRecord>> {
    one(c, &format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.user_id = ?"), [user.to_string()], doctor_row)
}

pub(super) fn doctors_with_licence(c: &Connection, licence: &str) -> Result<Vec<DoctorRecord>> {
    all(
        c,
        &format!("SELECT {DOCTOR_COLS} FROM doctors d WHERE d.licence_number = ? ORDER BY d.id"),
        [licence],
        doctor_row,
    )
}

pub(super) fn update_doctor(c: &Connection, d: &DoctorRecord, expected_version: i64) -> Result<()> {
    let mut values = profile_values(d);
    values.extend([
        Value::Integer(expected_version + 1),
        Value::Text(d.updated_at.to_string()),
        Value::Text(d.id.to_string()),
        Value::Integer(expected_version),
    ]);
    let done = exec(
        c,
        "UPDATE doctors SET user_id = ?, clinic_id = ?, name = ?, specialties = ?, languages = ?, modes = ?,
                licence_number = ?, bio = ?, verification = ?, verification_reason = ?, membership = ?, schedule = ?,
                video_room_url = ?, visit_types = ?, version = ?, updated_at = ?
         WHERE id = ? AND version = ?",
        params_from_iter(values),
    )?;
    if done == 0 {
        let current: Option<i64> =
            one(c, "SELECT version FROM doctors WHERE id = ?", [d.id.to_string()], |r| get(r, "version"))?;
        return Err(match current {
            Some(current) => StoreError::VersionMismatch { current },
            None => StoreError::NotFound,
        });
    }
    write_tags(c, d)
}

pub(super) fn time_off_of(c: &Connection, doctor: DoctorId, after: Timestamp) -> Result<Vec<TimeOffRecord>> {
    all(
        c,
        "SELECT id, doctor_id, start_at, end_at, reason FROM time_off WHERE doctor_id = ? AND end_at > ?
         ORDER BY start_at, id",
        params![doctor.to_string(), secs(after)],
        |r| {
            Ok(TimeOffRecord {
                id: id_of(r, "id")?,
                doctor_id: DoctorId(id_of(r, "doctor_id")?),
                interval: Interval { start: from_secs(get(r, "start_at")?)?, end: from_secs(get(r, "end_at")?)? },
                reason: get(r, "reason")?,
            })
        },
    )
}

pub(super) fn delete_time_off(c: &Connection, doctor: DoctorId, id: uuid::Uuid, now: Timestamp) -> Result<()> {
    let gone =
        exec(c, "DELETE FROM time_off WHERE id = ? AND doctor_id = ?", params![id.to_string(), doctor.to_string()])?;
    if gone == 0 {
        return Err(StoreError::NotFound);
    }
    exec(
        c,
        "UPDATE doctors SET updated_at = max(updated_at, ?) WHERE id = ?",
        params![now.to_string(), doctor.to_string()],
    )?;
    Ok(())
}

pub(super) fn insert_time_off(c: &Connection, t: &TimeOffRecord) -> Result<()> {
    exec(
        c,
        "INSERT INTO time_off (id, doctor_id, start_at, end_at, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        params![
            t.id.to_string(),
            t.doctor_id.to_string(),
            secs(t.interval.start),
            secs(t.interval.end),
            t.reason,
            Timestamp::now().to_string()
        ],
    )?;
    Ok(())
}

pub(super) fn list_doctors(
    c: &Connection,
    clinic: Option<ClinicId>,
    verification: Option<VerificationState>,
) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    let clinic = clinic.map(|c| c.to_string());
    let state = verification.map(|v| v.as_str());
    all(
        c,
        &format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE (?1 IS NULL OR d.clinic_id = ?1) AND (?2 IS NULL OR d.verification = ?2)
             ORDER BY d.name, d.id"
        ),
        params![clinic, state],
        doctor_and_clinic,
    )
}

/// These doctors, whatever their verification, with their clinics.
pub(super) fn doctors_with_clinics(c: &Connection, ids: &[DoctorId]) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    let mut out = Vec::new();
    // SQLite caps bound parameters; long lists go in chunks.
    for chunk in ids.chunks(400) {
        let sql = format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE d.id IN ({})",
            placeholders(chunk.len())
        );
        out.extend(all_once(c, &sql, params_from_iter(chunk.iter().map(|d| d.to_string())), doctor_and_clinic)?);
    }
    Ok(out)
}

pub(super) fn doctors_updated_since(c: &Connection, since: Timestamp) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    // One second earlier: a change at 12:00:00.5 sorts before "12:00:00Z" as text.
    let from = (since - jiff::SignedDuration::from_secs(1)).to_string();
    all(
        c,
        &format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE d.updated_at >= ?"
        ),
        [from],
        doctor_and_clinic,
    )
}

pub(super) fn search_doctors(c: &Connection, q: &DoctorQuery) -> Result<Vec<(DoctorRecord, ClinicRecord)>> {
    // A specialty drives the query from its tag index (a tenth of the
    // directory, typically); nearly every doctor is verified, so starting
    // from the verification index would read them all.
    let mut sql = if q.specialty.is_some() {
        format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctor_tags s
             JOIN doctors d ON d.id = s.doctor_id JOIN clinics c ON c.id = d.clinic_id
             WHERE s.kind = 'specialty' AND s.value = ? AND d.verification = 'verified'"
        )
    } else {
        format!(
            "SELECT {DOCTOR_COLS}, {CLINIC_COLS} FROM doctors d JOIN clinics c ON c.id = d.clinic_id
             WHERE d.verification = 'verified'"
        )
    };
    let mut values: Vec<Value> = Vec::new();
    if let Some(s) = &q.specialty {
        values.push(Value::Text(s.clone()));
    }
    if let Some(l) = &q.language {
        sql.push_str(" AND EXISTS (SELECT 1 FROM doctor_tags t WHERE t.doctor_id = d.id AND t.kind = 'language' AND t.value = ?)");
        values.push(Value::Text(l.clone()));
    }
    if let Some(m) = q.mode {
        sql.push_str(" AND instr(d.modes, ?) > 0");
        values.push(Value::Text(format!("\"{}\"", m.as_str())));
    }
    if let Some((a, b, lo, hi)) = q.bounding_box {
        sql.push_str(" AND c.latitude BETWEEN ? AND ? AND c.longitude BETWEEN ? AND ?");
        values.extend([Value::Real(a), Value::Real(b), Value::Real(lo), Value::Real(hi)]);
    }
    if let Some(d) = q.exclude_doctor {
        sql.push_str(" AND d.id <> ?");
        values.push(Value::Text(d.to_string()));
    }
    // A handful of shapes (which filters are set): kept prepared.
    all(c, &sql, params_from_iter(values), doctor_and_clinic)
}

pub(super) fn last_change(c: &Connection, now: Timestamp) -> Result<Option<Timestamp>> {
    // Change times are stored as RFC 3339 text in UTC, which sorts as time
    // does to the second; holds expire at stored Unix seconds.
    let text: Option<String> = scalar(
        c,
        "SELECT max(t) FROM (SELECT max(updated_at) AS t FROM doctors
                             UNION ALL SELECT max(updated_at) FROM appointments
                             UNION ALL SELECT max(created_at) FROM clinics
                             UNION ALL SELECT max(created_at) FROM time_off) changes",
        [],
    )?;
    let expired: Option<i64> = scalar(
        c,
        "SELECT max(hold_expires_at) FROM appointments WHERE status = 'held' AND hold_expires_at <= ?",
        [secs(now)],
    )?;
    let changed = text.as_deref().map(text_ts).transpose()?;
    let expired = expired.map(from_secs).transpose()?;
    Ok(changed.max(expired).map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t)))
}

pub(super) fn doctors_changed_since(c: &Connection, since: Timestamp, now: Timestamp) -> Result<Vec<DoctorId>> {
    // One second earlier: a change at 12:00:00.5 sorts before "12:00:00Z" as text.
    let from = (since - jiff::SignedDuration::from_secs(1)).to_string();
    all(
        c,
        "SELECT id FROM doctors WHERE updated_at >= ?1
         UNION SELECT doctor_id FROM appointments WHERE updated_at >= ?1
         UNION SELECT doctor_id FROM appointments WHERE status = 'held' AND hold_expires_at >= ?2 AND hold_expires_at <= ?3
         UNION SELECT doctor_id FROM time_off WHERE created_at >= ?1",
        params![from, secs(since) - 1, secs(now)],
        |r| Ok(DoctorId(uuid(&r.get::<_, String>(0).map_err(super::map_err)?)?)),
    )
}
