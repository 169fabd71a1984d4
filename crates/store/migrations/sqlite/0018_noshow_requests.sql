-- The clinic's no-show rule: after `noshow_limit` no-shows at the clinic
-- within `noshow_period_days` (0: no rule), a patient's online booking there
-- is a request the clinic accepts or declines.
ALTER TABLE clinics ADD COLUMN noshow_limit INTEGER NOT NULL DEFAULT 0 CHECK (noshow_limit BETWEEN 0 AND 20);
ALTER TABLE clinics ADD COLUMN noshow_period_days INTEGER NOT NULL DEFAULT 365
    CHECK (noshow_period_days BETWEEN 1 AND 730);

-- Such a request is a `pending` appointment (it occupies its time, as
-- pending ones do) awaiting the clinic: `awaiting = 'clinic'` says so, until
-- the clinic accepts it (booked) or declines it (cancelled).
ALTER TABLE appointments ADD COLUMN awaiting TEXT CHECK (awaiting IS NULL OR awaiting = 'clinic');
