//! What the KPIs are computed from ([`StatsRecords`]) and its decoding, written once for both backends.
//!
//! The database selects, Rust computes: each backend picks the conversations a query is about from
//! `conversation_stats` (one narrow row per conversation, kept by triggers, migration 0011), counts their detected
//! intents, and returns each kind of record as one JSON array built by the database rather than as a row per
//! conversation. sqlx hands rows over from its SQLite thread one at a time: for the 100,000 conversations of a
//! 90-day series that took 260 ms, against 45 ms for one array (issue 16: a series in at most 500 ms).

use serde::de::DeserializeOwned;

use super::StoreError;
use super::rows::corrupt;
use crate::conversation::{Channel, HandoffReason, HandoffState, Tier};

/// How much of a range to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsDetail {
    /// Conversations and hand-offs: every rate, wait and score.
    Rates,
    /// Also the top lists: the detected intents and the messages nobody answered.
    TopLists,
}

/// Which conversations to read: those started in `[start, end)` (Unix milliseconds) that match every filter given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsScope {
    pub start: i64,
    pub end: i64,
    pub channel: Option<Channel>,
    pub tier: Option<Tier>,
    pub language: Option<String>,
    /// Conversations whose latest hand-off went to this skill, or that were never handed off and whose last
    /// answered entry is one of `skill_faqs`; of their hand-offs, only those routed to it.
    pub skill: Option<String>,
    /// The FAQ entries of `skill` (the knowledge base says which: the store does not know it).
    pub skill_faqs: Vec<String>,
}

/// What the KPIs are computed from: the conversations of a [`StatsScope`], their hand-offs and, with
/// [`StatsDetail::TopLists`], their detected intents and unanswered messages.
#[derive(Debug, Clone, Default)]
pub struct StatsRecords {
    pub conversations: Vec<ConversationFacts>,
    /// Every hand-off of those conversations (with a skill, those routed to it), whenever it was opened.
    pub handoffs: Vec<HandoffFacts>,
    /// How often each intent was detected, of the messages the bot decided on (not those kept silently for an
    /// agent).
    pub intents: Vec<(String, u64)>,
    /// The messages the bot decided on but was not confident enough to answer, the most recent per intent.
    pub gaps: Vec<GapMessage>,
}

/// What the KPIs read of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationFacts {
    pub created_at: i64,
    /// The customer wrote at least once.
    pub contact: bool,
    /// Handed to a person at least once.
    pub handed_off: bool,
    /// The bot asked a clarifying question at least once.
    pub clarified: bool,
    /// The bot declined an off-topic question at least once.
    pub declined: bool,
}

/// What the KPIs read of a hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffFacts {
    /// When its conversation started: the bucket of a series it counts in.
    pub conversation_created_at: i64,
    /// From when an agent could pick it up ([`crate::conversation::Handoff::pickable_from`]).
    pub pickable_at: i64,
    pub state: HandoffState,
    pub reason: HandoffReason,
    pub claimed_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// The customer's 1-5 score, once rated.
    pub rating: Option<u8>,
}

/// A customer message the bot did not answer for want of confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct GapMessage {
    /// The best intent guess; empty when nothing matched.
    pub intent: String,
    /// How many such messages the scope has for this intent (the stores send only the most recent few).
    pub count: u64,
    pub created_at: i64,
    pub text: String,
}

/// The most recent unanswered messages sent per intent: enough for three different examples after redaction.
pub(super) const GAP_TEXTS: i64 = 20;

/// The kinds of record a backend sends, each as one JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Array {
    Conversations,
    Handoffs,
    Intents,
    Gaps,
}

impl Array {
    /// The arrays `detail` needs, to be read in one transaction: they describe the same conversations.
    pub(super) fn needed(detail: StatsDetail) -> &'static [Array] {
        match detail {
            StatsDetail::Rates => &[Array::Conversations, Array::Handoffs],
            StatsDetail::TopLists => &[Array::Conversations, Array::Handoffs, Array::Intents, Array::Gaps],
        }
    }
}

/// The records the arrays hold.
pub(super) fn decode(arrays: Vec<(Array, String)>) -> Result<StatsRecords, StoreError> {
    let mut records = StatsRecords::default();
    for (array, json) in arrays {
        match array {
            Array::Conversations => records.conversations = conversations_from_json(&json)?,
            Array::Handoffs => records.handoffs = handoffs_from_json(&json)?,
            Array::Intents => records.intents = intents_from_json(&json)?,
            Array::Gaps => records.gaps = gaps_from_json(&json)?,
        }
    }
    Ok(records)
}

fn parse<'a, T: serde::Deserialize<'a>>(what: &str, json: &'a str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(format!("{what}: {e}")))
}

fn owned<T: DeserializeOwned>(what: &str, json: &str) -> Result<Vec<T>, StoreError> {
    parse(what, json)
}

/// `[[created_at, contact, handed_off, clarified, declined], ...]`, the flags 0 or 1.
fn conversations_from_json(json: &str) -> Result<Vec<ConversationFacts>, StoreError> {
    let rows: Vec<(i64, u8, u8, u8, u8)> = owned("conversation_stats", json)?;
    Ok(rows
        .into_iter()
        .map(|(created_at, contact, handed_off, clarified, declined)| ConversationFacts {
            created_at,
            contact: contact != 0,
            handed_off: handed_off != 0,
            clarified: clarified != 0,
            declined: declined != 0,
        })
        .collect())
}

/// `[[conversation_created_at, pickable_at, state, reason, claimed_at, resolved_at, rating], ...]`
fn handoffs_from_json(json: &str) -> Result<Vec<HandoffFacts>, StoreError> {
    type Row<'a> = (i64, i64, &'a str, &'a str, Option<i64>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = parse("handoffs", json)?;
    rows.into_iter()
        .map(|(conversation_created_at, pickable_at, state, reason, claimed_at, resolved_at, rating)| {
            Ok(HandoffFacts {
                conversation_created_at,
                pickable_at,
                state: HandoffState::parse(state).ok_or_else(|| corrupt("handoffs.state"))?,
                reason: HandoffReason::parse(reason).ok_or_else(|| corrupt("handoffs.reason"))?,
                claimed_at,
                resolved_at,
                rating: rating.map(|r| u8::try_from(r).map_err(|_| corrupt("handoffs.rating"))).transpose()?,
            })
        })
        .collect()
}

/// `[[intent, count], ...]`
fn intents_from_json(json: &str) -> Result<Vec<(String, u64)>, StoreError> {
    owned("turn_facts intents", json)
}

/// `[[intent, count, created_at, text], ...]`
fn gaps_from_json(json: &str) -> Result<Vec<GapMessage>, StoreError> {
    let rows: Vec<(String, u64, i64, String)> = owned("turn_facts gaps", json)?;
    Ok(rows
        .into_iter()
        .map(|(intent, count, created_at, text)| GapMessage { intent, count, created_at, text })
        .collect())
}
