-- What the KPIs read of a conversation, one narrow row each, so a 90-day series of 100,000 conversations is read
-- in a fraction of a second (issue 16: at most 500 ms). The same table, triggers and rules as SQLite's 0011:
-- * a row per conversation, made with the conversation, following its language;
-- * a turn's facts make it a contact and set the flags and the last answered entry (only when one changes);
-- * a hand-off, or its transfer to another skill, sets the skill of the conversation's latest hand-off;
-- * retention, which drops a turn's replay and its facts, leaves the summary: it holds no personal data, and the
--   KPIs of an old range stay what they were;
-- * erasing a customer deletes the conversation, and this row with it.
CREATE TABLE conversation_stats (
    conversation_id   TEXT PRIMARY KEY NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at        BIGINT NOT NULL,            -- the conversation's start, Unix milliseconds
    channel           TEXT NOT NULL,
    tier              TEXT NOT NULL,
    language          TEXT NOT NULL,
    contact           BOOLEAN NOT NULL DEFAULT FALSE, -- the customer wrote at least once
    clarified         BOOLEAN NOT NULL DEFAULT FALSE, -- the bot asked a clarifying question at least once
    declined          BOOLEAN NOT NULL DEFAULT FALSE, -- the bot declined an off-topic question at least once
    last_answered_faq TEXT,                       -- the last FAQ entry the bot answered with; NULL: none
    handoff_skill     TEXT                        -- the skill of its latest hand-off; NULL: never handed off
);
-- Every KPI query reads a range of starts; the index carries every column so the table itself is not visited.
CREATE INDEX conversation_stats_by_creation ON conversation_stats (created_at)
    INCLUDE (conversation_id, channel, tier, language, contact, clarified, declined, last_answered_faq, handoff_skill);

CREATE FUNCTION loket_conversation_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conversation_stats (conversation_id, created_at, channel, tier, language)
        VALUES (NEW.id, NEW.created_at, NEW.channel, NEW.tier, NEW.language);
    ELSIF NEW.language IS DISTINCT FROM OLD.language THEN
        UPDATE conversation_stats SET language = NEW.language WHERE conversation_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER conversation_stats AFTER INSERT OR UPDATE OF language ON conversations
    FOR EACH ROW EXECUTE FUNCTION loket_conversation_stats();

CREATE FUNCTION loket_conversation_stats_turn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversation_stats
       SET contact = TRUE,
           clarified = clarified OR NEW.kind = 'clarify',
           declined = declined OR NEW.kind = 'off_topic',
           last_answered_faq = COALESCE(NEW.answered_faqs::jsonb ->> -1, last_answered_faq)
     WHERE conversation_id = NEW.conversation_id
       AND (NOT contact OR (NEW.kind = 'clarify' AND NOT clarified) OR (NEW.kind = 'off_topic' AND NOT declined)
            OR (NEW.answered_faqs <> '[]' AND (NEW.answered_faqs::jsonb ->> -1) IS DISTINCT FROM last_answered_faq));
    RETURN NULL;
END
$$;

CREATE TRIGGER conversation_stats_turn AFTER INSERT ON turn_facts
    FOR EACH ROW EXECUTE FUNCTION loket_conversation_stats_turn();

INSERT INTO conversation_stats (conversation_id, created_at, channel, tier, language, contact, clarified, declined,
                                last_answered_faq)
SELECT c.id, c.created_at, c.channel, c.tier, c.language,
       EXISTS (SELECT 1 FROM turn_facts f WHERE f.conversation_id = c.id),
       EXISTS (SELECT 1 FROM turn_facts f WHERE f.conversation_id = c.id AND f.kind = 'clarify'),
       EXISTS (SELECT 1 FROM turn_facts f WHERE f.conversation_id = c.id AND f.kind = 'off_topic'),
       (SELECT f.answered_faqs::jsonb ->> -1 FROM turn_facts f
         WHERE f.conversation_id = c.id AND f.answered_faqs <> '[]' ORDER BY f.seq DESC LIMIT 1)
  FROM conversations c;

-- `GetKpis`'s top lists read the range's turns by conversation: the intents from an index that carries them, the
-- unanswered messages from an index of only those. (SQLite keeps turn facts clustered by conversation instead.)
CREATE INDEX turn_facts_intents ON turn_facts (conversation_id, kind, intent);
CREATE INDEX turn_facts_unanswered ON turn_facts (conversation_id)
    WHERE handoff_reason IN ('low_confidence', 'repeated_failure');

-- From when an agent could pick a hand-off up: its creation, or for a callback ticket (opened outside office
-- hours) the opening time it was given. A column, so the wait KPIs read no hand-off JSON.
ALTER TABLE handoffs ADD COLUMN pickable_at BIGINT NOT NULL DEFAULT 0;
UPDATE handoffs
   SET pickable_at = CASE WHEN (record::jsonb ->> 'callback')::boolean
                          THEN GREATEST(created_at, (record::jsonb ->> 'expected_pickup_at')::bigint)
                          ELSE created_at END;
-- The KPIs read a range's hand-offs by their conversations; the index carries every column they read, so the
-- hand-offs' wide rows (the whole package as JSON) are not visited.
DROP INDEX handoffs_by_conversation;
CREATE INDEX handoffs_by_conversation ON handoffs (conversation_id, created_at)
    INCLUDE (id, pickable_at, state, skill, reason, claimed_at, resolved_at, rating);

-- The skill of a conversation's latest hand-off (by creation, then id), kept as hand-offs open and move.
CREATE FUNCTION loket_conversation_stats_handoff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.skill IS DISTINCT FROM OLD.skill THEN
        UPDATE conversation_stats
           SET handoff_skill = (SELECT h.skill FROM handoffs h WHERE h.conversation_id = NEW.conversation_id
                                 ORDER BY h.created_at DESC, h.id DESC LIMIT 1)
         WHERE conversation_id = NEW.conversation_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER conversation_stats_handoff AFTER INSERT OR UPDATE OF skill ON handoffs
    FOR EACH ROW EXECUTE FUNCTION loket_conversation_stats_handoff();

UPDATE conversation_stats s
   SET handoff_skill = (SELECT h.skill FROM handoffs h WHERE h.conversation_id = s.conversation_id
                         ORDER BY h.created_at DESC, h.id DESC LIMIT 1);

-- loket writes a turn's facts itself, in the statement after its events, from the turn it already holds: parsing
-- the turn's JSON again in a trigger cost every commit. The trigger stays for retention, which drops a replay.
DROP TRIGGER turn_facts ON events;
CREATE TRIGGER turn_facts AFTER UPDATE OF turn ON events
    FOR EACH ROW WHEN (NEW.turn IS NULL) EXECUTE FUNCTION loket_turn_facts();
