-- Transcript retention: rows whose free text has been redacted after the retention period are marked, so each is
-- rewritten once.
ALTER TABLE events ADD COLUMN redacted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE handoffs ADD COLUMN redacted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE conversations ADD COLUMN redacted BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX events_unredacted ON events (created_at) WHERE NOT redacted;
