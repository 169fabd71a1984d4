-- Each replication pull reads the appointments a peer forwarded here, recent ones.
CREATE INDEX appointments_origin ON appointments(origin_region, end_at);
