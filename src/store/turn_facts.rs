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
