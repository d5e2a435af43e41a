//! What the KPIs read of a customer message and its decision ([`TurnFacts`]): the projection of a stored turn that
//! both stores keep in `turn_facts` (filled by triggers on `events.turn`, migration 0010), read back from its
//! columns, and the same projection computed in Rust.

use super::StoreError;
use crate::conversation::{DecisionKind, HandoffReason, Turn};

/// What the KPIs read of one customer message and its decision: the projection of its stored [`Turn`] that the
/// stores keep beside it (`turn_facts`, kept by triggers on `events.turn`), so a long range is read without
/// parsing every turn. [`TurnFacts::of`] is the same projection in Rust.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFacts {
    pub conversation_id: String,
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

impl TurnFacts {
    /// From a `turn_facts` row's columns (`answered_faqs` is a JSON array of FAQ ids).
    pub(super) fn from_columns(
        conversation_id: String,
        created_at: i64,
        kind: &str,
        intent: Option<String>,
        handoff_reason: Option<&str>,
        answered_faqs: &str,
        unanswered_text: Option<String>,
    ) -> Result<TurnFacts, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("turn_facts.{what}"));
        Ok(TurnFacts {
            conversation_id,
            created_at,
            kind: DecisionKind::parse(kind).ok_or_else(|| corrupt("kind"))?,
            intent,
            handoff_reason: match handoff_reason {
                None => None,
                Some(reason) => Some(HandoffReason::parse(reason).ok_or_else(|| corrupt("handoff_reason"))?),
            },
            answered_faqs: serde_json::from_str(answered_faqs).map_err(|_| corrupt("answered_faqs"))?,
            unanswered_text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Channel, Conversation, DialogueMemory, State, Tier};
    use crate::store::{Commit, ConversationStore, SqliteStore, StatsStore};

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
    async fn the_stores_triggers_keep_the_projection_of_rust() {
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
        let read = store.stats_records(0, 2000).await.unwrap().turns;
        assert_eq!(read, turns.iter().map(TurnFacts::of).collect::<Vec<_>>());
        assert_eq!(read[0].unanswered_text.as_deref(), Some("my parrot? call 06-12345678"));
        assert_eq!((read[0].intent.as_deref(), read[1].intent.as_deref()), (Some("return-how"), Some("return-period")));
        assert_eq!(
            (read[1].answered_faqs.clone(), read[1].unanswered_text.as_deref()),
            (vec!["return-period".into()], None)
        );
    }
}
