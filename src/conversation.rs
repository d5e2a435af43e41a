//! The conversation data model shared by dialogue, store and server: plain structs and enums, no I/O.
//! Timestamps are Unix milliseconds from the injected [`crate::clock::Clock`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Declares a plain enum with a stable lowercase name, used in the database and in logs.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

named_enum!(
    /// How much automation a customer gets.
    Tier { Basic => "basic", Standard => "standard", Advanced => "advanced" }
);
named_enum!(
    /// Where the conversation takes place; shapes the replies.
    Channel { Chat => "chat", Email => "email", Social => "social", Phone => "phone", Messaging => "messaging" }
);
named_enum!(
    /// Who owns the conversation.
    State { Bot => "bot", Queued => "queued", Agent => "agent", Resolved => "resolved", Ended => "ended" }
);
named_enum!(
    /// Who wrote a message.
    Author { Customer => "customer", Bot => "bot", Agent => "agent", System => "system" }
);
named_enum!(
    /// What the bot decided to do with a customer message.
    DecisionKind { Answer => "answer", Clarify => "clarify", Handoff => "handoff", SmallTalk => "small_talk", Silent => "silent" }
);
named_enum!(
    /// Why a conversation went to a human.
    HandoffReason { CustomerRequest => "customer_request", LowConfidence => "low_confidence", RepeatedFailure => "repeated_failure" }
);

impl State {
    /// Whether a human (waiting or active) owns the conversation, so the bot must stay silent.
    pub fn human_owned(self) -> bool {
        matches!(self, State::Queued | State::Agent)
    }
}

/// A conversation's header: everything but its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub customer_id: String,
    pub tier: Tier,
    pub channel: Channel,
    /// The conversation's language: given at start, else the default until a message shows another.
    pub language: String,
    /// Whether the front-end fixed the language (then it is never re-detected).
    pub language_fixed: bool,
    pub metadata: BTreeMap<String, String>,
    pub state: State,
    pub created_at: i64,
    pub updated_at: i64,
    /// Sequence number of the last event.
    pub last_seq: u64,
    /// What the dialogue policy remembers between turns.
    pub memory: DialogueMemory,
}

/// Dialogue state carried from one turn to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogueMemory {
    /// FAQ ids offered in the last clarifying question, in the order listed.
    #[serde(default)]
    pub pending_options: Vec<String>,
    /// Bot turns in a row that did not answer.
    #[serde(default)]
    pub failed_turns: u32,
}

/// One event of a conversation: a message or a state change. Events are numbered per conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub conversation_id: String,
    pub seq: u64,
    pub created_at: i64,
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventBody {
    Message(Message),
    StateChange(StateChange),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub author: Author,
    pub text: String,
    pub language: String,
    pub client_message_id: Option<String>,
    /// For bot answers, the FAQ entry answered.
    pub faq_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub from: State,
    pub to: State,
    pub handoff_reason: Option<HandoffReason>,
    pub detail: String,
}

/// The decision for one customer message and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub language: String,
    pub explanation: String,
    pub faq_matches: Vec<FaqMatch>,
    pub intents: Vec<IntentScore>,
    pub clarify_options: Vec<String>,
    pub handoff_reason: Option<HandoffReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqMatch {
    pub faq_id: String,
    pub category: String,
    pub question: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentScore {
    pub intent: String,
    pub confidence: f32,
}

/// The outcome of one `SendMessage`: stored with the customer message so a retry replays it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub message: Event,
    pub replies: Vec<Event>,
    pub decision: Decision,
    pub state: State,
}

impl Event {
    pub fn message(&self) -> Option<&Message> {
        match &self.body {
            EventBody::Message(message) => Some(message),
            EventBody::StateChange(_) => None,
        }
    }

    /// Whether this event closes the conversation (watch streams end after it).
    pub fn ends_conversation(&self) -> bool {
        matches!(&self.body, EventBody::StateChange(change) if change.to == State::Ended)
    }
}
