//! Hand-off to human agents: opening a hand-off with its package (routing by skill, priority, office hours,
//! queue position), and the agents' side: watching the queue, claiming, replying, transferring, resolving,
//! and the customer's rating afterwards. Knows nothing of gRPC.

mod desk;
mod queue;

use std::collections::BTreeSet;

use crate::config::HandoffConfig;
use crate::conversation::{Conversation, Decision, Handoff, HandoffState, Rating, Tier};
use crate::error::{Error, Result as DomainResult};
use crate::knowledge::{Faq, Locale};
use crate::store::{Store, StoreError};

pub use crate::config::hours::{LocalMoment, OfficeHours, Schedules};
pub use desk::Desk;
pub use queue::{EarlierConversation, HandoffPackage, QueueEvent, QueueEventKind, QueueHub, package};

/// A hand-off about to be committed, and what to tell the customer about it.
pub struct Opening {
    pub handoff: Handoff,
    /// Appended to the bot's hand-off message: queue position and wait, or when a person will reply.
    pub notice: String,
}

/// Every skill hand-offs are routed to now: the entries' skills, the default skill and the skills with office hours
/// of their own (what an agent may transfer to, and the metrics' skill labels).
pub fn known_skills(config: &HandoffConfig, faqs: &[Faq]) -> BTreeSet<String> {
    let mut skills: BTreeSet<String> = faqs.iter().map(|f| f.skill.clone()).collect();
    skills.insert(config.default_skill.clone());
    skills.extend(config.skill_hours.keys().cloned());
    skills
}

/// Puts the customer's rating on a resolved hand-off: the one rule for `RateConversation` and for a rating typed
/// in reply to the bot's question. The caller commits it conditional on the hand-off still being RESOLVED.
pub fn rate(handoff: &mut Handoff, score: i32, comment: &str, now: i64) -> DomainResult<()> {
    if !(1..=5).contains(&score) {
        return Err(Error::invalid("score", "must be 1 to 5"));
    }
    if handoff.state != HandoffState::Resolved {
        return Err(Error::FailedPrecondition("the hand-off is not resolved yet".into()));
    }
    if handoff.rating.is_some() {
        return Err(Error::AlreadyExists("this conversation is already rated".into()));
    }
    handoff.rating = Some(Rating { score: score as u8, comment: comment.trim().to_owned(), created_at: now });
    Ok(())
}

fn priority(tier: Tier, frustrated: bool) -> i32 {
    let tier_weight = match tier {
        Tier::Basic => 0,
        Tier::Standard => 1,
        Tier::Advanced => 2,
    };
    tier_weight + if frustrated { 2 } else { 0 }
}

fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// Builds the hand-off for `conversation` (already updated by the turn that decided to hand off) at `now`.
#[allow(clippy::too_many_arguments)]
pub async fn open(
    store: &dyn Store,
    config: &HandoffConfig,
    schedules: &Schedules,
    locale: &Locale,
    conversation: &Conversation,
    decision: &Decision,
    last_message: &str,
    now: i64,
) -> Result<Opening, StoreError> {
    let reason = decision.handoff_reason.unwrap_or(crate::conversation::HandoffReason::LowConfidence);
    let skill = conversation.memory.last_skill.clone().unwrap_or_else(|| config.default_skill.clone());
    let frustrated = reason == crate::conversation::HandoffReason::Frustration;
    let priority = priority(conversation.tier, frustrated);
    let hours = schedules.for_skill(&skill);
    let open_now = hours.is_open(now);
    let (expected_pickup_at, notice) = if open_now {
        let position = store.queued_ahead(&skill, priority, now).await? + 1;
        let waits = store.recent_waits(&skill, config.wait_sample).await?;
        let wait_ms = median(waits).unwrap_or(config.default_expected_wait_secs as i64 * 1000).max(0);
        let minutes = (wait_ms as f64 / 60_000.0).ceil().max(1.0) as i64;
        let notice = locale
            .replies
            .queue_position
            .replace("{position}", &position.to_string())
            .replace("{wait}", &locale.wait(minutes));
        (now + wait_ms, notice)
    } else {
        let next = hours.next_opening(now).unwrap_or(now);
        let when = hours
            .describe(now, next)
            .map(|m| locale.describe_when(m.weekday, m.days_ahead, &m.time))
            .unwrap_or_default();
        (next, locale.replies.out_of_hours.replace("{when}", &when))
    };
    let handoff = Handoff {
        id: uuid::Uuid::new_v4().to_string(),
        conversation_id: conversation.id.clone(),
        state: HandoffState::Queued,
        reason,
        reason_detail: decision.explanation.clone(),
        skill,
        priority,
        language: conversation.language.clone(),
        channel: conversation.channel,
        customer_id: conversation.customer_id.clone(),
        tier: conversation.tier,
        first_ask: conversation.memory.first_ask.clone().unwrap_or_else(|| last_message.to_owned()),
        last_message: last_message.to_owned(),
        intents: decision.intents.clone(),
        faq_candidates: decision.faq_matches.clone(),
        callback: !open_now,
        expected_pickup_at,
        agent_id: None,
        notes: Vec::new(),
        created_at: now,
        claimed_at: None,
        resolved_at: None,
        rating: None,
    };
    Ok(Opening { handoff, notice })
}
