-- Search's read model (see store/src/search.rs): per doctor, the compact
-- free times it is computed from; per doctor and specialty ('' for searches
-- without one), what search filters and orders on, with B-tree indexes in
-- the order search reads them and a GiST index over the specialty and the
-- place (earthdistance's cube on the earth's surface) for radius searches.

CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;

CREATE TABLE search_free (
    doctor_id   uuid PRIMARY KEY,
    computed_at timestamptz NOT NULL,
    refresh_at  timestamptz NOT NULL,
    free        bytea NOT NULL
);
CREATE INDEX search_free_refresh ON search_free (refresh_at);

CREATE TABLE search_entries (
    doctor_id      uuid NOT NULL,
    specialty      text COLLATE "C" NOT NULL,
    name           text COLLATE "C" NOT NULL,  -- byte order, as the application sorts
    latitude       double precision NOT NULL,
    longitude      double precision NOT NULL,
    place          earth GENERATED ALWAYS AS (ll_to_earth(latitude, longitude)) STORED,
    languages      text[] NOT NULL,
    modes          smallint NOT NULL,  -- 1 in person, 2 online
    next_any       timestamptz,
    next_in_person timestamptz,
    next_online    timestamptz,
    fresh_until    timestamptz,        -- the next start stops being bookable
    PRIMARY KEY (doctor_id, specialty)
);
CREATE INDEX search_entries_any ON search_entries (specialty, next_any, name, doctor_id);
CREATE INDEX search_entries_in_person ON search_entries (specialty, next_in_person, name, doctor_id);
CREATE INDEX search_entries_online ON search_entries (specialty, next_online, name, doctor_id);
CREATE INDEX search_entries_stale ON search_entries (specialty, fresh_until);
CREATE INDEX search_entries_place ON search_entries USING gist (specialty, place);
