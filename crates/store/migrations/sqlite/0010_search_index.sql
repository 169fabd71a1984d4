-- Search's read model (see store/src/search.rs): per doctor, the compact
-- free times it is computed from; per doctor and specialty ('' for searches
-- without one), what search filters and orders on, indexed; and the places
-- on an R*Tree whose first dimension is the specialty's code, so that one
-- index lookup finds a specialty within a box.

CREATE TABLE search_free (
    doctor_id   TEXT PRIMARY KEY,
    computed_at INTEGER NOT NULL,
    refresh_at  INTEGER NOT NULL,
    free        BLOB NOT NULL
) STRICT;
CREATE INDEX search_free_refresh ON search_free(refresh_at);

CREATE TABLE search_specialties (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE search_entries (
    id             INTEGER PRIMARY KEY,
    doctor_id      TEXT NOT NULL,
    specialty      TEXT NOT NULL,
    name           TEXT NOT NULL,
    latitude       REAL NOT NULL,
    longitude      REAL NOT NULL,
    languages      TEXT NOT NULL,     -- ' en fr ': each tag between spaces
    modes          INTEGER NOT NULL,  -- 1 in person, 2 online
    next_any       INTEGER,           -- Unix seconds
    next_in_person INTEGER,
    next_online    INTEGER,
    fresh_until    INTEGER,           -- the next start stops being bookable
    UNIQUE (doctor_id, specialty)
) STRICT;
CREATE INDEX search_entries_any ON search_entries(specialty, next_any, name, doctor_id);
CREATE INDEX search_entries_in_person ON search_entries(specialty, next_in_person, name, doctor_id);
CREATE INDEX search_entries_online ON search_entries(specialty, next_online, name, doctor_id);
CREATE INDEX search_entries_stale ON search_entries(specialty, fresh_until);

CREATE VIRTUAL TABLE search_places USING rtree(id, code_min, code_max, lat_min, lat_max, lon_min, lon_max);
