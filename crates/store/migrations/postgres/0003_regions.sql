-- Regions (DESIGN §4). Each clinic has one home region that owns its doctors'
-- appointments; other regions keep a replica of its directory and busy times
-- (for local search), and a durable queue of bookings forwarded to it.

-- Busy time of doctors homed elsewhere, replaced wholesale on each sync from
-- their home region. Never under the overlap constraint: P1 is the home's.
CREATE TABLE replica_busy (
    region    TEXT NOT NULL,
    doctor_id TEXT NOT NULL,
    start_at  BIGINT NOT NULL,
    end_at    BIGINT NOT NULL
);
CREATE INDEX replica_busy_doctor ON replica_busy(doctor_id, start_at);
CREATE INDEX replica_busy_region ON replica_busy(region);

-- When each peer's replica was last brought up to date, and as of when.
CREATE TABLE replicas (
    region    TEXT PRIMARY KEY,
    as_of     TEXT NOT NULL,
    synced_at TEXT NOT NULL
);

-- Bookings of doctors homed elsewhere, made here: answered by the home region
-- at once (strict or reachable) or accepted as pending and forwarded later
-- (available). The id is the appointment's id at home.
CREATE TABLE forwards (
    id              TEXT PRIMARY KEY,
    region          TEXT NOT NULL,
    patient_id      TEXT NOT NULL REFERENCES users(id),
    doctor_id       TEXT NOT NULL,
    start_at        BIGINT NOT NULL,
    end_at          BIGINT NOT NULL,
    mode            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    idempotency_key TEXT,
    fingerprint     TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'booked', 'conflict')),
    detail          TEXT,           -- JSON: the home region's answer
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    resolved_at     TEXT
);
CREATE UNIQUE INDEX forwards_key ON forwards(patient_id, idempotency_key);
CREATE INDEX forwards_pending ON forwards(status, created_at);
CREATE INDEX forwards_patient ON forwards(patient_id, start_at);
