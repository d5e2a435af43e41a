-- Outbound webhooks' outbox: one row per event and configured webhook (a delivery), written in the transaction of
-- the change that causes it. The deliverer claims due rows with a lease, posts them and deletes each once its
-- receiver accepted it; one that used up its attempts stays, as failed, until an administrator redelivers it.
-- The same schema as migrations/sqlite, in PostgreSQL's types.
CREATE TABLE webhook_deliveries (
    seq             BIGSERIAL PRIMARY KEY,             -- commit order: the delivery order within an ordering key
    id              TEXT NOT NULL UNIQUE,              -- the delivery's id (header loket-delivery)
    event_id        TEXT NOT NULL,                     -- the event's id, the same for every webhook (loket-event-id)
    event           TEXT NOT NULL,                     -- handoff.created | handoff.claimed | ... (docs/webhooks.md)
    webhook         TEXT NOT NULL,                     -- the configured webhook's name
    ordering_key    TEXT NOT NULL,                     -- the conversation id, or faq:<id>: delivered in order per key
    -- Erasing a customer deletes their conversations and with them what is still to be sent about them.
    conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE,
    payload         TEXT NOT NULL,                     -- the JSON body, exactly as sent and signed
    created_at      BIGINT NOT NULL,                   -- Unix milliseconds
    state           TEXT NOT NULL,                     -- pending | failed (delivered rows are deleted)
    attempts        INTEGER NOT NULL DEFAULT 0,        -- attempts claimed, ever: numbers the attempt ids
    attempts_before INTEGER NOT NULL DEFAULT 0,        -- attempts made before the last redelivery
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,                              -- the deliverer posting it now, until lease_until
    lease_until     BIGINT,
    last_error      TEXT,                              -- why the last attempt failed
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook, seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook, ordering_key, seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (updated_at DESC, id DESC) WHERE state = 'failed';
CREATE INDEX webhook_deliveries_by_conversation ON webhook_deliveries (conversation_id);
