-- Transcript retention: rows whose free text has been redacted after the retention period are marked, so each is
-- rewritten once.
ALTER TABLE events ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE handoffs ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_unredacted ON events (created_at) WHERE redacted = 0;
