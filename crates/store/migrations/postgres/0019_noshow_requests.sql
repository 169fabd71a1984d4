-- The clinic's no-show rule: after `noshow_limit` no-shows at the clinic
-- within `noshow_period_days` (0: no rule), a patient's online booking there
-- is a request the clinic accepts or declines.
ALTER TABLE clinics ADD COLUMN noshow_limit integer NOT NULL DEFAULT 0 CHECK (noshow_limit BETWEEN 0 AND 20),
                    ADD COLUMN noshow_period_days integer NOT NULL DEFAULT 365
                        CHECK (noshow_period_days BETWEEN 1 AND 730);

-- Such a request is a `pending` appointment (it occupies its time, as
-- pending ones do) awaiting the clinic: `awaiting = 'clinic'` says so, until
-- the clinic accepts it (booked) or declines it (cancelled).
ALTER TABLE appointments ADD COLUMN awaiting text CHECK (awaiting IS NULL OR awaiting = 'clinic');

-- The booking function, as migration 18 made it, but for requests: it places
-- a `pending` appointment awaiting the clinic, or confirms the patient's own
-- hold as one; a retry of a request answers 202, as the request did. It
-- returns `awaiting` too, so it is dropped and made again.
DROP FUNCTION place_appointment(uuid, uuid, uuid, timestamptz, timestamptz, text, text, text, timestamptz, text,
                                timestamptz, text, text, integer, jsonb, jsonb, text, text, text, jsonb);
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
    a_video_room text, a_visit_type text, a_visit_type_name text, a_intake jsonb, a_awaiting text)
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
    IF p_status IN ('booked', 'pending', 'held')
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
        IF p_status IN ('booked', 'pending') THEN
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
            UPDATE appointments SET status = p_status, end_at = p_end, mode = p_mode, reason = p_reason,
                   visit_type = p_visit_type, visit_type_name = p_visit_type_name, intake = p_intake,
                   awaiting = CASE WHEN p_status = 'pending' THEN 'clinic' END,
                   hold_expires_at = NULL, version = version + 1, updated_at = p_now
            WHERE id = v_hold.id AND status = 'held' AND version = v_hold.version;
            IF NOT FOUND THEN
                RAISE EXCLUSION_VIOLATION USING MESSAGE = 'appointments_no_overlap', CONSTRAINT = 'appointments_no_overlap';
            END IF;
            v_id := v_hold.id;
            INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
            VALUES (v_id, p_patient, p_now, 'held', p_status, v_hold.start_at, v_hold.start_at,
                    CASE WHEN p_status = 'pending' THEN 'hold confirmed as a request to the clinic' ELSE 'hold confirmed' END);
            INSERT INTO outbox (event_id, topic, payload, created_at)
            VALUES ((p_confirmed ->> 'event_id')::uuid, p_confirmed ->> 'type',
                    jsonb_set(jsonb_set(p_confirmed, '{appointment_id}', to_jsonb(v_id)),
                              '{version}', to_jsonb(v_hold.version + 1)),
                    p_now);
        ELSE
            INSERT INTO appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                                      origin_region, hold_expires_at, created_at, updated_at, video_room,
                                      visit_type, visit_type_name, intake, awaiting)
            VALUES (p_id, p_doctor, p_patient, p_start, p_end, p_mode, p_reason, p_status, 1,
                    p_origin, p_hold_expires, p_now, p_now, p_video_room, p_visit_type, p_visit_type_name, p_intake,
                    CASE WHEN p_status = 'pending' THEN 'clinic' END);
            INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
            VALUES (p_id, p_patient, p_now, NULL, p_status, NULL, p_start, NULL);
            INSERT INTO outbox (event_id, topic, payload, created_at)
            VALUES ((p_created ->> 'event_id')::uuid, p_created ->> 'type', p_created, p_now);
        END IF;

        IF p_key IS NOT NULL THEN
            INSERT INTO idempotency_keys (user_id, key, fingerprint, appointment_id, status_code, created_at)
            VALUES (p_patient, p_key, p_fingerprint, v_id, CASE WHEN p_status = 'pending' THEN 202 ELSE 201 END, p_now);
        END IF;
    END IF;

    PERFORM set_config('statement_timeout', '0', true);
    RETURN QUERY
        SELECT v_outcome, v_code, v_expired, a.id, a.doctor_id, a.patient_id, a.start_at, a.end_at, a.mode,
               a.reason, a.status, a.version, a.origin_region, a.hold_expires_at, a.cancel_reason,
               a.cancelled_by, a.created_at, a.updated_at, a.video_room, a.visit_type, a.visit_type_name, a.intake,
               a.awaiting
        FROM appointments a WHERE a.id = v_id;
END $$;
