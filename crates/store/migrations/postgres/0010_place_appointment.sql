-- A booking or a hold in one call: the whole of Store::place, run by the
-- database, so that a booking costs one round trip (inside its transaction).
--
-- 1. A slot plainly taken (a live appointment of someone else overlaps it, and
--    neither an earlier use of the Idempotency-Key nor the patient's own hold
--    could decide otherwise) is refused from one read, before any lock: the
--    losers of a race do not queue behind the winner.
-- 2. Advisory locks on the idempotency key, then on the doctor (the order every
--    writer uses), the doctor's holds that ran out released with their audit rows.
-- 3. A replay of the key answers its first appointment; another request under
--    the same key is refused.
-- 4. The patient's own hold on the slot is confirmed (compare-and-swap), or a
--    row is inserted; the exclusion constraint appointments_no_overlap decides
--    P1 either way. Audit and outbox rows, and the key, are written with it.
--
-- The outbox payloads come from the caller, made by the one function that makes
-- them for every backend (medislot_store::outbox_payload); only a confirmed
-- hold's new version is known here, and set here.
--
-- Refusals are errors, so that nothing of the call is kept: 23P01 with the
-- constraint's name for a slot taken, MS001 for a reused key, MS002 for too
-- many holds. The caller commits; the commit may wait for a synchronous
-- standby as long as it takes (statement_timeout is lifted for the rest of the
-- transaction), since a cancelled wait would still report success.
CREATE FUNCTION place_appointment(
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

    WITH gone AS (
        UPDATE appointments SET status = 'cancelled', cancel_reason = 'hold expired', hold_expires_at = NULL,
               version = version + 1, updated_at = p_now
        WHERE doctor_id = p_doctor AND status = 'held' AND hold_expires_at <= p_now
        RETURNING id, start_at)
    INSERT INTO audit_log (appointment_id, actor_id, at, from_status, to_status, from_start, to_start, detail)
    SELECT id, NULL, p_now, 'held', 'cancelled', start_at, start_at, 'hold expired' FROM gone;
    GET DIAGNOSTICS v_expired = ROW_COUNT;

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
