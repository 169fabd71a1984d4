-- Notifications (P6): each outbox event fans out, in one transaction, into
-- deliveries (one message to one recipient over one channel) and in-app
-- notifications; reminders and waitlist offers join the same queue.

-- One message to one recipient. `dedup_key` is unique: a fan-out or a reminder
-- scan that runs twice (two workers, a restart) inserts nothing the second time.
-- It is also what the receiver sees (Message-ID, webhook event id), so a send
-- retried after a crash can be recognised as the same message.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key       TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    recipient       TEXT NOT NULL,  -- an e-mail address, or a webhook id
    kind            TEXT NOT NULL,  -- booked, rescheduled, cancelled, reminder, waitlist_offer, or the webhook event type
    event_id        TEXT NOT NULL,
    appointment_id  TEXT,
    clinic_id       TEXT,
    payload         TEXT NOT NULL,  -- JSON: what the message says (the event, or the reminder's appointment)
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'skipped')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    last_error      TEXT,
    last_status     BIGINT,        -- the receiver's HTTP status, for webhooks
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
CREATE INDEX deliveries_recipient ON deliveries(recipient, id);

-- What a user sees in the app.
CREATE TABLE notifications (
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
);
CREATE INDEX notifications_user ON notifications(user_id, created_at);

-- A clinic's webhook subscriptions; the secret signs every delivery (HMAC-SHA256).
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    clinic_id  TEXT NOT NULL REFERENCES clinics(id),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,  -- JSON array of event types
    active     BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_clinic ON webhooks(clinic_id);

-- Patients waiting for a doctor, first come first offered.
CREATE TABLE waitlist (
    id                     TEXT PRIMARY KEY,
    doctor_id              TEXT NOT NULL REFERENCES doctors(id),
    patient_id             TEXT NOT NULL REFERENCES users(id),
    not_before             BIGINT,
    not_after              BIGINT,
    mode                   TEXT CHECK (mode IN ('in_person', 'online')),
    status                 TEXT NOT NULL CHECK (status IN ('waiting', 'offered', 'booked', 'left')),
    offered_appointment_id TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX waitlist_doctor ON waitlist(doctor_id, status, created_at);
CREATE INDEX waitlist_patient ON waitlist(patient_id);

-- Every offer made: a slot is offered to each waiting patient at most once.
CREATE TABLE waitlist_offers (
    entry_id       TEXT NOT NULL REFERENCES waitlist(id),
    start_at       BIGINT NOT NULL,
    appointment_id TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (entry_id, start_at)
);

-- The secret of each doctor's calendar feed (only its SHA-256 is kept).
CREATE TABLE calendar_feeds (
    doctor_id  TEXT PRIMARY KEY REFERENCES doctors(id),
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The reminder scan looks for appointments starting soon, across all doctors.
CREATE INDEX appointments_start ON appointments(start_at);
