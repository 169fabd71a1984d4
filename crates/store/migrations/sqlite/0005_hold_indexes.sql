-- Live holds, by patient (the "too many holds" count on every booking) and by
-- doctor (expiring them before each write): without these, both read every
-- appointment the patient or doctor ever had.
CREATE INDEX appointments_held_by_patient ON appointments(patient_id, hold_expires_at) WHERE status = 'held';
CREATE INDEX appointments_held_by_doctor ON appointments(doctor_id, hold_expires_at) WHERE status = 'held';
