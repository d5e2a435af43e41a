-- Hand-offs to human agents. The whole package is kept as JSON; the columns serve queue look-ups and KPIs.
CREATE TABLE handoffs (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    customer_id     TEXT NOT NULL,
    state           TEXT NOT NULL,           -- queued | claimed | resolved
    skill           TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    claimed_at      BIGINT,
    resolved_at     BIGINT,
    rating          BIGINT,                  -- 1..5 once rated
    record          TEXT NOT NULL            -- JSON of the whole hand-off
);
CREATE INDEX handoffs_by_state_skill ON handoffs (state, skill, priority DESC, created_at);
CREATE INDEX handoffs_by_conversation ON handoffs (conversation_id, created_at);
CREATE INDEX handoffs_by_claim ON handoffs (skill, claimed_at);
