-- What the KPIs read of each customer message and its decision, kept beside the turn's JSON so that a range of
-- 100,000 conversations is read in a fraction of a second rather than parsing every stored replay (issue 16: a
-- 90-day KPI series in at most 500 ms). Filled by triggers from `events.turn`, so every write path (the group
-- commit, retention, erasure) keeps it in step without knowing of it; the KPIs read only this table for turns.
-- Written for SQLite 3.40 too (no aggregate ORDER BY), so Debian's sqlite3 can still open the database.
CREATE TABLE turn_facts (
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
);

-- Conversations started in a range: every KPI query selects by it.
CREATE INDEX conversations_by_creation ON conversations (created_at);

CREATE TRIGGER turn_facts_insert AFTER INSERT ON events WHEN NEW.turn IS NOT NULL
BEGIN
    INSERT INTO turn_facts (conversation_id, seq, created_at, kind, intent, handoff_reason, answered_faqs, unanswered_text)
    SELECT NEW.conversation_id, NEW.seq, NEW.created_at,
           json_extract(NEW.turn, '$.decision.kind'),
           COALESCE(json_extract(NEW.turn, '$.decision.intents[0].intent'),
                    json_extract(NEW.turn, '$.decision.faq_matches[0].faq_id')),
           json_extract(NEW.turn, '$.decision.handoff_reason'),
           (SELECT json_group_array(faq) FROM (SELECT json_extract(r.value, '$.body.Message.faq_id') AS faq
              FROM json_each(NEW.turn, '$.replies') r WHERE faq IS NOT NULL ORDER BY r.key)),
           CASE WHEN json_extract(NEW.turn, '$.decision.handoff_reason') IN ('low_confidence', 'repeated_failure')
                THEN json_extract(NEW.turn, '$.message.body.Message.text') END;
END;

-- Retention drops a turn's replay: its facts go with it, as the KPIs counted it before.
CREATE TRIGGER turn_facts_update AFTER UPDATE OF turn ON events WHEN NEW.turn IS NULL
BEGIN
    DELETE FROM turn_facts WHERE conversation_id = OLD.conversation_id AND seq = OLD.seq;
END;

INSERT INTO turn_facts (conversation_id, seq, created_at, kind, intent, handoff_reason, answered_faqs, unanswered_text)
SELECT e.conversation_id, e.seq, e.created_at,
       json_extract(e.turn, '$.decision.kind'),
       COALESCE(json_extract(e.turn, '$.decision.intents[0].intent'),
                json_extract(e.turn, '$.decision.faq_matches[0].faq_id')),
       json_extract(e.turn, '$.decision.handoff_reason'),
       (SELECT json_group_array(faq) FROM (SELECT json_extract(r.value, '$.body.Message.faq_id') AS faq
          FROM json_each(e.turn, '$.replies') r WHERE faq IS NOT NULL ORDER BY r.key)),
       CASE WHEN json_extract(e.turn, '$.decision.handoff_reason') IN ('low_confidence', 'repeated_failure')
            THEN json_extract(e.turn, '$.message.body.Message.text') END
  FROM events e
 WHERE e.turn IS NOT NULL;
