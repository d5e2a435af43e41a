//! What the KPIs read of a customer message and its decision ([`TurnFacts`]): the projection of a turn that both
//! stores write into `turn_facts` in the statement after its events. Migration 0010 filled the table from the
//! stored turns by triggers that parsed each turn's JSON again inside the database; writing the facts from the
//! [`Turn`] loket already holds costs the writer far less (migration 0011 dropped those triggers).

use crate::conversation::{DecisionKind, Event, HandoffReason, Turn};

/// What the KPIs read of one customer message and its decision, kept beside its stored [`Turn`] so a long range is
/// read without parsing every turn. The database's triggers fold it into the conversation's `conversation_stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFacts {
    pub conversation_id: String,
    /// The customer message's number in its conversation.
    pub seq: u64,
    /// When the customer's message arrived.
    pub created_at: i64,
    pub kind: DecisionKind,
    /// The detected intent: the model's best intent, else search's best entry.
    pub intent: Option<String>,
    pub handoff_reason: Option<HandoffReason>,
    /// The FAQ entries the bot's replies answered with, in order.
    pub answered_faqs: Vec<String>,
    /// The customer's text, kept only when the bot was not confident enough to answer (low confidence, repeated
    /// failure): the examples of a knowledge gap.
    pub unanswered_text: Option<String>,
}

impl TurnFacts {
    pub fn of(turn: &Turn) -> TurnFacts {
        let decision = &turn.decision;
        let unanswered =
            matches!(decision.handoff_reason, Some(HandoffReason::LowConfidence | HandoffReason::RepeatedFailure));
        TurnFacts {
            conversation_id: turn.message.conversation_id.clone(),
            seq: turn.message.seq,
            created_at: turn.message.created_at,
            kind: decision.kind,
            intent: decision
                .intents
                .first()
                .map(|i| i.intent.clone())
                .or_else(|| decision.faq_matches.first().map(|m| m.faq_id.clone())),
            handoff_reason: decision.handoff_reason,
            answered_faqs: turn.replies.iter().filter_map(|r| r.message()?.faq_id.clone()).collect(),
            unanswered_text: turn.message.message().filter(|_| unanswered).map(|m| m.text.clone()),
        }
    }
}

/// The statement that writes the facts of the turns among a commit's events (each turn once, at its customer
/// message) into `turn_facts`, for either backend; `None` when the events answer no turn.
pub(super) fn insert<'a, DB>(
    events: impl IntoIterator<Item = (&'a Event, Option<&'a Turn>)>,
) -> Option<sqlx::QueryBuilder<DB>>
where
    DB: sqlx::Database,
    DB::Arguments: Default,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> &'static str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<&'static str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let facts: Vec<TurnFacts> = events
        .into_iter()
        .filter_map(|(event, turn)| turn.filter(|turn| turn.message.seq == event.seq))
        .map(TurnFacts::of)
        .collect();
    if facts.is_empty() {
        return None;
    }
    let mut insert = sqlx::QueryBuilder::new(
        "INSERT INTO turn_facts (conversation_id, seq, created_at, kind, intent, handoff_reason, answered_faqs, \
         unanswered_text) ",
    );
    insert.push_values(facts, |mut row, facts| {
        row.push_bind(facts.conversation_id)
            .push_bind(facts.seq as i64)
            .push_bind(facts.created_at)
            .push_bind(facts.kind.as_str())
            .push_bind(facts.intent)
            .push_bind(facts.handoff_reason.map(|reason| reason.as_str()))
            .push_bind(serde_json::Value::from(facts.answered_faqs).to_string())
            .push_bind(facts.unanswered_text);
    });
    Some(insert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Channel, Conversation, DialogueMemory, State, Tier};
    use crate::store::{
        Commit, ConversationFacts, ConversationStore, GapMessage, PrivacyStore, SqliteStore, StatsDetail, StatsScope,
        StatsStore,
    };

    /// A stored turn as loket writes it: a low-confidence hand-off whose reply named no entry, then an answer.
    fn turn(seq: u64, kind: &str, reason: Option<&str>, faq: Option<&str>) -> Turn {
        let message = |seq: u64, author: &str, text: &str, faq_id: Option<&str>| {
            serde_json::json!({ "conversation_id": "c-1", "seq": seq, "created_at": 1000 + seq, "body": { "Message": {
                "id": format!("m{seq}"), "author": author, "text": text, "language": "en",
                "client_message_id": null, "faq_id": faq_id } } })
        };
        serde_json::from_value(serde_json::json!({
            "message": message(seq, "customer", "my parrot? call 06-12345678", None),
            "replies": [message(seq + 1, "bot", "first", None), message(seq + 2, "bot", "answer", faq)],
            "decision": { "kind": kind, "language": "en", "explanation": "", "clarify_options": [],
                "faq_matches": [{ "faq_id": "return-how", "category": "returns", "question": "?", "score": 0.5 }],
                "intents": if faq.is_some() { serde_json::json!([{ "intent": "return-period", "confidence": 0.9 }]) }
                    else { serde_json::json!([]) },
                "handoff_reason": reason, "answer_faq_id": faq },
            "state": "bot",
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_turns_facts_are_written_with_it_and_summed_per_conversation() {
        let store = SqliteStore::in_memory().await.unwrap();
        let conversation = Conversation {
            id: "c-1".into(),
            customer_id: "x".into(),
            tier: Tier::Standard,
            channel: Channel::Chat,
            language: "en".into(),
            language_fixed: false,
            metadata: Default::default(),
            state: State::Bot,
            created_at: 1000,
            updated_at: 1000,
            last_seq: 6,
            memory: DialogueMemory::default(),
            owner: None,
        };
        let turns = [turn(1, "handoff", Some("low_confidence"), None), turn(4, "answer", None, Some("return-period"))];
        for turn in &turns {
            let events: Vec<_> = std::iter::once(turn.message.clone()).chain(turn.replies.iter().cloned()).collect();
            store.commit(Commit { turn: Some(turn), ..Commit::new(&conversation, &events) }).await.unwrap();
        }
        let range = StatsScope { start: 0, end: 2000, ..StatsScope::default() };
        let records = store.stats_records(&range, StatsDetail::TopLists).await.unwrap();
        let summary =
            ConversationFacts { created_at: 1000, contact: true, handed_off: false, clarified: false, declined: false };
        assert_eq!(records.conversations, vec![summary]);
        let gap = GapMessage {
            intent: "return-how".into(),
            count: 1,
            created_at: 1001,
            text: "my parrot? call 06-12345678".into(),
        };
        assert_eq!(records.gaps, vec![gap]);
        let mut intents = records.intents.clone();
        intents.sort();
        assert_eq!(intents, vec![("return-how".into(), 1), ("return-period".into(), 1)]);

        // Never handed off: its skill is that of the last entry the bot answered with.
        let of_skill = |faqs: &[&str]| StatsScope {
            skill: Some("returns".into()),
            skill_faqs: faqs.iter().map(|f| f.to_string()).collect(),
            ..range.clone()
        };
        let selected = store.stats_records(&of_skill(&["return-period"]), StatsDetail::Rates).await.unwrap();
        assert_eq!(selected.conversations.len(), 1);
        let selected = store.stats_records(&of_skill(&["return-how"]), StatsDetail::Rates).await.unwrap();
        assert_eq!(selected.conversations.len(), 0);

        // Retention drops the replays and their facts; the summary, which holds no personal data, stays.
        store.redact_before(5000, |_| "[redacted]".into()).await.unwrap();
        let records = store.stats_records(&range, StatsDetail::TopLists).await.unwrap();
        assert_eq!((records.conversations, records.gaps.len(), records.intents.len()), (vec![summary], 0, 0));
    }
}
