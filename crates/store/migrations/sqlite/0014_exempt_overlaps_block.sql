-- Migration 13 compared an appointment under the patient rule only with the
-- patient's other appointments under it, so a new booking could overlap one
-- the upgrade had exempted (an overlap made under the old rule). The
-- patient's triggers now compare it with every live appointment of the
-- patient, exempt or not; the exempt ones themselves stay as they are.
DROP TRIGGER appointments_patient_no_overlap_insert;
DROP TRIGGER appointments_patient_no_overlap_update;
CREATE TRIGGER appointments_patient_no_overlap_insert
BEFORE INSERT ON appointments
WHEN NEW.status IN ('held', 'pending', 'booked', 'arrived') AND NEW.patient_overlap_allowed = 0
BEGIN
    SELECT RAISE(ABORT, 'appointments_patient_no_overlap')
    WHERE EXISTS (
        SELECT 1 FROM appointments a
        WHERE a.patient_id = NEW.patient_id
          AND a.status IN ('held', 'pending', 'booked', 'arrived')
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
