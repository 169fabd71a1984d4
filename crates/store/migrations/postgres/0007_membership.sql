-- A doctor joins a clinic with both sides' consent: a doctor's own request waits
-- for the clinic, a clinic's invitation of a doctor's account waits for the
-- doctor. Profiles from before this migration were already in their clinics.
ALTER TABLE doctors ADD COLUMN membership TEXT NOT NULL DEFAULT 'active'
    CHECK (membership IN ('requested', 'invited', 'active', 'declined'));
