-- How a clinic is found and reached: the structured parts of its postal address
-- (the street line stays `address`) and its telephone number (E.164). Clinics
-- from before this migration have none of them until they are given.
ALTER TABLE clinics ADD COLUMN city TEXT;
ALTER TABLE clinics ADD COLUMN district TEXT;
ALTER TABLE clinics ADD COLUMN postal_code TEXT;
ALTER TABLE clinics ADD COLUMN country TEXT;
ALTER TABLE clinics ADD COLUMN phone TEXT;
