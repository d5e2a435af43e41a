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
    DecisionKind {
        Answer => "answer",
        Clarify => "clarify",
        Handoff => "handoff",
        SmallTalk => "small_talk",
        Silent => "silent",
        OffTopic => "off_topic",
        Menu => "menu",
        Rating => "rating",
    }
);
named_enum!(
    /// Why a conversation went to a human.
    HandoffReason {
        CustomerRequest => "customer_request",
        LowConfidence => "low_confidence",
        RepeatedFailure => "repeated_failure",
        Frustration => "frustration",
        AlwaysHuman => "always_human",
    }
);
named_enum!(
    /// Where a hand-off is in its life.
    HandoffState { Queued => "queued", Claimed => "claimed", Resolved => "resolved" }
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
    /// The API key that started it; a CLIENT key may only touch its own (None: started without access control).
    #[serde(default)]
    pub owner: Option<String>,
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
    /// The customer's first message, for the hand-off summary.
    #[serde(default)]
    pub first_ask: Option<String>,
    /// The skill of the most recent FAQ topic the customer asked about, for routing a later hand-off.
    #[serde(default)]
    pub last_skill: Option<String>,
    /// Menu options offered in the last bot turn (category names, or [`MENU_PERSON`]), in the order listed.
    #[serde(default)]
    pub pending_menu: Vec<String>,
    /// The last bot turn asked for a 1-5 rating: a short reply is read as one.
    #[serde(default)]
    pub pending_rating: bool,
    /// The last bot turn offered to connect a colleague: "ja" / "no thanks" answers that.
    #[serde(default)]
    pub offered_person: bool,
    /// The resolved hand-off the bot asked a rating for and that is not rated yet. Kept across turns (and later
    /// hand-offs) until it is rated or another resolution asks again, so a rating never lands on the wrong one.
    #[serde(default)]
    pub rating_handoff: Option<String>,
}

/// The menu option that means "a person".
pub const MENU_PERSON: &str = "person";

impl DialogueMemory {
    /// What the bot remembers after an agent resolved `handoff_id`: it asked for a rating of that hand-off.
    pub fn after_resolution(handoff_id: &str) -> DialogueMemory {
        DialogueMemory { pending_rating: true, rating_handoff: Some(handoff_id.to_owned()), ..Default::default() }
    }
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
    /// For agent messages: the agent's display name, as the customer sees it. Absent in events stored before it
    /// existed, which read as without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
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
    /// For an answer: the FAQ entry answered (the matches are in score order, so it need not be the first).
    #[serde(default)]
    pub answer_faq_id: Option<String>,
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

/// A conversation handed to a person: the package an agent acts on, and its life in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub id: String,
    pub conversation_id: String,
    pub state: HandoffState,
    pub reason: HandoffReason,
    pub reason_detail: String,
    pub skill: String,
    /// Higher is more urgent (tier, frustration).
    pub priority: i32,
    pub language: String,
    pub channel: Channel,
    pub customer_id: String,
    pub tier: Tier,
    pub first_ask: String,
    pub last_message: String,
    pub intents: Vec<IntentScore>,
    pub faq_candidates: Vec<FaqMatch>,
    /// Opened outside office hours: a callback ticket.
    pub callback: bool,
    pub expected_pickup_at: i64,
    pub agent_id: Option<String>,
    pub notes: Vec<String>,
    pub created_at: i64,
    /// The first claim; the wait until it is the KPI "wait until an agent picks up".
    pub claimed_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub rating: Option<Rating>,
}

impl Handoff {
    /// From when an agent could pick it up: a callback ticket (opened outside office hours) only from the
    /// opening time it was given. The wait KPIs count from here; the stores keep it as a column.
    pub fn pickable_from(&self) -> i64 {
        if self.callback { self.created_at.max(self.expected_pickup_at) } else { self.created_at }
    }

    /// Milliseconds from hand-off to first claim.
    pub fn wait_millis(&self) -> Option<i64> {
        self.claimed_at.map(|claimed| claimed - self.created_at)
    }
}

/// The customer's satisfaction rating after a resolved hand-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub score: u8,
    pub comment: String,
    pub created_at: i64,
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

// What is free text in the stored records: the one place transcript retention (`Store::redact_before`, every
// backend) learns which fields to pass through the redactor.

impl EventBody {
    /// Applies `redact` to a message's text (state changes carry no free text).
    pub fn redact_text(&mut self, redact: impl Fn(&str) -> String) {
        if let EventBody::Message(message) = self {
            message.text = redact(&message.text);
        }
    }
}

impl Handoff {
    /// Applies `redact` to the summary, the last message, the agents' notes and the rating comment.
    pub fn redact_text(&mut self, redact: impl Fn(&str) -> String) {
        self.first_ask = redact(&self.first_ask);
        self.last_message = redact(&self.last_message);
        self.notes = self.notes.iter().map(|n| redact(n)).collect();
        if let Some(rating) = &mut self.rating {
            rating.comment = redact(&rating.comment);
        }
    }
}

impl DialogueMemory {
    /// Applies `redact` to the remembered first question.
    pub fn redact_text(&mut self, redact: impl Fn(&str) -> String) {
        self.first_ask = self.first_ask.take().map(|t| redact(&t));
    }
}

impl Conversation {
    /// Numbers `body` as this conversation's next event, at `updated_at` (events are numbered 1, 2, ... per
    /// conversation, and a commit stores them with the header's new `last_seq`).
    pub fn next_event(&mut self, body: EventBody) -> Event {
        self.last_seq += 1;
        Event { conversation_id: self.id.clone(), seq: self.last_seq, created_at: self.updated_at, body }
    }

    /// Moves the conversation to `to` and returns the event that records the change.
    pub fn change_state(&mut self, to: State, reason: Option<HandoffReason>, detail: &str) -> Event {
        let change = StateChange { from: self.state, to, handoff_reason: reason, detail: detail.to_owned() };
        self.state = to;
        self.next_event(EventBody::StateChange(change))
    }
}

impl EventBody {
    /// A message from the bot in `language`, answering from FAQ entry `faq_id` when it does.
    pub fn bot_message(text: String, language: &str, faq_id: Option<String>) -> EventBody {
        EventBody::Message(Message {
            id: uuid::Uuid::new_v4().to_string(),
            author: Author::Bot,
            text,
            language: language.to_owned(),
            client_message_id: None,
            faq_id,
            author_name: None,
        })
    }
}
