-- The appointments migration 14 exempted (a patient's overlaps made under the
-- old rule) are outside the exclusion constraint, so the constraint alone let
-- a new booking overlap one of them. This trigger refuses that: a live
-- appointment under the rule may not overlap an exempt live appointment of
-- the same patient.
--
-- No lock is needed: no appointment becomes exempt any more, and an exempt
-- one only ever leaves the exemption (moved) or stops being live
-- (cancelled), so what the trigger reads cannot turn against it. It runs
-- after the row is written, once the doctor's constraint has passed, so that
-- a slot taken is still reported as such first.
CREATE INDEX appointments_patient_exempt ON appointments (patient_id) WHERE patient_overlap_allowed;

CREATE FUNCTION medislot_exempt_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM appointments a
               WHERE a.patient_id = NEW.patient_id AND a.id <> NEW.id AND a.patient_overlap_allowed
                 AND a.status IN ('held', 'pending', 'booked', 'arrived')
                 AND a.during && NEW.during) THEN
        RAISE EXCLUSION_VIOLATION USING MESSAGE = 'appointments_patient_no_overlap',
                                        CONSTRAINT = 'appointments_patient_no_overlap';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER appointments_patient_exempt_overlap
AFTER INSERT OR UPDATE OF patient_id, start_at, end_at, status, patient_overlap_allowed ON appointments
FOR EACH ROW
WHEN (NEW.status IN ('held', 'pending', 'booked', 'arrived') AND NOT NEW.patient_overlap_allowed)
EXECUTE FUNCTION medislot_exempt_overlap();
