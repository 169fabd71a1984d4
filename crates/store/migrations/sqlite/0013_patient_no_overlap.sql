-- A patient holds at most one live appointment at any instant: two doctors
-- can no longer both accept the same patient for the same minutes. As for
-- doctors (P1), triggers decide, under SQLite's single write lock.
--
-- Appointments that already overlapped another of the same patient when this
-- migration ran were made under the old rule; they are kept as they are and
-- left out of the rule (patient_overlap_allowed). Moving one of them brings it
-- under the rule.
ALTER TABLE appointments ADD COLUMN patient_overlap_allowed INTEGER NOT NULL DEFAULT 0 CHECK (patient_overlap_allowed IN (0, 1));
UPDATE appointments SET patient_overlap_allowed = 1
 WHERE status IN ('held', 'pending', 'booked', 'arrived')
   AND EXISTS (SELECT 1 FROM appointments b
                WHERE b.patient_id = appointments.patient_id AND b.id <> appointments.id
                  AND b.status IN ('held', 'pending', 'booked', 'arrived')
                  AND b.start_at < appointments.end_at AND appointments.start_at < b.end_at);

CREATE TRIGGER appointments_patient_no_overlap_insert
BEFORE INSERT ON appointments
WHEN NEW.status IN ('held', 'pending', 'booked', 'arrived') AND NEW.patient_overlap_allowed = 0
BEGIN
    SELECT RAISE(ABORT, 'appointments_patient_no_overlap')
    WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.patient_id = NEW.patient_id
          AND a.status IN ('held', 'pending', 'booked', 'arrived')
          AND a.patient_overlap_allowed = 0
          AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at
    );
END;

CREATE TRIGGER appointments_patient_no_overlap_update
BEFORE UPDATE OF patient_id, start_at, end_at, status, patient_overlap_allowed ON appointments
WHEN NEW.status IN ('held', 'pending', 'booked', 'arrived') AND NEW.patient_overlap_allowed = 0
BEGIN
    SELECT RAISE(ABORT, 'appointments_patient_no_overlap')
    WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.patient_id = NEW.patient_id
          AND a.id <> NEW.id
          AND a.status IN ('held', 'pending', 'booked', 'arrived')
          AND a.patient_overlap_allowed = 0
          AND a.start_at < NEW.end_at AND NEW.start_at < a.end_at
    );
END;

-- SQLite fires the newest trigger first; the doctor's triggers are made again
-- after the patient's, so that a slot taken is reported as such (P1) before
-- the patient's own time is considered.
DROP TRIGGER appointments_no_overlap_insert;
DROP TRIGGER appointments_no_overlap_update;
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
