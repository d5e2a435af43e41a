//! The queues now: hand-offs waiting for a claim per skill and how long the longest has waited. One function for
//! `StatsService.GetQueueSnapshot` and the metrics' queue gauges; it reads, never writes.

use std::collections::{BTreeMap, BTreeSet};

use super::Stats;
use crate::conversation::{Handoff, HandoffState};
use crate::error::Result;
use crate::store::HandoffFilter;

/// The hand-offs waiting for one skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkillQueue {
    pub waiting: u64,
    /// How long the longest-waiting one has waited, in milliseconds (0 when none waits). A callback ticket waits
    /// from the opening time it was given, as the wait until claim counts it.
    pub oldest_wait_millis: i64,
}

/// The queue of every skill in `known` (empty ones too) and of any other skill a `queued` hand-off names.
pub fn by_skill<'a>(
    queued: impl IntoIterator<Item = &'a Handoff>,
    known: &BTreeSet<String>,
    now: i64,
) -> BTreeMap<String, SkillQueue> {
    let mut queues: BTreeMap<String, SkillQueue> =
        known.iter().map(|skill| (skill.clone(), SkillQueue::default())).collect();
    for handoff in queued {
        let queue = queues.entry(handoff.skill.clone()).or_default();
        queue.waiting += 1;
        queue.oldest_wait_millis = queue.oldest_wait_millis.max(now - handoff.pickable_from());
    }
    queues
}

impl Stats {
    /// The queues of the running service now, and when "now" was.
    pub async fn queues(&self) -> Result<(i64, BTreeMap<String, SkillQueue>)> {
        let now = self.now();
        let filter = HandoffFilter { state: Some(HandoffState::Queued), skills: Vec::new() };
        let queued = self.store.handoffs(&filter, None, u32::MAX).await?;
        let known = crate::handoff::known_skills(&self.config.handoff, &self.knowledge.current().base.faqs);
        Ok((now, by_skill(&queued, &known, now)))
    }
}
