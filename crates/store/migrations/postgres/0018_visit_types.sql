-- Visit types. A doctor's visit types (name, length, modes, who may book
-- them online, intake questions) are part of the doctor's profile, read with
-- it wherever slots are computed and copied with it to the other regions, so
-- they are kept with it: a JSON list the application checks before writing.
ALTER TABLE doctors ADD COLUMN visit_types jsonb NOT NULL DEFAULT '[]';

-- An appointment keeps the visit type it was booked for (its code, and its
-- name as the patient saw it) and the patient's answers to its intake
-- questions, each with the question as it was asked.
ALTER TABLE appointments ADD COLUMN visit_type text,
                         ADD COLUMN visit_type_name text,
                         ADD COLUMN intake jsonb;

-- A booking forwarded to another region keeps its visit, to send it again.
ALTER TABLE forwards ADD COLUMN visit jsonb;

-- The booking function, as migration 16 made it, but for the visit it
-- writes (on a new row, and on a hold it confirms) and returns.
DROP FUNCTION place_appointment(uuid, uuid, uuid, timestamptz, timestamptz, text, text, text, timestamptz, text,
                                timestamptz, text, text, integer, jsonb, jsonb, text);
CREATE FUNCTION place_appointment(
    p_id uuid, p_doctor uuid, p_patient uuid, p_start timestamptz, p_end timestamptz, p_mode text,
    p_reason text, p_status text, p_hold_expires timestamptz, p_origin text, p_now timestamptz,
    p_key text, p_fingerprint text, p_max_holds integer, p_created jsonb, p_confirmed jsonb, p_video_room text,
    p_visit_type text, p_visit_type_name text, p_intake jsonb)
RETURNS TABLE (
    outcome text, status_code integer, expired bigint,
    a_id uuid, a_doctor_id uuid, a_patient_id uuid, a_start_at timestamptz, a_end_at timestamptz, a_mode text,
    a_reason text, a_status text, a_version bigint, a_origin_region text, a_hold_expires_at timestamptz,
    a_cancel_reason text, a_cancelled_by uuid, a_created_at timestamptz, a_updated_at timestamptz,
    a_video_room text, a_visit_type text, a_visit_type_name text, a_intake jsonb)
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
                   visit_type = p_visit_type, visit_type_name = p_visit_type_name, intake = p_intake,
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
                                      origin_region, hold_expires_at, created_at, updated_at, video_room,
                                      visit_type, visit_type_name, intake)
            VALUES (p_id, p_doctor, p_patient, p_start, p_end, p_mode, p_reason, p_status, 1,
                    p_origin, p_hold_expires, p_now, p_now, p_video_room, p_visit_type, p_visit_type_name, p_intake);
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
               a.cancelled_by, a.created_at, a.updated_at, a.video_room, a.visit_type, a.visit_type_name, a.intake
        FROM appointments a WHERE a.id = v_id;
END $$;
