-- A patient holds at most one live appointment at any instant: two doctors
-- can no longer both accept the same patient for the same minutes. Like P1
-- for doctors, the database decides, with an exclusion constraint over the
-- patient's live appointments.
--
-- Appointments that already overlapped another of the same patient when this
-- migration ran were made under the old rule; they are kept as they are and
-- left out of the constraint (patient_overlap_allowed). Moving one of them
-- brings it under the rule.
ALTER TABLE appointments ADD COLUMN patient_overlap_allowed boolean NOT NULL DEFAULT false;
UPDATE appointments a SET patient_overlap_allowed = true
 WHERE a.status IN ('held', 'pending', 'booked', 'arrived')
   AND EXISTS (SELECT 1 FROM appointments b
                WHERE b.patient_id = a.patient_id AND b.id <> a.id
                  AND b.status IN ('held', 'pending', 'booked', 'arrived')
                  AND b.during && a.during);
ALTER TABLE appointments ADD CONSTRAINT appointments_patient_no_overlap
    EXCLUDE USING gist (patient_id WITH =, during WITH &&)
    WHERE (status IN ('held', 'pending', 'booked', 'arrived') AND NOT patient_overlap_allowed);

-- The booking function releases the patient's own holds that ran out, as well
-- as the doctor's, before it writes: a hold the patient let lapse at another
-- doctor does not stand in the way of their next booking.
CREATE OR REPLACE FUNCTION medislot_expire_holds(p_doctor uuid, p_patient uuid, p_now timestamptz)
RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        UPDATE appointments SET status = 'cancelled', cancel_reason = 'hold expired', hold_expires_at = NULL,
               version = version + 1, updated_at = p_now
        WHERE (doctor_id = p_doctor OR patient_id = p_patient) AND status = 'held' AND hold_expires_at <= p_now
        RETURNING id, start_at),
    audited AS (
        INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
        SELECT id, NULL, p_now, 'held', 'cancelled', start_at, start_at, 'hold expired' FROM gone
        RETURNING 1)
    SELECT count(*) FROM audited
$$;

-- The booking function, as migration 10 made it, but for the holds it
-- releases first (above). A patient already busy at that time gets 23P01 from
-- appointments_patient_no_overlap.
CREATE OR REPLACE FUNCTION place_appointment(
    p_id uuid, p_doctor uuid, p_patient uuid, p_start timestamptz, p_end timestamptz, p_mode text,
    p_reason text, p_status text, p_hold_expires timestamptz, p_origin text, p_now timestamptz,
    p_key text, p_fingerprint text, p_max_holds integer, p_created jsonb, p_confirmed jsonb)
RETURNS TABLE (
    outcome text, status_code integer, expired bigint,
    a_id uuid, a_doctor_id uuid, a_patient_id uuid, a_start_at timestamptz, a_end_at timestamptz, a_mode text,
    a_reason text, a_status text, a_version bigint, a_origin_region text, a_hold_expires_at timestamptz,
    a_cancel_reason text, a_cancelled_by uuid, a_created_at timestamptz, a_updated_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_outcome text := 'created';
    v_code integer := 201;
    v_expired bigint := 0;
    v_id uuid := p_id;
    v_seen record;
    v_hold appointments%ROWTYPE;
    v_holds bigint;
BEGIN
    IF p_status IN ('booked', 'held')
       AND NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.user_id = p_patient AND k.key = p_key)
       AND NOT EXISTS (SELECT 1 FROM appointments h WHERE h.patient_id = p_patient AND h.status = 'held')
       AND EXISTS (SELECT 1 FROM appointments a
                   WHERE a.doctor_id = p_doctor AND a.status IN ('held', 'pending', 'booked', 'arrived')
                     AND a.during && tstzrange(p_start, p_end, '[)')
                     AND NOT (a.status = 'held' AND a.hold_expires_at <= p_now)) THEN
        RAISE EXCLUSION_VIOLATION USING MESSAGE = 'appointments_no_overlap', CONSTRAINT = 'appointments_no_overlap';
    END IF;

    IF p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('idempotency:' || p_patient || ':' || p_key, 0));
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('doctor:' || p_doctor, 0));

    v_expired := medislot_expire_holds(p_doctor, p_patient, p_now);

    IF p_key IS NOT NULL THEN
        SELECT k.fingerprint, k.appointment_id, k.status_code INTO v_seen
        FROM idempotency_keys k WHERE k.user_id = p_patient AND k.key = p_key;
        IF FOUND THEN
            IF v_seen.fingerprint <> p_fingerprint THEN
                RAISE EXCEPTION 'idempotency key reused with a different request' USING ERRCODE = 'MS001';
            END IF;
            v_outcome := 'replayed';
            v_code := v_seen.status_code;
            v_id := v_seen.appointment_id;
        END IF;
    END IF;

    IF v_outcome = 'created' THEN
        IF p_status = 'booked' THEN
            SELECT * INTO v_hold FROM appointments h
            WHERE h.doctor_id = p_doctor AND h.patient_id = p_patient AND h.start_at = p_start AND h.status = 'held';
        ELSE
            SELECT count(*) INTO v_holds FROM appointments h
            WHERE h.patient_id = p_patient AND h.status = 'held' AND h.hold_expires_at > p_now;
            IF v_holds >= p_max_holds THEN
                RAISE EXCEPTION 'the patient already holds % slots', p_max_holds USING ERRCODE = 'MS002';
            END IF;
        END IF;

        IF v_hold.id IS NOT NULL THEN
            -- Compare-and-swap: only a still-held row of this version becomes booked.
            UPDATE appointments SET status = 'booked', end_at = p_end, mode = p_mode, reason = p_reason,
                   hold_expires_at = NULL, version = version + 1, updated_at = p_now
            WHERE id = v_hold.id AND status = 'held' AND version = v_hold.version;
            IF NOT FOUND THEN
                RAISE EXCLUSION_VIOLATION USING MESSAGE = 'appointments_no_overlap', CONSTRAINT = 'appointments_no_overlap';
            END IF;
            v_id := v_hold.id;
            INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
            VALUES (v_id, p_patient, p_now, 'held', 'booked', v_hold.start_at, v_hold.start_at, 'hold confirmed');
            INSERT INTO outbox (event_id, topic, payload, created_at)
            VALUES ((p_confirmed ->> 'event_id')::uuid, p_confirmed ->> 'type',
                    jsonb_set(jsonb_set(p_confirmed, '{appointment_id}', to_jsonb(v_id)),
                              '{version}', to_jsonb(v_hold.version + 1)),
                    p_now);
        ELSE
            INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                      origin_region, hold_expires_at, created_at, updated_at)
            VALUES (p_id, p_doctor, p_patient, p_start, p_end, p_mode, p_reason, p_status, 1,
                    p_origin, p_hold_expires, p_now, p_now);
            INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
            VALUES (p_id, p_patient, p_now, NULL, p_status, NULL, p_start, NULL);
            INSERT INTO outbox (event_id, topic, payload, created_at)
            VALUES ((p_created ->> 'event_id')::uuid, p_created ->> 'type', p_created, p_now);
        END IF;

        IF p_key IS NOT NULL THEN
            INSERT INTO idempotency_keys (user_id, key, fingerprint, appointment_id, status_code, created_at)
            VALUES (p_patient, p_key, p_fingerprint, v_id, 201, p_now);
        END IF;
    END IF;

    PERFORM set_config('statement_timeout', '0', true);
    RETURN QUERY
        SELECT v_outcome, v_code, v_expired, a.id, a.doctor_id, a.patient_id, a.start_at, a.end_at, a.mode,
               a.reason, a.status, a.version, a.origin_region, a.hold_expires_at, a.cancel_reason,
               a.cancelled_by, a.created_at, a.updated_at
        FROM appointments a WHERE a.id = v_id;
END $$;
