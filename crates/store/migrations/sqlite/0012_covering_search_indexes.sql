-- Search reads and counts from its indexes alone: each index also carries
-- what the filters test (modes, languages) and whether the row is fresh, so
-- counting the matches of a filter never looks up the table's rows (which,
-- at a million doctors, are mostly not in memory).
DROP INDEX search_entries_any;
DROP INDEX search_entries_in_person;
DROP INDEX search_entries_online;
DROP INDEX search_entries_stale;
CREATE INDEX search_entries_any ON search_entries(specialty, next_any, name, doctor_id, fresh_until, modes, languages);
CREATE INDEX search_entries_in_person ON search_entries(specialty, next_in_person, name, doctor_id, fresh_until, modes, languages);
CREATE INDEX search_entries_online ON search_entries(specialty, next_online, name, doctor_id, fresh_until, modes, languages);
CREATE INDEX search_entries_stale ON search_entries(specialty, fresh_until, modes, languages);
