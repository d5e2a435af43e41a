-- Conversations and their events (messages and state changes), numbered per conversation. The same schema as
-- migrations/sqlite, in PostgreSQL's types.
CREATE TABLE conversations (
    id             TEXT PRIMARY KEY NOT NULL,
    customer_id    TEXT NOT NULL,
    tier           TEXT NOT NULL,
    channel        TEXT NOT NULL,
    language       TEXT NOT NULL,
    language_fixed BOOLEAN NOT NULL,
    metadata       TEXT NOT NULL,           -- JSON object
    state          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,         -- Unix milliseconds
    updated_at     BIGINT NOT NULL,
    last_seq       BIGINT NOT NULL,
    memory         TEXT NOT NULL            -- JSON: what the dialogue policy remembers between turns
);
CREATE INDEX conversations_by_customer ON conversations (customer_id, created_at);
CREATE INDEX conversations_by_creation ON conversations (created_at);

CREATE TABLE events (
    conversation_id   TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    kind              TEXT NOT NULL,        -- message | state_change
    client_message_id TEXT,                 -- customer messages only
    body              TEXT NOT NULL,        -- JSON of the event body
    turn              TEXT,                 -- JSON of the whole SendMessage outcome, for idempotent replay
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX events_by_client_message ON events (conversation_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
