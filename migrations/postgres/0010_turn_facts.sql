-- What the KPIs read of each customer message and its decision, kept beside the turn's JSON so that a range of
-- 100,000 conversations is read in a fraction of a second rather than parsing every stored replay (issue 16: a
-- 90-day KPI series in at most 500 ms). Filled by a trigger from `events.turn`, so every write path (commits,
-- retention, erasure) keeps it in step without knowing of it; the KPIs read only this table for turns.
CREATE TABLE turn_facts (
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,      -- the customer message's time, Unix milliseconds
    kind            TEXT NOT NULL,        -- the decision's kind: answer | clarify | handoff | ...
    intent          TEXT,                 -- the model's best intent, else search's best entry; NULL: none
    handoff_reason  TEXT,                 -- NULL unless the decision handed off
    answered_faqs   TEXT NOT NULL,        -- JSON array: the FAQ ids the bot's replies answered with, in order
    unanswered_text TEXT,                 -- the customer's text, only when the bot was not confident enough
    PRIMARY KEY (conversation_id, seq),
    FOREIGN KEY (conversation_id, seq) REFERENCES events (conversation_id, seq) ON DELETE CASCADE
);

-- The facts of one stored turn ($4, `events.turn` as JSON text) of event ($1 conversation, $2 seq, $3 time), as
-- the SQLite variant extracts them.
CREATE FUNCTION loket_turn_facts_row(TEXT, BIGINT, BIGINT, TEXT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO turn_facts (conversation_id, seq, created_at, kind, intent, handoff_reason, answered_faqs, unanswered_text)
    SELECT $1, $2, $3,
           t -> 'decision' ->> 'kind',
           COALESCE(t -> 'decision' -> 'intents' -> 0 ->> 'intent', t -> 'decision' -> 'faq_matches' -> 0 ->> 'faq_id'),
           t -> 'decision' ->> 'handoff_reason',
           (SELECT COALESCE(jsonb_agg(r -> 'body' -> 'Message' ->> 'faq_id' ORDER BY n), '[]'::jsonb)::text
              FROM jsonb_array_elements(t -> 'replies') WITH ORDINALITY AS x(r, n)
             WHERE r -> 'body' -> 'Message' ->> 'faq_id' IS NOT NULL),
           CASE WHEN t -> 'decision' ->> 'handoff_reason' IN ('low_confidence', 'repeated_failure')
                THEN t -> 'message' -> 'body' -> 'Message' ->> 'text' END
      FROM (SELECT $4::jsonb AS t) AS parsed
$$;

CREATE FUNCTION loket_turn_facts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Retention drops a turn's replay: its facts go with it, as the KPIs counted it before.
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM turn_facts WHERE conversation_id = OLD.conversation_id AND seq = OLD.seq;
    END IF;
    IF NEW.turn IS NOT NULL THEN
        PERFORM loket_turn_facts_row(NEW.conversation_id, NEW.seq, NEW.created_at, NEW.turn);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER turn_facts AFTER INSERT OR UPDATE OF turn ON events
    FOR EACH ROW EXECUTE FUNCTION loket_turn_facts();

SELECT loket_turn_facts_row(conversation_id, seq, created_at, turn) FROM events WHERE turn IS NOT NULL;
