-- medislot schema, SQLite dialect. Instants: INTEGER seconds since the epoch for
-- the ranges that constraints compare; RFC 3339 TEXT for bookkeeping times.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('patient', 'doctor', 'clinic_admin', 'admin')),
    name          TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Bearer tokens and web sessions: only a SHA-256 of the secret is stored.
CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE clinics (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    latitude   REAL NOT NULL,
    longitude  REAL NOT NULL,
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
    user_id             TEXT UNIQUE REFERENCES users(id),
    clinic_id           TEXT NOT NULL REFERENCES clinics(id),
    name                TEXT NOT NULL,
    specialties         TEXT NOT NULL,  -- JSON array, mirrored in doctor_tags for search
    languages           TEXT NOT NULL,  -- JSON array, mirrored in doctor_tags
    modes               TEXT NOT NULL,  -- JSON array of in_person / online
    licence_number      TEXT NOT NULL,
    bio                 TEXT NOT NULL,
    verification        TEXT NOT NULL CHECK (verification IN ('pending', 'verified', 'rejected', 'suspended')),
    verification_reason TEXT,
    schedule            TEXT NOT NULL,  -- JSON, see domain::Schedule
    version             INTEGER NOT NULL,
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
    start_at   INTEGER NOT NULL,
    end_at     INTEGER NOT NULL CHECK (end_at > start_at),
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX time_off_doctor ON time_off(doctor_id, start_at);

CREATE TABLE appointments (
    id              TEXT PRIMARY KEY,
    doctor_id       TEXT NOT NULL REFERENCES doctors(id),
    patient_id      TEXT NOT NULL REFERENCES users(id),
    start_at        INTEGER NOT NULL,
    end_at          INTEGER NOT NULL CHECK (end_at > start_at),
    mode            TEXT NOT NULL CHECK (mode IN ('in_person', 'online')),
    reason          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('held', 'pending', 'booked', 'arrived', 'fulfilled', 'noshow', 'cancelled', 'conflict')),
    version         INTEGER NOT NULL,
    origin_region   TEXT NOT NULL,
    hold_expires_at INTEGER,
    cancel_reason   TEXT,
    cancelled_by    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX appointments_doctor_time ON appointments(doctor_id, start_at);
CREATE INDEX appointments_patient ON appointments(patient_id, start_at);

-- P1: at most one active appointment per doctor per instant. SQLite has no
-- exclusion constraints; these triggers are the equivalent. Writers hold
-- SQLite's single write lock, so the check and the write are atomic, across
-- connections and across processes sharing the file.
CREATE TRIGGER appointments_no_overlap_insert
BEFORE INSERT ON appointments
WHEN NEW.status IN ('held', 'pending', 'booked', 'arrived')
BEGIN
    SELECT RAISE(ABORT, 'appointments_no_overlap')
    WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.doctor_id = NEW.doctor_id
          AND a.status IN ('held', 'pending', 'booked', 'arrived')
          AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at
    );
END;

CREATE TRIGGER appointments_no_overlap_update
BEFORE UPDATE OF doctor_id, start_at, end_at, status ON appointments
WHEN NEW.status IN ('held', 'pending', 'booked', 'arrived')
BEGIN
    SELECT RAISE(ABORT, 'appointments_no_overlap')
    WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.doctor_id = NEW.doctor_id
          AND a.id <> NEW.id
          AND a.status IN ('held', 'pending', 'booked', 'arrived')
          AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at
    );
END;

-- P3: a replayed Idempotency-Key returns the first answer, in the same transaction as the booking.
CREATE TABLE idempotency_keys (
    user_id        TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    status_code    INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- Append-only: no UPDATE or DELETE is ever issued against it.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id TEXT NOT NULL,
    actor_id       TEXT,
    at             TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    from_start     INTEGER,
    to_start       INTEGER,
    detail         TEXT
);
CREATE INDEX audit_log_appointment ON audit_log(appointment_id, id);
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Transactional outbox (P6): written with the change that causes it.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT
);
CREATE INDEX outbox_undelivered ON outbox(delivered_at, id);
