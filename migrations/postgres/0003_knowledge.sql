-- The knowledge base's source of truth once loket has started: FAQ entries with their revision history, seeded
-- from knowledge-base/faq on first start. Retired entries stay (with their history) but are not served.
CREATE TABLE faqs (
    id         TEXT PRIMARY KEY NOT NULL,
    category   TEXT NOT NULL,
    skill      TEXT NOT NULL,
    content    TEXT NOT NULL,               -- JSON: per language code the question, phrasings and answer
    revision   BIGINT NOT NULL,             -- 1 on creation, +1 per change: the optimistic-concurrency tag
    retired    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL,             -- Unix milliseconds
    updated_by TEXT NOT NULL
);
CREATE INDEX faqs_by_category ON faqs (category, id);

-- Every change to an entry, with the entry as it was after the change. The version orders all changes and is the
-- knowledge version a trained model is stamped with; writers take one advisory lock, so versions commit in order.
CREATE TABLE faq_revisions (
    version  BIGSERIAL PRIMARY KEY,
    faq_id   TEXT NOT NULL,
    revision BIGINT NOT NULL,
    action   TEXT NOT NULL,                 -- create | update | retire | import
    author   TEXT NOT NULL,
    at       BIGINT NOT NULL,
    snapshot TEXT NOT NULL,                 -- JSON of the entry after the change
    UNIQUE (faq_id, revision)
);

-- Customer questions the bot could not answer well (handed off or clarified), already redacted of personal data.
CREATE TABLE knowledge_gaps (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    language        TEXT NOT NULL,
    text            TEXT NOT NULL,
    reason          TEXT NOT NULL,          -- the decision: low_confidence | repeated_failure | clarify
    best_faq        TEXT,                   -- what retrieval or the model thought closest, if anything
    created_at      BIGINT NOT NULL,
    resolved_at     BIGINT,
    resolved_faq    TEXT                    -- the entry the question was attached to or created as
);
CREATE INDEX knowledge_gaps_open ON knowledge_gaps (resolved_at, created_at);
