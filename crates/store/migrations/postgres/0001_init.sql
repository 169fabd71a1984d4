-- medislot schema, PostgreSQL dialect. Columns mirror migrations/sqlite so that
-- both backends share one implementation; instants compared by constraints are
-- BIGINT seconds since the epoch, bookkeeping times RFC 3339 TEXT.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('patient', 'doctor', 'clinic_admin', 'admin')),
    name          TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    revoked    BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE clinics (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    latitude   DOUBLE PRECISION NOT NULL,
    longitude  DOUBLE PRECISION NOT NULL,
    time_zone  TEXT NOT NULL,
    region     TEXT NOT NULL,
    policy     TEXT NOT NULL CHECK (policy IN ('strict', 'available')),
    created_at TEXT NOT NULL
);
CREATE INDEX clinics_position ON clinics(latitude, longitude);

CREATE TABLE clinic_admins (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (clinic_id, user_id)
);
CREATE INDEX clinic_admins_user ON clinic_admins(user_id);

CREATE TABLE doctors (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT CONSTRAINT doctors_user_id_key UNIQUE REFERENCES users(id),
    clinic_id           TEXT NOT NULL REFERENCES clinics(id),
    name                TEXT NOT NULL,
    specialties         TEXT NOT NULL,
    languages           TEXT NOT NULL,
    modes               TEXT NOT NULL,
    licence_number      TEXT NOT NULL,
    bio                 TEXT NOT NULL,
    verification        TEXT NOT NULL CHECK (verification IN ('pending', 'verified', 'rejected', 'suspended')),
    verification_reason TEXT,
    schedule            TEXT NOT NULL,
    version             BIGINT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX doctors_clinic ON doctors(clinic_id);
CREATE INDEX doctors_verification ON doctors(verification);

CREATE TABLE doctor_tags (
    doctor_id TEXT NOT NULL REFERENCES doctors(id),
    kind      TEXT NOT NULL CHECK (kind IN ('specialty', 'language')),
    value     TEXT NOT NULL,
    PRIMARY KEY (kind, value, doctor_id)
);
CREATE INDEX doctor_tags_doctor ON doctor_tags(doctor_id);

CREATE TABLE time_off (
    id         TEXT PRIMARY KEY,
    doctor_id  TEXT NOT NULL REFERENCES doctors(id),
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL CHECK (end_at > start_at),
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX time_off_doctor ON time_off(doctor_id, start_at);

CREATE TABLE appointments (
    id              TEXT PRIMARY KEY,
    doctor_id       TEXT NOT NULL REFERENCES doctors(id),
    patient_id      TEXT NOT NULL REFERENCES users(id),
    start_at        BIGINT NOT NULL,
    end_at          BIGINT NOT NULL CHECK (end_at > start_at),
    mode            TEXT NOT NULL CHECK (mode IN ('in_person', 'online')),
    reason          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('held', 'pending', 'booked', 'arrived', 'fulfilled', 'noshow', 'cancelled', 'conflict')),
    version         BIGINT NOT NULL,
    origin_region   TEXT NOT NULL,
    hold_expires_at BIGINT,
    cancel_reason   TEXT,
    cancelled_by    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    -- P1: at most one active appointment per doctor per instant, whatever the lengths.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        doctor_id WITH =,
        tstzrange(to_timestamp(start_at), to_timestamp(end_at)) WITH &&
    ) WHERE (status IN ('held', 'pending', 'booked', 'arrived'))
);
CREATE INDEX appointments_doctor_time ON appointments(doctor_id, start_at);
CREATE INDEX appointments_patient ON appointments(patient_id, start_at);

CREATE TABLE idempotency_keys (
    user_id        TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    status_code    BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE audit_log (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id TEXT NOT NULL,
    actor_id       TEXT,
    at             TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    from_start     BIGINT,
    to_start       BIGINT,
    detail         TEXT
);
CREATE INDEX audit_log_appointment ON audit_log(appointment_id, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    delivered_at TEXT
);
CREATE INDEX outbox_undelivered ON outbox(delivered_at, id);
