//! One customer message as a turn, in two steps: [`Dialogue::build_turn`] decides it (the customer's event, the
//! policy's decision and replies, a hand-off opened or a rating typed, a knowledge gap, the webhook deliveries)
//! and writes nothing; [`Dialogue::commit_turn`] stores it all at once and only then tells anyone (watchers,
//! metrics, the agents' queue).

use std::time::Instant;

use tracing::info;

use super::{Dialogue, SendOutcome, TurnInput, message_language, replay};
use crate::conversation::{
    Author, Conversation, Decision, DecisionKind, Event, EventBody, Handoff, HandoffReason, HandoffState, Message,
    State, Turn,
};
use crate::error::{Error, Result};
use crate::handoff::{self, QueueEventKind};
use crate::knowledge::gaps::Gap;
use crate::store::{Commit, NewDelivery, StoreError};
use crate::webhooks::{EventType, payload};

/// A customer's message decided but not yet stored: everything its commit writes.
pub(super) struct PendingTurn {
    conversation: Conversation,
    events: Vec<Event>,
    turn: Turn,
    opened: Option<Handoff>,
    rated: Option<Handoff>,
    gap: Option<Gap>,
    deliveries: Vec<NewDelivery>,
}

impl Dialogue {
    /// Step one: the turn `text` makes in `conversation`, which the caller holds. Reads the knowledge, the model
    /// and (for a hand-off's wait estimate or a typed rating) the store; writes nothing.
    pub(super) async fn build_turn(
        &self,
        mut conversation: Conversation,
        text: &str,
        client_message_id: Option<&str>,
    ) -> Result<PendingTurn> {
        // Held for this message only: an edit or a model swapped in meanwhile applies from the next message on.
        let knowledge = self.knowledge.current();
        let language = message_language(&knowledge, &conversation, text);
        // The conversation follows the customer into another served language.
        conversation.language = language.clone();
        conversation.updated_at = self.ledger.now();
        let customer = Message {
            id: uuid::Uuid::new_v4().to_string(),
            author: Author::Customer,
            text: text.to_owned(),
            language: language.clone(),
            client_message_id: client_message_id.map(str::to_owned),
            faq_id: None,
            author_name: None,
        };
        let message = conversation.next_event(EventBody::Message(customer));
        let mut events = vec![message.clone()];
        let mut opened = None;
        let mut rated = None;
        let mut gap = None;
        let (decision, replies) = if conversation.state.human_owned() {
            (silent_decision(&language), Vec::new())
        } else {
            let model = self.model.current();
            let outcome = self.policy.decide(
                &knowledge,
                model.as_deref(),
                &TurnInput {
                    text,
                    language: &language,
                    tier: conversation.tier,
                    channel: conversation.channel,
                    memory: &conversation.memory,
                },
            );
            conversation.memory = outcome.memory;
            if let Some(score) = outcome.rating {
                rated = self.typed_rating(&mut conversation, score).await?;
            }
            gap = knowledge_gap(&conversation, &outcome.decision, text, conversation.updated_at);
            let mut texts = outcome.replies;
            if outcome.decision.handoff_reason.is_some() {
                let locale = knowledge.base.locale(&language);
                let opening = handoff::open(
                    &*self.store,
                    &self.config.handoff,
                    &self.schedules,
                    locale,
                    &conversation,
                    &outcome.decision,
                    text,
                    conversation.updated_at,
                )
                .await?;
                // One message, not a hand-off notice stacked on an out-of-office notice.
                if let Some(last) = texts.last_mut() {
                    let joined = format!("{} {}", last.text, opening.notice);
                    last.text = crate::text::shorten(&joined, self.policy.reply_limit(conversation.channel));
                }
                opened = Some(opening.handoff);
            }
            let replies: Vec<Event> = texts
                .into_iter()
                .map(|reply| conversation.next_event(EventBody::bot_message(reply.text, &language, reply.faq_id)))
                .collect();
            events.extend(replies.iter().cloned());
            if let Some(reason) = outcome.decision.handoff_reason {
                events.push(conversation.change_state(State::Queued, Some(reason), &outcome.decision.explanation));
            }
            (outcome.decision, replies)
        };
        let turn = Turn { message, replies, decision, state: conversation.state };
        let deliveries = self.turn_deliveries(&conversation, opened.as_ref(), rated.as_ref(), gap.as_ref());
        Ok(PendingTurn { conversation, events, turn, opened, rated, gap, deliveries })
    }

    /// Step two: commits the turn (when a racing retry stored the same message first, its turn answers), then
    /// publishes the events, counts the decision and announces a new hand-off to the agents watching.
    pub(super) async fn commit_turn(
        &self,
        pending: PendingTurn,
        text: &str,
        client_message_id: Option<&str>,
        started: Instant,
    ) -> Result<SendOutcome> {
        let PendingTurn { conversation, events, turn, opened, rated, gap, deliveries } = pending;
        let conversation_id = conversation.id.as_str();
        // A turn opens a hand-off or rates a resolved one, never both (a rating is a whole turn of its own).
        let handoff = opened.as_ref().map(|h| (h, None)).or(rated.as_ref().map(|h| (h, Some(HandoffState::Resolved))));
        let commit = Commit {
            turn: Some(&turn),
            handoff,
            gap: gap.as_ref(),
            deliveries: &deliveries,
            ..Commit::new(&conversation, &events)
        };
        match self.ledger.commit(commit).await {
            Ok(()) => {}
            // Another replica or a racing retry stored the same client message first: answer as it did.
            Err(StoreError::DuplicateClientMessage) => {
                let id = client_message_id.unwrap_or_default();
                let turn =
                    self.store.turn(conversation_id, id).await?.ok_or_else(|| {
                        Error::Store(StoreError::Corrupt(format!("turn of client message {id} missing")))
                    })?;
                return replay(turn, id, text);
            }
            // The hand-off was rated through `RateConversation` between reading and committing.
            Err(StoreError::Conflict) if rated.is_some() => {
                return Err(Error::Aborted("the hand-off was rated meanwhile; send the message again".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.ledger.publish(&events);
        metrics::counter!(crate::metrics::DECISIONS, "kind" => turn.decision.kind.as_str()).increment(1);
        if let Some(handoff) = opened {
            // The skill comes from the knowledge base or the configuration, never from the request.
            metrics::counter!(crate::metrics::HANDOFFS, "reason" => handoff.reason.as_str(), "skill" => handoff.skill.clone())
                .increment(1);
            info!(conversation_id, handoff_id = %handoff.id, skill = %handoff.skill, reason = handoff.reason.as_str(), callback = handoff.callback, "handed off");
            // The hand-off is committed; failing to build the package for live watchers loses nothing,
            // as they see it on their next snapshot.
            if let Err(error) = self.queue.announce(&*self.store, QueueEventKind::New, handoff, None).await {
                tracing::warn!(%error, "hand-off package for watchers failed");
            }
        }
        info!(
            conversation_id,
            decision = turn.decision.kind.as_str(),
            language = %turn.decision.language,
            latency_us = started.elapsed().as_micros() as u64,
            "message handled"
        );
        Ok(SendOutcome { turn, replayed: false })
    }

    /// The webhook deliveries of what a turn changed: a hand-off opened, a rating typed, a knowledge gap.
    fn turn_deliveries(
        &self,
        conversation: &Conversation,
        opened: Option<&Handoff>,
        rated: Option<&Handoff>,
        gap: Option<&Gap>,
    ) -> Vec<crate::store::NewDelivery> {
        let mut deliveries = Vec::new();
        let (id, at) = (conversation.id.as_str(), conversation.updated_at);
        let webhooks = &self.webhooks;
        if let Some(handoff) = rated {
            let data = || payload::conversation_rated(handoff);
            webhooks.record(&mut deliveries, EventType::ConversationRated, Some(id), id, at, data);
        }
        if let Some(handoff) = opened {
            let data = || payload::handoff_created(handoff);
            webhooks.record(&mut deliveries, EventType::HandoffCreated, Some(id), id, at, data);
        }
        if let Some(gap) = gap {
            let data = || payload::knowledge_gap_created(gap);
            webhooks.record(&mut deliveries, EventType::KnowledgeGapCreated, Some(id), id, at, data);
        }
        deliveries
    }

    /// Puts a rating typed in reply to the rating question on the hand-off it was asked for, by the same rule as
    /// `RateConversation`. A rating that cannot be stored (already given through the API, the hand-off gone) is
    /// still thanked for; the turn is not failed over it.
    async fn typed_rating(&self, conversation: &mut Conversation, score: u8) -> Result<Option<Handoff>> {
        let handoff = self.ledger.handoff_to_rate(conversation).await?;
        conversation.memory.rating_handoff = None;
        let Some(mut handoff) = handoff else { return Ok(None) };
        match handoff::rate(&mut handoff, i32::from(score), "", conversation.updated_at) {
            Ok(()) => {
                info!(conversation_id = %conversation.id, score, "conversation rated in a message");
                Ok(Some(handoff))
            }
            Err(error) => {
                info!(conversation_id = %conversation.id, %error, "typed rating not stored");
                Ok(None)
            }
        }
    }
}

fn silent_decision(language: &str) -> Decision {
    Decision {
        kind: DecisionKind::Silent,
        language: language.to_owned(),
        explanation: "a person owns this conversation; the message is kept for them".into(),
        faq_matches: Vec::new(),
        intents: Vec::new(),
        clarify_options: Vec::new(),
        handoff_reason: None,
        answer_faq_id: None,
    }
}

/// A question the bot could not answer well, for the editors' gap list: handed off because nothing matched (not
/// because the customer asked for a person or sounded upset), or met with a clarifying question. Redacted here,
/// so personal data never reaches the gap list.
fn knowledge_gap(conversation: &Conversation, decision: &Decision, text: &str, at: i64) -> Option<Gap> {
    let reason = match (decision.kind, decision.handoff_reason) {
        (_, Some(reason @ (HandoffReason::LowConfidence | HandoffReason::RepeatedFailure))) => reason.as_str(),
        (DecisionKind::Clarify, _) => "clarify",
        _ => return None,
    };
    Some(Gap {
        id: uuid::Uuid::new_v4().to_string(),
        conversation_id: conversation.id.clone(),
        language: decision.language.clone(),
        text: crate::privacy::redact(text.trim()),
        reason: reason.to_owned(),
        best_faq: decision.faq_matches.first().map(|m| m.faq_id.clone()),
        created_at: at,
        resolved_at: None,
        resolved_faq: None,
    })
}
