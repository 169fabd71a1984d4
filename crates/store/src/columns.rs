//! What both backends share about rows: the columns of each record, as the
//! row decoders name them, and what accompanies an appointment change.

pub(crate) const USER_COLS: &str = "u.id AS u_id, u.email AS u_email, u.password_hash AS u_password_hash, u.role AS u_role, u.name AS u_name, u.created_at AS u_created_at";
pub(crate) const CLINIC_COLS: &str = "c.id AS c_id, c.name AS c_name, c.address AS c_address, c.city AS c_city, c.district AS c_district, c.postal_code AS c_postal_code, c.country AS c_country, c.phone AS c_phone, c.latitude AS c_latitude, c.longitude AS c_longitude, c.time_zone AS c_time_zone, c.region AS c_region, c.policy AS c_policy, c.created_at AS c_created_at, c.cancel_cutoff_minutes AS c_cancel_cutoff_minutes, c.noshow_limit AS c_noshow_limit, c.noshow_period_days AS c_noshow_period_days";
pub(crate) const DOCTOR_COLS: &str = "d.id AS d_id, d.user_id AS d_user_id, d.clinic_id AS d_clinic_id, d.name AS d_name, d.specialties AS d_specialties, d.languages AS d_languages, d.modes AS d_modes, d.licence_number AS d_licence_number, d.bio AS d_bio, d.verification AS d_verification, d.verification_reason AS d_verification_reason, d.membership AS d_membership, d.schedule AS d_schedule, d.video_room_url AS d_video_room_url, d.visit_types AS d_visit_types, d.version AS d_version, d.created_at AS d_created_at, d.updated_at AS d_updated_at";
pub(crate) const APPT_COLS: &str = "a.id AS a_id, a.doctor_id AS a_doctor_id, a.patient_id AS a_patient_id, a.start_at AS a_start_at, a.end_at AS a_end_at, a.mode AS a_mode, a.reason AS a_reason, a.status AS a_status, a.version AS a_version, a.origin_region AS a_origin_region, a.hold_expires_at AS a_hold_expires_at, a.cancel_reason AS a_cancel_reason, a.cancelled_by AS a_cancelled_by, a.created_at AS a_created_at, a.updated_at AS a_updated_at, a.video_room AS a_video_room, a.visit_type AS a_visit_type, a.visit_type_name AS a_visit_type_name, a.intake AS a_intake, a.awaiting AS a_awaiting";
pub(crate) const DELIVERY_COLS: &str =
    "id, dedup_key, channel, recipient, kind, event_id, appointment_id, clinic_id, payload, status,
    attempts, next_attempt_at, last_error, last_status, created_at, delivered_at";
pub(crate) const NOTIFICATION_COLS: &str = "id, user_id, kind, title, body, appointment_id, link, created_at, read_at";
pub(crate) const WEBHOOK_COLS: &str = "id, clinic_id, url, secret, events, active, created_at";
pub(crate) const WAITLIST_COLS: &str =
    "w.id AS w_id, w.doctor_id AS w_doctor_id, w.patient_id AS w_patient_id, w.not_before AS w_not_before,
     w.not_after AS w_not_after, w.mode AS w_mode, w.status AS w_status,
     w.offered_appointment_id AS w_offered, w.created_at AS w_created_at";
pub(crate) const FORWARD_COLS: &str =
    "id, region, patient_id, doctor_id, start_at, end_at, mode, reason, idempotency_key, fingerprint,
    status, detail, attempts, created_at, resolved_at, visit";

/// Who changed an appointment, when, and the outbox topic and audit detail of the change.
pub(crate) struct Event<'a> {
    pub actor: Option<medislot_domain::UserId>,
    pub at: jiff::Timestamp,
    pub topic: &'a str,
    pub detail: Option<&'a str>,
}
