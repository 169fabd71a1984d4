-- Doctors by licence number: a licence used by another active profile is refused
-- at sign-up and when a profile changes, and flagged in the verification queue.
CREATE INDEX doctors_licence ON doctors(licence_number);
