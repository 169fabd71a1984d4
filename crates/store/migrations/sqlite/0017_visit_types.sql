-- Visit types. A doctor's visit types (name, length, modes, who may book
-- them online, intake questions) are part of the doctor's profile, read with
-- it wherever slots are computed and copied with it to the other regions, so
-- they are kept with it: a JSON list the application checks before writing.
ALTER TABLE doctors ADD COLUMN visit_types TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(visit_types));

-- An appointment keeps the visit type it was booked for (its code, and its
-- name as the patient saw it) and the patient's answers to its intake
-- questions, each with the question as it was asked.
ALTER TABLE appointments ADD COLUMN visit_type TEXT;
ALTER TABLE appointments ADD COLUMN visit_type_name TEXT;
ALTER TABLE appointments ADD COLUMN intake TEXT CHECK (intake IS NULL OR json_valid(intake));

-- A booking forwarded to another region keeps its visit, to send it again.
ALTER TABLE forwards ADD COLUMN visit TEXT CHECK (visit IS NULL OR json_valid(visit));
