-- A dump of the database could not be restored: pg_restore fills
-- search_entries with an empty search_path, and the generated `place` column
-- called earthdistance's ll_to_earth, a plain SQL function whose body names
-- the `earth` type and `cube` functions unqualified ("type earth does not
-- exist"). The column is now computed by a wrapper that pins the search path
-- to the extensions' own schema, so a restore computes it like any insert.
DO $$
DECLARE
    ext_schema text;
BEGIN
    SELECT n.nspname INTO ext_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'earthdistance';
    EXECUTE format(
        $f$CREATE FUNCTION medislot_place(lat double precision, lon double precision) RETURNS %1$I.earth
           LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
           SET search_path = %1$I, pg_catalog
           AS 'SELECT ll_to_earth(lat, lon)'$f$,
        ext_schema);
END
$$;

-- Dropping the column drops its GiST index; both come back on the wrapper.
ALTER TABLE search_entries DROP COLUMN place;
ALTER TABLE search_entries ADD COLUMN place earth GENERATED ALWAYS AS (medislot_place(latitude, longitude)) STORED;
CREATE INDEX search_entries_place ON search_entries USING gist (specialty, place);
