-- What the KPIs read, kept so that a 90-day series of 100,000 conversations is read in a fraction of a second
-- (issue 16: at most 500 ms) and so that keeping it costs the single writer little.

-- 1. Turn facts. loket writes a turn's facts itself, in the statement after its events, from the turn it already
-- holds: parsing the turn's JSON again in a trigger cost the writer 23-48 µs per customer message. The table is
-- rebuilt clustered by conversation (WITHOUT ROWID): one B-tree to write instead of a table and its key's index,
-- and a conversation's turns are read together.
DROP TRIGGER turn_facts_insert;
DROP TRIGGER turn_facts_update;
CREATE TABLE turn_facts_0011 (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,     -- the customer message's time, Unix milliseconds
    kind            TEXT NOT NULL,        -- the decision's kind: answer | clarify | handoff | ...
    intent          TEXT,                 -- the model's best intent, else search's best entry; NULL: none
    handoff_reason  TEXT,                 -- NULL unless the decision handed off
    answered_faqs   TEXT NOT NULL,        -- JSON array: the FAQ ids the bot's replies answered with, in order
    unanswered_text TEXT,                 -- the customer's text, only when the bot was not confident enough
    PRIMARY KEY (conversation_id, seq),
    FOREIGN KEY (conversation_id, seq) REFERENCES events (conversation_id, seq) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO turn_facts_0011 SELECT conversation_id, seq, created_at, kind, intent, handoff_reason, answered_faqs,
                                   unanswered_text FROM turn_facts;
DROP TABLE turn_facts;
ALTER TABLE turn_facts_0011 RENAME TO turn_facts;

-- Retention drops a turn's replay: its facts go with it (the conversation's summary below stays).
CREATE TRIGGER turn_facts_update AFTER UPDATE OF turn ON events WHEN NEW.turn IS NULL
BEGIN
    DELETE FROM turn_facts WHERE conversation_id = OLD.conversation_id AND seq = OLD.seq;
END;

-- `GetKpis`'s knowledge gaps: only the messages the bot was not confident enough to answer.
CREATE INDEX turn_facts_unanswered ON turn_facts (conversation_id)
    WHERE handoff_reason IN ('low_confidence', 'repeated_failure');

-- 2. One narrow row per conversation. Joining every conversation with its turn facts took 0.4-0.6 s in SQLite alone;
-- this is the same summary, kept by triggers, so every write path keeps it in step without knowing of it:
-- * a row per conversation, made with the conversation, following its language;
-- * a turn's facts make it a contact and set the flags and the last answered entry (only when one changes, so the
--   index below is rewritten rarely);
-- * a hand-off, or its transfer to another skill, sets the skill of the conversation's latest hand-off;
-- * retention, which drops a turn's replay and its facts, leaves the summary: it holds no personal data, and the
--   KPIs of an old range stay what they were;
-- * erasing a customer deletes the conversation, and this row with it.
CREATE TABLE conversation_stats (
    conversation_id   TEXT PRIMARY KEY NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at        INTEGER NOT NULL,           -- the conversation's start, Unix milliseconds
    channel           TEXT NOT NULL,
    tier              TEXT NOT NULL,
    language          TEXT NOT NULL,
    contact           INTEGER NOT NULL DEFAULT 0, -- 1: the customer wrote at least once
    clarified         INTEGER NOT NULL DEFAULT 0, -- 1: the bot asked a clarifying question at least once
    declined          INTEGER NOT NULL DEFAULT 0, -- 1: the bot declined an off-topic question at least once
    last_answered_faq TEXT,                       -- the last FAQ entry the bot answered with; NULL: none
    handoff_skill     TEXT                        -- the skill of its latest hand-off; NULL: never handed off
) WITHOUT ROWID;
-- Every KPI query reads a range of starts; the index carries every column so the table itself is not visited.
CREATE INDEX conversation_stats_by_creation ON conversation_stats
    (created_at, channel, tier, language, contact, clarified, declined, last_answered_faq, handoff_skill);

CREATE TRIGGER conversation_stats_insert AFTER INSERT ON conversations
BEGIN
    INSERT INTO conversation_stats (conversation_id, created_at, channel, tier, language)
    VALUES (NEW.id, NEW.created_at, NEW.channel, NEW.tier, NEW.language);
END;

CREATE TRIGGER conversation_stats_language AFTER UPDATE OF language ON conversations
WHEN NEW.language IS NOT OLD.language
BEGIN
    UPDATE conversation_stats SET language = NEW.language WHERE conversation_id = NEW.id;
END;

CREATE TRIGGER conversation_stats_turn AFTER INSERT ON turn_facts
BEGIN
    UPDATE conversation_stats
       SET contact = 1,
           clarified = max(clarified, NEW.kind = 'clarify'),
           declined = max(declined, NEW.kind = 'off_topic'),
           last_answered_faq = COALESCE(json_extract(NEW.answered_faqs, '$[#-1]'), last_answered_faq)
     WHERE conversation_id = NEW.conversation_id
       AND (contact = 0 OR (NEW.kind = 'clarify' AND clarified = 0) OR (NEW.kind = 'off_topic' AND declined = 0)
            OR (NEW.answered_faqs <> '[]' AND json_extract(NEW.answered_faqs, '$[#-1]') IS NOT last_answered_faq));
END;

INSERT INTO conversation_stats (conversation_id, created_at, channel, tier, language, contact, clarified, declined,
                                last_answered_faq)
SELECT c.id, c.created_at, c.channel, c.tier, c.language,
       EXISTS (SELECT 1 FROM turn_facts f WHERE f.conversation_id = c.id),
       EXISTS (SELECT 1 FROM turn_facts f WHERE f.conversation_id = c.id AND f.kind = 'clarify'),
       EXISTS (SELECT 1 FROM turn_facts f WHERE f.conversation_id = c.id AND f.kind = 'off_topic'),
       (SELECT json_extract(f.answered_faqs, '$[#-1]') FROM turn_facts f
         WHERE f.conversation_id = c.id AND f.answered_faqs <> '[]' ORDER BY f.seq DESC LIMIT 1)
  FROM conversations c;

-- 3. Hand-offs. From when an agent could pick one up: its creation, or for a callback ticket (opened outside
-- office hours) the opening time it was given. A column, so the wait KPIs read no hand-off JSON.
ALTER TABLE handoffs ADD COLUMN pickable_at INTEGER NOT NULL DEFAULT 0;
UPDATE handoffs
   SET pickable_at = CASE WHEN json_extract(record, '$.callback')
                          THEN max(created_at, json_extract(record, '$.expected_pickup_at'))
                          ELSE created_at END;
-- The KPIs read a range's hand-offs by their conversations; the index carries every column they read, so the
-- hand-offs' wide rows (the whole package as JSON) are not visited.
DROP INDEX handoffs_by_conversation;
CREATE INDEX handoffs_by_conversation ON handoffs
    (conversation_id, created_at, id, pickable_at, state, skill, reason, claimed_at, resolved_at, rating);

-- The skill of a conversation's latest hand-off (by creation, then id), kept as hand-offs open and move.
CREATE TRIGGER conversation_stats_handoff AFTER INSERT ON handoffs
BEGIN
    UPDATE conversation_stats
       SET handoff_skill = (SELECT h.skill FROM handoffs h WHERE h.conversation_id = NEW.conversation_id
                             ORDER BY h.created_at DESC, h.id DESC LIMIT 1)
     WHERE conversation_id = NEW.conversation_id;
END;

CREATE TRIGGER conversation_stats_transfer AFTER UPDATE OF skill ON handoffs
WHEN NEW.skill IS NOT OLD.skill
BEGIN
    UPDATE conversation_stats
       SET handoff_skill = (SELECT h.skill FROM handoffs h WHERE h.conversation_id = NEW.conversation_id
                             ORDER BY h.created_at DESC, h.id DESC LIMIT 1)
     WHERE conversation_id = NEW.conversation_id;
END;

UPDATE conversation_stats
   SET handoff_skill = (SELECT h.skill FROM handoffs h WHERE h.conversation_id = conversation_stats.conversation_id
                         ORDER BY h.created_at DESC, h.id DESC LIMIT 1);
