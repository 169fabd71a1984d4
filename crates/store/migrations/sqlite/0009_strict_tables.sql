-- Every table becomes STRICT: SQLite then refuses a value of the wrong type
-- (text in an INTEGER column, a number in a TEXT one) instead of storing it as
-- it came. A STRICT table can only be made anew, so each one is rebuilt with
-- its rows, then its indexes and triggers are made again. The whole migration
-- is one transaction: a row that does not fit stops it and leaves the file as
-- it was. (Foreign keys are checked once at the end, by the migration runner.)

CREATE TABLE users__strict (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('patient', 'doctor', 'clinic_admin', 'admin')),
    name          TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;
INSERT INTO users__strict (id, email, password_hash, role, name, created_at)
    SELECT id, email, password_hash, role, name, created_at FROM users;
DROP TABLE users;
ALTER TABLE users__strict RENAME TO users;

CREATE TABLE tokens__strict (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO tokens__strict (token_hash, user_id, expires_at, revoked, created_at)
    SELECT token_hash, user_id, expires_at, revoked, created_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens__strict RENAME TO tokens;

CREATE TABLE clinics__strict (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL,
    latitude   REAL NOT NULL,
    longitude  REAL NOT NULL,
    time_zone  TEXT NOT NULL,
    region     TEXT NOT NULL,
    policy     TEXT NOT NULL CHECK (policy IN ('strict', 'available')),
    created_at TEXT NOT NULL
, city TEXT, district TEXT, postal_code TEXT, country TEXT, phone TEXT) STRICT;
INSERT INTO clinics__strict (id, name, address, latitude, longitude, time_zone, region, policy, created_at, city, district, postal_code, country, phone)
    SELECT id, name, address, latitude, longitude, time_zone, region, policy, created_at, city, district, postal_code, country, phone FROM clinics;
DROP TABLE clinics;
ALTER TABLE clinics__strict RENAME TO clinics;

CREATE TABLE clinic_admins__strict (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (clinic_id, user_id)
) STRICT;
INSERT INTO clinic_admins__strict (clinic_id, user_id)
    SELECT clinic_id, user_id FROM clinic_admins;
DROP TABLE clinic_admins;
ALTER TABLE clinic_admins__strict RENAME TO clinic_admins;

CREATE TABLE doctors__strict (
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
, membership TEXT NOT NULL DEFAULT 'active'
    CHECK (membership IN ('requested', 'invited', 'active', 'declined'))) STRICT;
INSERT INTO doctors__strict (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio, verification, verification_reason, schedule, version, created_at, updated_at, membership)
    SELECT id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio, verification, verification_reason, schedule, version, created_at, updated_at, membership FROM doctors;
DROP TABLE doctors;
ALTER TABLE doctors__strict RENAME TO doctors;

CREATE TABLE doctor_tags__strict (
    doctor_id TEXT NOT NULL REFERENCES doctors(id),
    kind      TEXT NOT NULL CHECK (kind IN ('specialty', 'language')),
    value     TEXT NOT NULL,
    PRIMARY KEY (kind, value, doctor_id)
) STRICT;
INSERT INTO doctor_tags__strict (doctor_id, kind, value)
    SELECT doctor_id, kind, value FROM doctor_tags;
DROP TABLE doctor_tags;
ALTER TABLE doctor_tags__strict RENAME TO doctor_tags;

CREATE TABLE time_off__strict (
    id         TEXT PRIMARY KEY,
    doctor_id  TEXT NOT NULL REFERENCES doctors(id),
    start_at   INTEGER NOT NULL,
    end_at     INTEGER NOT NULL CHECK (end_at > start_at),
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO time_off__strict (id, doctor_id, start_at, end_at, reason, created_at)
    SELECT id, doctor_id, start_at, end_at, reason, created_at FROM time_off;
DROP TABLE time_off;
ALTER TABLE time_off__strict RENAME TO time_off;

CREATE TABLE appointments__strict (
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
) STRICT;
INSERT INTO appointments__strict (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version, origin_region, hold_expires_at, cancel_reason, cancelled_by, created_at, updated_at)
    SELECT id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version, origin_region, hold_expires_at, cancel_reason, cancelled_by, created_at, updated_at FROM appointments;
DROP TABLE appointments;
ALTER TABLE appointments__strict RENAME TO appointments;

CREATE TABLE idempotency_keys__strict (
    user_id        TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    status_code    INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
INSERT INTO idempotency_keys__strict (user_id, key, fingerprint, appointment_id, status_code, created_at)
    SELECT user_id, key, fingerprint, appointment_id, status_code, created_at FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys__strict RENAME TO idempotency_keys;

CREATE TABLE audit_log__strict (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id TEXT NOT NULL,
    actor_id       TEXT,
    at             TEXT NOT NULL,
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    from_start     INTEGER,
    to_start       INTEGER,
    detail         TEXT
) STRICT;
INSERT INTO audit_log__strict (id, appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
    SELECT id, appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log__strict RENAME TO audit_log;

CREATE TABLE outbox__strict (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT
) STRICT;
INSERT INTO outbox__strict (id, event_id, topic, payload, created_at, attempts, delivered_at)
    SELECT id, event_id, topic, payload, created_at, attempts, delivered_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox__strict RENAME TO outbox;

CREATE TABLE deliveries__strict (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    recipient       TEXT NOT NULL,  -- an e-mail address, or a webhook id
    kind            TEXT NOT NULL,  -- booked, rescheduled, cancelled, reminder, waitlist_offer, or the webhook event type
    event_id        TEXT NOT NULL,
    appointment_id  TEXT,
    clinic_id       TEXT,
    payload         TEXT NOT NULL,  -- JSON: what the message says (the event, or the reminder's appointment)
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    last_error      TEXT,
    last_status     INTEGER,        -- the receiver's HTTP status, for webhooks
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
) STRICT;
INSERT INTO deliveries__strict (id, dedup_key, channel, recipient, kind, event_id, appointment_id, clinic_id, payload, status, attempts, next_attempt_at, claimed_by, claimed_until, last_error, last_status, created_at, delivered_at)
    SELECT id, dedup_key, channel, recipient, kind, event_id, appointment_id, clinic_id, payload, status, attempts, next_attempt_at, claimed_by, claimed_until, last_error, last_status, created_at, delivered_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries__strict RENAME TO deliveries;

CREATE TABLE notifications__strict (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id),
    dedup_key      TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    appointment_id TEXT,
    link           TEXT,
    created_at     TEXT NOT NULL,
    read_at        TEXT
) STRICT;
INSERT INTO notifications__strict (id, user_id, dedup_key, kind, title, body, appointment_id, link, created_at, read_at)
    SELECT id, user_id, dedup_key, kind, title, body, appointment_id, link, created_at, read_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications__strict RENAME TO notifications;

CREATE TABLE webhooks__strict (
    id         TEXT PRIMARY KEY,
    clinic_id  TEXT NOT NULL REFERENCES clinics(id),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,  -- JSON array of event types
    active     INTEGER NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO webhooks__strict (id, clinic_id, url, secret, events, active, created_at)
    SELECT id, clinic_id, url, secret, events, active, created_at FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks__strict RENAME TO webhooks;

CREATE TABLE waitlist__strict (
    id                     TEXT PRIMARY KEY,
    doctor_id              TEXT NOT NULL REFERENCES doctors(id),
    patient_id             TEXT NOT NULL REFERENCES users(id),
    not_before             INTEGER,
    not_after              INTEGER,
    mode                   TEXT CHECK (mode IN ('in_person', 'online')),
    status                 TEXT NOT NULL CHECK (status IN ('waiting', 'offered', 'booked', 'left')),
    offered_appointment_id TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
) STRICT;
INSERT INTO waitlist__strict (id, doctor_id, patient_id, not_before, not_after, mode, status, offered_appointment_id, created_at, updated_at)
    SELECT id, doctor_id, patient_id, not_before, not_after, mode, status, offered_appointment_id, created_at, updated_at FROM waitlist;
DROP TABLE waitlist;
ALTER TABLE waitlist__strict RENAME TO waitlist;

CREATE TABLE waitlist_offers__strict (
    entry_id       TEXT NOT NULL REFERENCES waitlist(id),
    start_at       INTEGER NOT NULL,
    appointment_id TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (entry_id, start_at)
) STRICT;
INSERT INTO waitlist_offers__strict (entry_id, start_at, appointment_id, created_at)
    SELECT entry_id, start_at, appointment_id, created_at FROM waitlist_offers;
DROP TABLE waitlist_offers;
ALTER TABLE waitlist_offers__strict RENAME TO waitlist_offers;

CREATE TABLE calendar_feeds__strict (
    doctor_id  TEXT PRIMARY KEY REFERENCES doctors(id),
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO calendar_feeds__strict (doctor_id, token_hash, created_at)
    SELECT doctor_id, token_hash, created_at FROM calendar_feeds;
DROP TABLE calendar_feeds;
ALTER TABLE calendar_feeds__strict RENAME TO calendar_feeds;

CREATE TABLE replica_busy__strict (
    region    TEXT NOT NULL,
    doctor_id TEXT NOT NULL,
    start_at  INTEGER NOT NULL,
    end_at    INTEGER NOT NULL
) STRICT;
INSERT INTO replica_busy__strict (region, doctor_id, start_at, end_at)
    SELECT region, doctor_id, start_at, end_at FROM replica_busy;
DROP TABLE replica_busy;
ALTER TABLE replica_busy__strict RENAME TO replica_busy;

CREATE TABLE replicas__strict (
    region    TEXT PRIMARY KEY,
    as_of     TEXT NOT NULL,
    synced_at TEXT NOT NULL
) STRICT;
INSERT INTO replicas__strict (region, as_of, synced_at)
    SELECT region, as_of, synced_at FROM replicas;
DROP TABLE replicas;
ALTER TABLE replicas__strict RENAME TO replicas;

CREATE TABLE forwards__strict (
    id              TEXT PRIMARY KEY,
    region          TEXT NOT NULL,
    patient_id      TEXT NOT NULL REFERENCES users(id),
    doctor_id       TEXT NOT NULL,
    start_at        INTEGER NOT NULL,
    end_at          INTEGER NOT NULL,
    mode            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    idempotency_key TEXT,
    fingerprint     TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'booked', 'conflict')),
    detail          TEXT,           -- JSON: the home region's answer
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    resolved_at     TEXT
) STRICT;
INSERT INTO forwards__strict (id, region, patient_id, doctor_id, start_at, end_at, mode, reason, idempotency_key, fingerprint, status, detail, attempts, created_at, resolved_at)
    SELECT id, region, patient_id, doctor_id, start_at, end_at, mode, reason, idempotency_key, fingerprint, status, detail, attempts, created_at, resolved_at FROM forwards;
DROP TABLE forwards;
ALTER TABLE forwards__strict RENAME TO forwards;

-- The indexes and triggers, as they were.
CREATE INDEX tokens_user ON tokens(user_id);
CREATE INDEX clinics_position ON clinics(latitude, longitude);
CREATE INDEX clinic_admins_user ON clinic_admins(user_id);
CREATE INDEX doctors_clinic ON doctors(clinic_id);
CREATE INDEX doctors_verification ON doctors(verification);
CREATE INDEX doctor_tags_doctor ON doctor_tags(doctor_id);
CREATE INDEX time_off_doctor ON time_off(doctor_id, start_at);
CREATE INDEX appointments_doctor_time ON appointments(doctor_id, start_at);
CREATE INDEX appointments_patient ON appointments(patient_id, start_at);
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
CREATE INDEX audit_log_appointment ON audit_log(appointment_id, id);
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE INDEX outbox_undelivered ON outbox(delivered_at, id);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
CREATE INDEX deliveries_recipient ON deliveries(recipient, id);
CREATE INDEX notifications_user ON notifications(user_id, created_at);
CREATE INDEX webhooks_clinic ON webhooks(clinic_id);
CREATE INDEX waitlist_doctor ON waitlist(doctor_id, status, created_at);
CREATE INDEX waitlist_patient ON waitlist(patient_id);
CREATE INDEX appointments_start ON appointments(start_at);
CREATE INDEX replica_busy_doctor ON replica_busy(doctor_id, start_at);
CREATE INDEX replica_busy_region ON replica_busy(region);
CREATE UNIQUE INDEX forwards_key ON forwards(patient_id, idempotency_key);
CREATE INDEX forwards_pending ON forwards(status, created_at);
CREATE INDEX forwards_patient ON forwards(patient_id, start_at);
CREATE INDEX appointments_origin ON appointments(origin_region, end_at);
CREATE INDEX appointments_held_by_patient ON appointments(patient_id, hold_expires_at) WHERE status = 'held';
CREATE INDEX appointments_held_by_doctor ON appointments(doctor_id, hold_expires_at) WHERE status = 'held';
CREATE INDEX doctors_licence ON doctors(licence_number);
