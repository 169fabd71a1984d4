-- The clinic's rules for its patients: how long before an appointment's start
-- they can no longer cancel or move it themselves (its staff still can).
-- Zero, every clinic's until it says otherwise: until the appointment starts.
ALTER TABLE clinics ADD COLUMN cancel_cutoff_minutes INTEGER NOT NULL DEFAULT 0
    CHECK (cancel_cutoff_minutes BETWEEN 0 AND 43200);
