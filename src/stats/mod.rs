//! Service levels and KPIs over a time range, computed from the stored conversations, hand-offs and turns. One
//! computation serves `StatsService.GetKpis` and `loket stats`; it reads the store and never writes.
//! The definitions here are the ones documented in `proto/loket/v1/stats.proto` and README.md.

pub mod queue;
mod series;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use series::{Granularity, MAX_BUCKETS, Series, SeriesQuery};
pub use table::render;

use crate::clock::Clock;
use crate::config::Config;
use crate::config::KpiConfig;
use crate::conversation::{Channel, HandoffReason, HandoffState, Tier};
use crate::error::{Error, Result};
use crate::knowledge::LiveKnowledge;
use crate::store::{ConversationFacts, HandoffFacts, StatsDetail, StatsRecords, StatsScope, Store};

/// How many intents and knowledge gaps are listed.
const TOP: usize = 10;
/// Example questions shown per knowledge gap.
const GAP_EXAMPLES: usize = 3;
/// The range when none is given: the week before `end`.
pub const DEFAULT_RANGE_MILLIS: i64 = 7 * 24 * 3600 * 1000;

/// Which conversations the KPIs are about: those started in `[start, end)` (Unix milliseconds) that match
/// every filter given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KpiQuery {
    pub start: i64,
    pub end: i64,
    pub channel: Option<Channel>,
    pub tier: Option<Tier>,
    pub language: Option<String>,
    /// Conversations whose skill (latest hand-off's, else the last answered FAQ entry's) is this; hand-off KPIs
    /// count the hand-offs routed to it.
    pub skill: Option<String>,
}

/// Whether a configured target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetStatus {
    Met,
    Breached,
    /// Nothing was measured in the range (for example no ratings).
    NoData,
}

/// A configured target and how the measured value compares with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The bound: a minimum for rates, a maximum in seconds for the median wait.
    pub goal: f64,
    pub status: TargetStatus,
}

/// `count` out of `total`, with its target when one is configured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Ratio {
    pub count: u64,
    pub total: u64,
    pub target: Option<Target>,
}

impl Ratio {
    fn new(count: u64, total: u64) -> Ratio {
        Ratio { count, total, target: None }
    }

    /// `count / total`; `None` when nothing was counted.
    pub fn value(&self) -> Option<f64> {
        (self.total > 0).then(|| self.count as f64 / self.total as f64)
    }

    /// With a minimum target (0: none).
    fn at_least(mut self, goal: f64) -> Ratio {
        if goal > 0.0 {
            let status = match self.value() {
                None => TargetStatus::NoData,
                Some(value) if value >= goal => TargetStatus::Met,
                Some(_) => TargetStatus::Breached,
            };
            self.target = Some(Target { goal, status });
        }
        self
    }
}

/// Durations in seconds: median, 90th percentile (nearest rank), maximum, mean.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Durations {
    pub count: u64,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl Durations {
    fn of_millis(millis: Vec<i64>) -> Durations {
        let mut seconds: Vec<f64> = millis.into_iter().map(|ms| ms as f64 / 1000.0).collect();
        seconds.sort_by(f64::total_cmp);
        let n = seconds.len();
        if n == 0 {
            return Durations::default();
        }
        Durations {
            count: n as u64,
            median: crate::quantile::median(&seconds),
            p90: crate::quantile::nearest_rank(&seconds, 0.9),
            max: seconds.last().copied(),
            mean: Some(seconds.iter().sum::<f64>() / n as f64),
        }
    }
}

/// Wait from hand-off until an agent's first claim.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Wait {
    /// Claimed hand-offs.
    pub claimed: Durations,
    /// The median against `kpi.median_wait_secs`.
    pub median_target: Option<Target>,
    /// Claimed hand-offs that waited longer than the target, plus unclaimed ones waiting longer than it now.
    pub beyond_target: u64,
    /// Hand-offs not claimed yet.
    pub unclaimed: u64,
}

/// Customer satisfaction from the rating asked after a resolved hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Csat {
    /// Mean of the 1-5 scores.
    pub mean_score: Option<f64>,
    /// Ratings of 4 or 5 out of all ratings: the CSAT percentage.
    pub satisfied: Ratio,
    /// Ratings out of resolved hand-offs (each was asked for one).
    pub response: Ratio,
}

/// Customer messages the bot could not answer, grouped by what it took them for.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeGap {
    /// The best intent guess (an FAQ id, a conversational intent or `out_of_scope`); empty when nothing matched.
    pub intent: String,
    pub count: u64,
    /// Up to three of the customers' messages, most recent first.
    pub examples: Vec<String>,
}

/// Every KPI of one query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Kpis {
    pub query: KpiQuery,
    /// Conversations started in the range.
    pub conversations: u64,
    /// Of those, the ones with at least one customer message: the denominator of the conversation rates.
    pub contacts: u64,
    /// Contacts never handed to a person.
    pub deflection: Ratio,
    /// Contacts handed to a person at least once.
    pub handoff_rate: Ratio,
    /// Hand-offs of the range's conversations.
    pub handoffs: u64,
    pub handoffs_by_reason: Vec<(HandoffReason, u64)>,
    pub wait: Wait,
    /// First claim to resolution, of resolved hand-offs.
    pub handle_time: Durations,
    /// Resolved hand-offs out of all hand-offs.
    pub resolution: Ratio,
    pub csat: Csat,
    /// Contacts in which the bot asked at least one clarifying question.
    pub clarification: Ratio,
    /// Contacts in which the bot declined at least one off-topic question (not a hand-off: nobody was queued for it).
    pub off_topic: Ratio,
    /// Customer messages per detected intent, most frequent first.
    pub top_intents: Vec<(String, u64)>,
    pub knowledge_gaps: Vec<KnowledgeGap>,
}

impl KpiQuery {
    /// The week before `now` when no range is given; the week before `end` when only the end is.
    pub fn range(start: Option<i64>, end: Option<i64>, now: i64) -> (i64, i64) {
        let end = end.unwrap_or(now);
        (start.unwrap_or(end - DEFAULT_RANGE_MILLIS), end)
    }
}

/// The KPIs of the running service, for `StatsService`.
pub struct Stats {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    knowledge: Arc<LiveKnowledge>,
    /// The KPI targets, and the hand-off routing that says which skills exist.
    config: Arc<Config>,
}

impl Stats {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        knowledge: Arc<LiveKnowledge>,
        config: Arc<Config>,
    ) -> Self {
        Self { store, clock, knowledge, config }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    pub async fn kpis(&self, query: &KpiQuery) -> Result<Kpis> {
        let skills = faq_skills(&self.knowledge.current().base);
        kpis(&*self.store, query, &self.config.kpi, &skills, self.now()).await
    }
}

/// Checks a query's range.
pub fn check_query(query: &KpiQuery) -> Result<()> {
    if query.start >= query.end {
        return Err(Error::invalid("start_time", "must be before end_time"));
    }
    Ok(())
}

/// Reads the query's records from `store` and computes the KPIs. `faq_skills` maps FAQ ids to skills (for the
/// skill of conversations without a hand-off); `now` is for hand-offs still waiting.
pub async fn kpis(
    store: &dyn Store,
    query: &KpiQuery,
    targets: &KpiConfig,
    faq_skills: &HashMap<String, String>,
    now: i64,
) -> Result<Kpis> {
    check_query(query)?;
    let records = store.stats_records(&query.scope(faq_skills), StatsDetail::TopLists).await?;
    Ok(compute(records, query, targets, now))
}

impl KpiQuery {
    /// What the store selects for this query: the filters, with the FAQ entries of the skill filtered on.
    pub(crate) fn scope(&self, faq_skills: &HashMap<String, String>) -> StatsScope {
        let skill_faqs = match &self.skill {
            Some(skill) => faq_skills.iter().filter(|(_, s)| *s == skill).map(|(faq, _)| faq.clone()).collect(),
            None => Vec::new(),
        };
        StatsScope {
            start: self.start,
            end: self.end,
            channel: self.channel,
            tier: self.tier,
            language: self.language.clone(),
            skill: self.skill.clone(),
            skill_faqs,
        }
    }
}

/// The KPIs of `records`, the conversations the store selected for `query` (the pure part of [`kpis`]); the top
/// lists from what `records` holds of them.
pub fn compute(records: StatsRecords, query: &KpiQuery, targets: &KpiConfig, now: i64) -> Kpis {
    let StatsRecords { conversations, handoffs, intents, gaps } = records;
    let mut kpis = Kpis { query: query.clone(), conversations: conversations.len() as u64, ..Kpis::default() };
    let contacts: Vec<&ConversationFacts> = conversations.iter().filter(|c| c.contact).collect();
    let n_contacts = contacts.len() as u64;
    let count = |flag: fn(&ConversationFacts) -> bool| contacts.iter().filter(|c| flag(c)).count() as u64;
    let handed_off = count(|c| c.handed_off);
    kpis.contacts = n_contacts;
    kpis.deflection = Ratio::new(n_contacts - handed_off, n_contacts).at_least(targets.deflection_min);
    kpis.handoff_rate = Ratio::new(handed_off, n_contacts);
    kpis.clarification = Ratio::new(count(|c| c.clarified), n_contacts);
    kpis.off_topic = Ratio::new(count(|c| c.declined), n_contacts);

    // Hand-off KPIs: the selected conversations' hand-offs (with a skill filter, the store sent only those routed
    // to it).
    kpis.handoffs = handoffs.len() as u64;
    let mut by_reason: BTreeMap<&str, (HandoffReason, u64)> = BTreeMap::new();
    for h in &handoffs {
        by_reason.entry(h.reason.as_str()).or_insert((h.reason, 0)).1 += 1;
    }
    kpis.handoffs_by_reason = by_reason.into_values().collect();
    kpis.handoffs_by_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));

    let target_ms = targets.median_wait_secs as i64 * 1000;
    let mut waits = Vec::new();
    for h in &handoffs {
        match h.claimed_at {
            Some(claimed) => waits.push((claimed - h.pickable_at).max(0)),
            None => {
                kpis.wait.unclaimed += 1;
                if target_ms > 0 && now - h.pickable_at > target_ms {
                    kpis.wait.beyond_target += 1;
                }
            }
        }
    }
    if target_ms > 0 {
        kpis.wait.beyond_target += waits.iter().filter(|w| **w > target_ms).count() as u64;
    }
    kpis.wait.claimed = Durations::of_millis(waits);
    if target_ms > 0 {
        let goal = targets.median_wait_secs as f64;
        let status = match kpis.wait.claimed.median {
            None => TargetStatus::NoData,
            Some(median) if median <= goal => TargetStatus::Met,
            Some(_) => TargetStatus::Breached,
        };
        kpis.wait.median_target = Some(Target { goal, status });
    }

    let resolved: Vec<&HandoffFacts> = handoffs.iter().filter(|h| h.state == HandoffState::Resolved).collect();
    kpis.handle_time = Durations::of_millis(
        resolved.iter().filter_map(|h| Some(h.resolved_at? - h.claimed_at?)).map(|ms| ms.max(0)).collect(),
    );
    kpis.resolution = Ratio::new(resolved.len() as u64, handoffs.len() as u64).at_least(targets.resolution_min);
    let scores: Vec<u8> = handoffs.iter().filter_map(|h| h.rating).collect();
    let satisfied = scores.iter().filter(|s| **s >= 4).count() as u64;
    kpis.csat = Csat {
        mean_score: (!scores.is_empty())
            .then(|| scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64),
        satisfied: Ratio::new(satisfied, scores.len() as u64).at_least(targets.csat_min),
        response: Ratio::new(scores.len() as u64, resolved.len() as u64),
    };

    // The top lists: what the bot took the selected conversations' messages for, and what it could not answer
    // (per detected intent: how many, and the most recent messages with their times).
    kpis.top_intents = top(intents);
    // Per intent: its count, and its messages with their times.
    type Messages<'a> = (u64, Vec<(i64, &'a str)>);
    let mut gaps_of: HashMap<&str, Messages> = HashMap::new();
    for gap in &gaps {
        let (count, texts) = gaps_of.entry(gap.intent.as_str()).or_default();
        *count = gap.count;
        texts.push((gap.created_at, gap.text.as_str()));
    }
    let counts = top(gaps_of.iter().map(|(intent, (count, _))| (intent.to_string(), *count)).collect());
    kpis.knowledge_gaps = counts
        .into_iter()
        .map(|(intent, count)| {
            let mut texts = gaps_of[intent.as_str()].1.clone();
            texts.sort_by_key(|(created_at, _)| std::cmp::Reverse(*created_at));
            let mut examples: Vec<String> = Vec::new();
            for (_, text) in texts {
                if examples.len() == GAP_EXAMPLES {
                    break;
                }
                // Redacted like the editors' gap list: KPIs are read by people who need no personal data.
                let text = crate::privacy::redact(text);
                if !examples.contains(&text) {
                    examples.push(text);
                }
            }
            KnowledgeGap { intent, count, examples }
        })
        .collect();
    kpis
}

/// The `TOP` largest counts, ties by name.
fn top(mut counts: Vec<(String, u64)>) -> Vec<(String, u64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(TOP);
    counts
}

/// FAQ id to skill, from the knowledge base.
pub fn faq_skills(base: &crate::knowledge::KnowledgeBase) -> HashMap<String, String> {
    base.faqs.iter().map(|faq| (faq.id.clone(), faq.skill.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles_follow_their_definitions() {
        let d = Durations::of_millis(vec![4000, 1000, 3000, 2000]);
        assert_eq!((d.median, d.p90, d.max, d.mean), (Some(2.5), Some(4.0), Some(4.0), Some(2.5)));
        let d = Durations::of_millis((1..=10).map(|s| s * 1000).collect());
        assert_eq!((d.median, d.p90), (Some(5.5), Some(9.0)));
        let d = Durations::of_millis(vec![7000]);
        assert_eq!((d.median, d.p90, d.max), (Some(7.0), Some(7.0), Some(7.0)));
        assert_eq!(Durations::of_millis(Vec::new()).median, None);
    }

    #[test]
    fn a_rate_without_data_has_no_status_but_no_data() {
        let rate = Ratio::new(0, 0).at_least(0.9);
        assert_eq!(rate.target.unwrap().status, TargetStatus::NoData);
        assert_eq!(Ratio::new(9, 10).at_least(0.9).target.unwrap().status, TargetStatus::Met);
        assert_eq!(Ratio::new(8, 10).at_least(0.9).target.unwrap().status, TargetStatus::Breached);
        assert_eq!(Ratio::new(8, 10).at_least(0.0).target, None);
    }
}
