-- What changed since a given instant (the search keeper catching up after a
-- start, publishers answering `_since`) is read by these indexes instead of
-- a scan of every doctor and appointment; PostgreSQL has had them since its
-- native types.
CREATE INDEX doctors_updated ON doctors(updated_at);
CREATE INDEX appointments_updated ON appointments(updated_at);
