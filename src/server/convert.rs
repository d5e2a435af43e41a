//! Conversions between domain types and `loket.v1` messages. Enums from the wire are checked here: an unknown
//! number is INVALID_ARGUMENT, never silently mapped.

use tonic::Status;

use super::pb;
use crate::conversation::{
    Author, Channel, Conversation, Decision, DecisionKind, Event, EventBody, FaqMatch, HandoffReason, IntentScore,
    State, Tier,
};
use crate::dialogue::SendOutcome;
use crate::error::Error;
use crate::server::status::status_of;

fn unknown_enum(field: &'static str, value: i32) -> Status {
    status_of(Error::invalid(field, format!("unknown value {value}")))
}

pub fn tier_from_pb(value: i32) -> Result<Option<Tier>, Status> {
    match pb::SupportTier::try_from(value) {
        Ok(pb::SupportTier::Unspecified) => Ok(None),
        Ok(pb::SupportTier::Basic) => Ok(Some(Tier::Basic)),
        Ok(pb::SupportTier::Standard) => Ok(Some(Tier::Standard)),
        Ok(pb::SupportTier::Advanced) => Ok(Some(Tier::Advanced)),
        Err(_) => Err(unknown_enum("tier", value)),
    }
}

pub fn channel_from_pb(value: i32) -> Result<Option<Channel>, Status> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Unspecified) => Ok(None),
        Ok(pb::Channel::Chat) => Ok(Some(Channel::Chat)),
        Ok(pb::Channel::Email) => Ok(Some(Channel::Email)),
        Ok(pb::Channel::Social) => Ok(Some(Channel::Social)),
        Ok(pb::Channel::Phone) => Ok(Some(Channel::Phone)),
        Ok(pb::Channel::Messaging) => Ok(Some(Channel::Messaging)),
        Err(_) => Err(unknown_enum("channel", value)),
    }
}

pub fn tier_to_pb(tier: Tier) -> pb::SupportTier {
    match tier {
        Tier::Basic => pb::SupportTier::Basic,
        Tier::Standard => pb::SupportTier::Standard,
        Tier::Advanced => pb::SupportTier::Advanced,
    }
}

pub fn channel_to_pb(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Chat => pb::Channel::Chat,
        Channel::Email => pb::Channel::Email,
        Channel::Social => pb::Channel::Social,
        Channel::Phone => pb::Channel::Phone,
        Channel::Messaging => pb::Channel::Messaging,
    }
}

pub fn state_to_pb(state: State) -> pb::ConversationState {
    match state {
        State::Bot => pb::ConversationState::Bot,
        State::Queued => pb::ConversationState::Queued,
        State::Agent => pb::ConversationState::Agent,
        State::Resolved => pb::ConversationState::Resolved,
        State::Ended => pb::ConversationState::Ended,
    }
}

fn author_to_pb(author: Author) -> pb::Author {
    match author {
        Author::Customer => pb::Author::Customer,
        Author::Bot => pb::Author::Bot,
        Author::Agent => pb::Author::Agent,
        Author::System => pb::Author::System,
    }
}

fn decision_kind_to_pb(kind: DecisionKind) -> pb::DecisionKind {
    match kind {
        DecisionKind::Answer => pb::DecisionKind::Answer,
        DecisionKind::Clarify => pb::DecisionKind::Clarify,
        DecisionKind::Handoff => pb::DecisionKind::Handoff,
        DecisionKind::SmallTalk => pb::DecisionKind::SmallTalk,
        DecisionKind::Silent => pb::DecisionKind::Silent,
        DecisionKind::OffTopic => pb::DecisionKind::OffTopic,
        DecisionKind::Menu => pb::DecisionKind::Menu,
        DecisionKind::Rating => pb::DecisionKind::Rating,
    }
}

pub fn handoff_reason_to_pb(reason: Option<HandoffReason>) -> pb::HandoffReason {
    match reason {
        None => pb::HandoffReason::Unspecified,
        Some(HandoffReason::CustomerRequest) => pb::HandoffReason::CustomerRequest,
        Some(HandoffReason::LowConfidence) => pb::HandoffReason::LowConfidence,
        Some(HandoffReason::RepeatedFailure) => pb::HandoffReason::RepeatedFailure,
        Some(HandoffReason::Frustration) => pb::HandoffReason::Frustration,
        Some(HandoffReason::AlwaysHuman) => pb::HandoffReason::AlwaysHuman,
    }
}

pub fn timestamp(millis: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// The message of a message event; `None` for state changes.
pub fn message_to_pb(event: &Event) -> Option<pb::Message> {
    let message = event.message()?;
    Some(pb::Message {
        message_id: message.id.clone(),
        seq: event.seq,
        author: author_to_pb(message.author).into(),
        text: message.text.clone(),
        language: message.language.clone(),
        client_message_id: message.client_message_id.clone().unwrap_or_default(),
        create_time: timestamp(event.created_at),
        faq_id: message.faq_id.clone().unwrap_or_default(),
        author_name: message.author_name.clone().unwrap_or_default(),
    })
}

pub fn event_to_pb(event: &Event) -> pb::ConversationEvent {
    let body = match &event.body {
        EventBody::Message(_) => message_to_pb(event).map(pb::conversation_event::Event::Message),
        EventBody::StateChange(change) => Some(pb::conversation_event::Event::StateChange(pb::StateChange {
            from: state_to_pb(change.from).into(),
            to: state_to_pb(change.to).into(),
            handoff_reason: handoff_reason_to_pb(change.handoff_reason).into(),
            detail: change.detail.clone(),
        })),
    };
    pb::ConversationEvent {
        conversation_id: event.conversation_id.clone(),
        seq: event.seq,
        create_time: timestamp(event.created_at),
        event: body,
    }
}

pub fn conversation_to_pb(conversation: &Conversation, events: &[Event]) -> pb::Conversation {
    pb::Conversation {
        conversation_id: conversation.id.clone(),
        customer_id: conversation.customer_id.clone(),
        tier: tier_to_pb(conversation.tier).into(),
        channel: channel_to_pb(conversation.channel).into(),
        language: conversation.language.clone(),
        metadata: conversation.metadata.clone().into_iter().collect(),
        state: state_to_pb(conversation.state).into(),
        create_time: timestamp(conversation.created_at),
        update_time: timestamp(conversation.updated_at),
        messages: events.iter().filter_map(message_to_pb).collect(),
        awaiting_rating: conversation.memory.pending_rating,
    }
}

pub fn faq_match_to_pb(m: &FaqMatch) -> pb::FaqMatch {
    pb::FaqMatch {
        faq_id: m.faq_id.clone(),
        category: m.category.clone(),
        question: m.question.clone(),
        score: m.score,
        answer: String::new(),
    }
}

pub fn intent_to_pb(i: &IntentScore) -> pb::IntentScore {
    pb::IntentScore { intent: i.intent.clone(), confidence: i.confidence }
}

pub fn decision_to_pb(decision: &Decision) -> pb::Decision {
    pb::Decision {
        kind: decision_kind_to_pb(decision.kind).into(),
        language: decision.language.clone(),
        explanation: decision.explanation.clone(),
        faq_matches: decision.faq_matches.iter().map(faq_match_to_pb).collect(),
        intents: decision.intents.iter().map(intent_to_pb).collect(),
        clarify_options: decision.clarify_options.clone(),
        handoff_reason: handoff_reason_to_pb(decision.handoff_reason).into(),
        answer_faq_id: decision.answer_faq_id.clone().unwrap_or_default(),
    }
}

pub fn send_response(outcome: &SendOutcome) -> pb::SendMessageResponse {
    let turn = &outcome.turn;
    pb::SendMessageResponse {
        message: message_to_pb(&turn.message),
        replies: turn.replies.iter().filter_map(message_to_pb).collect(),
        decision: Some(decision_to_pb(&turn.decision)),
        replayed: outcome.replayed,
        state: state_to_pb(turn.state).into(),
    }
}
