-- PostgreSQL's own types, in place, with the data: ids become uuid, times
-- timestamptz (bookkeeping times were RFC 3339 text, instants Unix seconds),
-- structured fields jsonb, a doctor's specialties, languages and modes text[]
-- (searched through GIN indexes, which replace the doctor_tags table), flags
-- boolean. Each appointment carries its time as a tstzrange, on which the
-- exclusion constraint (P1) now sits. E-mail addresses are unique whatever
-- their case. One transaction: a value that does not convert stops the
-- migration and leaves the database as it was.

-- References and the overlap constraint go first (they pin the old types)…
ALTER TABLE appointments DROP CONSTRAINT appointments_no_overlap;
ALTER TABLE appointments DROP CONSTRAINT appointments_doctor_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_patient_id_fkey;
ALTER TABLE calendar_feeds DROP CONSTRAINT calendar_feeds_doctor_id_fkey;
ALTER TABLE clinic_admins DROP CONSTRAINT clinic_admins_clinic_id_fkey;
ALTER TABLE clinic_admins DROP CONSTRAINT clinic_admins_user_id_fkey;
ALTER TABLE doctors DROP CONSTRAINT doctors_clinic_id_fkey;
ALTER TABLE doctors DROP CONSTRAINT doctors_user_id_fkey;
ALTER TABLE forwards DROP CONSTRAINT forwards_patient_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_user_id_fkey;
ALTER TABLE time_off DROP CONSTRAINT time_off_doctor_id_fkey;
ALTER TABLE tokens DROP CONSTRAINT tokens_user_id_fkey;
ALTER TABLE waitlist DROP CONSTRAINT waitlist_doctor_id_fkey;
ALTER TABLE waitlist DROP CONSTRAINT waitlist_patient_id_fkey;
ALTER TABLE waitlist_offers DROP CONSTRAINT waitlist_offers_entry_id_fkey;
ALTER TABLE webhooks DROP CONSTRAINT webhooks_clinic_id_fkey;
DROP TABLE doctor_tags;

-- A JSON array of strings, as text[] (ALTER … USING takes no subquery; a function may).
CREATE FUNCTION pg_temp.text_array(j text) RETURNS text[] LANGUAGE sql IMMUTABLE
    AS $$ SELECT coalesce(array_agg(e ORDER BY n), '{}') FROM jsonb_array_elements_text(j::jsonb) WITH ORDINALITY AS t(e, n) $$;

ALTER TABLE users
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

ALTER TABLE tokens
    ALTER COLUMN user_id TYPE uuid USING user_id::uuid,
    ALTER COLUMN expires_at TYPE timestamptz USING to_timestamp(expires_at),
    ALTER COLUMN revoked DROP DEFAULT,
    ALTER COLUMN revoked TYPE boolean USING revoked <> 0,
    ALTER COLUMN revoked SET DEFAULT false,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE clinics
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE clinic_admins
    ALTER COLUMN clinic_id TYPE uuid USING clinic_id::uuid,
    ALTER COLUMN user_id TYPE uuid USING user_id::uuid;

ALTER TABLE doctors
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN user_id TYPE uuid USING user_id::uuid,
    ALTER COLUMN clinic_id TYPE uuid USING clinic_id::uuid,
    ALTER COLUMN specialties TYPE text[] USING pg_temp.text_array(specialties),
    ALTER COLUMN languages TYPE text[] USING pg_temp.text_array(languages),
    ALTER COLUMN modes TYPE text[] USING pg_temp.text_array(modes),
    ALTER COLUMN schedule TYPE jsonb USING schedule::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN updated_at TYPE timestamptz USING updated_at::timestamptz;
ALTER TABLE doctors ADD CONSTRAINT doctors_modes_known CHECK (modes <@ ARRAY['in_person', 'online']);
CREATE INDEX doctors_specialties ON doctors USING gin (specialties);
CREATE INDEX doctors_languages ON doctors USING gin (languages);
CREATE INDEX doctors_updated ON doctors (updated_at);

ALTER TABLE time_off
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN doctor_id TYPE uuid USING doctor_id::uuid,
    ALTER COLUMN start_at TYPE timestamptz USING to_timestamp(start_at),
    ALTER COLUMN end_at TYPE timestamptz USING to_timestamp(end_at),
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE appointments
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN doctor_id TYPE uuid USING doctor_id::uuid,
    ALTER COLUMN patient_id TYPE uuid USING patient_id::uuid,
    ALTER COLUMN start_at TYPE timestamptz USING to_timestamp(start_at),
    ALTER COLUMN end_at TYPE timestamptz USING to_timestamp(end_at),
    ALTER COLUMN hold_expires_at TYPE timestamptz USING to_timestamp(hold_expires_at),
    ALTER COLUMN cancelled_by TYPE uuid USING cancelled_by::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN updated_at TYPE timestamptz USING updated_at::timestamptz;
ALTER TABLE appointments ADD COLUMN during tstzrange GENERATED ALWAYS AS (tstzrange(start_at, end_at, '[)')) STORED;
CREATE INDEX appointments_updated ON appointments (updated_at);

ALTER TABLE idempotency_keys
    ALTER COLUMN user_id TYPE uuid USING user_id::uuid,
    ALTER COLUMN appointment_id TYPE uuid USING appointment_id::uuid,
    ALTER COLUMN status_code TYPE integer,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE audit_log
    ALTER COLUMN appointment_id TYPE uuid USING appointment_id::uuid,
    ALTER COLUMN actor_id TYPE uuid USING actor_id::uuid,
    ALTER COLUMN at TYPE timestamptz USING at::timestamptz,
    ALTER COLUMN from_start TYPE timestamptz USING to_timestamp(from_start),
    ALTER COLUMN to_start TYPE timestamptz USING to_timestamp(to_start);
CREATE INDEX audit_log_at ON audit_log (at);

ALTER TABLE outbox
    ALTER COLUMN event_id TYPE uuid USING event_id::uuid,
    ALTER COLUMN payload TYPE jsonb USING payload::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN delivered_at TYPE timestamptz USING delivered_at::timestamptz;

ALTER TABLE deliveries
    ALTER COLUMN event_id TYPE uuid USING event_id::uuid,
    ALTER COLUMN appointment_id TYPE uuid USING appointment_id::uuid,
    ALTER COLUMN clinic_id TYPE uuid USING clinic_id::uuid,
    ALTER COLUMN payload TYPE jsonb USING payload::jsonb,
    ALTER COLUMN next_attempt_at TYPE timestamptz USING to_timestamp(next_attempt_at),
    ALTER COLUMN claimed_until TYPE timestamptz USING to_timestamp(claimed_until),
    ALTER COLUMN last_status TYPE integer,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN delivered_at TYPE timestamptz USING delivered_at::timestamptz;

ALTER TABLE notifications
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN user_id TYPE uuid USING user_id::uuid,
    ALTER COLUMN appointment_id TYPE uuid USING appointment_id::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN read_at TYPE timestamptz USING read_at::timestamptz;

ALTER TABLE webhooks
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN clinic_id TYPE uuid USING clinic_id::uuid,
    ALTER COLUMN events TYPE text[] USING pg_temp.text_array(events),
    ALTER COLUMN active TYPE boolean USING active <> 0,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE waitlist
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN doctor_id TYPE uuid USING doctor_id::uuid,
    ALTER COLUMN patient_id TYPE uuid USING patient_id::uuid,
    ALTER COLUMN not_before TYPE timestamptz USING to_timestamp(not_before),
    ALTER COLUMN not_after TYPE timestamptz USING to_timestamp(not_after),
    ALTER COLUMN offered_appointment_id TYPE uuid USING offered_appointment_id::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN updated_at TYPE timestamptz USING updated_at::timestamptz;

ALTER TABLE waitlist_offers
    ALTER COLUMN entry_id TYPE uuid USING entry_id::uuid,
    ALTER COLUMN start_at TYPE timestamptz USING to_timestamp(start_at),
    ALTER COLUMN appointment_id TYPE uuid USING appointment_id::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE calendar_feeds
    ALTER COLUMN doctor_id TYPE uuid USING doctor_id::uuid,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz;

ALTER TABLE replica_busy
    ALTER COLUMN doctor_id TYPE uuid USING doctor_id::uuid,
    ALTER COLUMN start_at TYPE timestamptz USING to_timestamp(start_at),
    ALTER COLUMN end_at TYPE timestamptz USING to_timestamp(end_at);

ALTER TABLE replicas
    ALTER COLUMN as_of TYPE timestamptz USING as_of::timestamptz,
    ALTER COLUMN synced_at TYPE timestamptz USING synced_at::timestamptz;

ALTER TABLE forwards
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN patient_id TYPE uuid USING patient_id::uuid,
    ALTER COLUMN doctor_id TYPE uuid USING doctor_id::uuid,
    ALTER COLUMN start_at TYPE timestamptz USING to_timestamp(start_at),
    ALTER COLUMN end_at TYPE timestamptz USING to_timestamp(end_at),
    ALTER COLUMN detail TYPE jsonb USING detail::jsonb,
    ALTER COLUMN created_at TYPE timestamptz USING created_at::timestamptz,
    ALTER COLUMN resolved_at TYPE timestamptz USING resolved_at::timestamptz;

-- …and come back on the new types.
ALTER TABLE appointments ADD CONSTRAINT appointments_no_overlap
    EXCLUDE USING gist (doctor_id WITH =, during WITH &&) WHERE (status IN ('held', 'pending', 'booked', 'arrived'));
ALTER TABLE appointments ADD CONSTRAINT appointments_doctor_id_fkey FOREIGN KEY (doctor_id) REFERENCES doctors(id);
ALTER TABLE appointments ADD CONSTRAINT appointments_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES users(id);
ALTER TABLE calendar_feeds ADD CONSTRAINT calendar_feeds_doctor_id_fkey FOREIGN KEY (doctor_id) REFERENCES doctors(id);
ALTER TABLE clinic_admins ADD CONSTRAINT clinic_admins_clinic_id_fkey FOREIGN KEY (clinic_id) REFERENCES clinics(id);
ALTER TABLE clinic_admins ADD CONSTRAINT clinic_admins_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id);
ALTER TABLE doctors ADD CONSTRAINT doctors_clinic_id_fkey FOREIGN KEY (clinic_id) REFERENCES clinics(id);
ALTER TABLE doctors ADD CONSTRAINT doctors_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id);
ALTER TABLE forwards ADD CONSTRAINT forwards_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES users(id);
ALTER TABLE notifications ADD CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id);
ALTER TABLE time_off ADD CONSTRAINT time_off_doctor_id_fkey FOREIGN KEY (doctor_id) REFERENCES doctors(id);
ALTER TABLE tokens ADD CONSTRAINT tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id);
ALTER TABLE waitlist ADD CONSTRAINT waitlist_doctor_id_fkey FOREIGN KEY (doctor_id) REFERENCES doctors(id);
ALTER TABLE waitlist ADD CONSTRAINT waitlist_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES users(id);
ALTER TABLE waitlist_offers ADD CONSTRAINT waitlist_offers_entry_id_fkey FOREIGN KEY (entry_id) REFERENCES waitlist(id);
ALTER TABLE webhooks ADD CONSTRAINT webhooks_clinic_id_fkey FOREIGN KEY (clinic_id) REFERENCES clinics(id);
