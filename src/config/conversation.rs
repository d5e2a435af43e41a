//! The sections about conversations: languages, the knowledge base, the decision policy and its per-channel
//! limits, hand-offs and office hours, and the KPI targets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Service-level targets: `GetKpis` and `loket stats` say whether each is met. 0 means no target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// Median wait from hand-off to an agent's claim must be at most this many seconds.
    pub median_wait_secs: u64,
    /// Share of ratings that are 4 or 5 (CSAT) must be at least this, in [0, 1].
    pub csat_min: f64,
    /// Share of hand-offs resolved by an agent must be at least this, in [0, 1].
    pub resolution_min: f64,
    /// Share of conversations the bot handled without a person must be at least this, in [0, 1].
    pub deflection_min: f64,
}

impl Default for KpiConfig {
    fn default() -> Self {
        Self { median_wait_secs: 120, csat_min: 0.85, resolution_min: 0.9, deflection_min: 0.7 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// Directory with `faq/*.yaml`, `locales/*.yaml` and the speller's `dictionaries/<language>.txt.zst`. The FAQ
    /// files seed the database on first start; from then on the database is the source of truth (edited through
    /// `KnowledgeService` or `loket kb import`).
    pub dir: PathBuf,
    /// Retrain the intent model in the background after knowledge edits, and swap it in when done.
    pub retrain: bool,
    /// Quiet time after the last edit before a retrain starts, in milliseconds (edits in a burst train once).
    pub retrain_delay_ms: u64,
    /// Training passes of a background retrain (`loket train` uses the same default).
    pub retrain_epochs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageConfig {
    /// Language of a conversation that does not name one, and of messages whose language cannot be detected.
    pub default: String,
    /// Languages served. Each needs `knowledge-base/locales/<code>.yaml` and a translation in every FAQ entry.
    pub supported: Vec<String>,
}

/// Thresholds of the answer / clarify / hand-off policy, on normalised FAQ scores in [0, 1].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The best match must reach this score to be answered.
    pub answer_min_score: f32,
    /// ... and lead the runner-up by this much; otherwise the close candidates are offered (CLARIFY).
    pub answer_min_margin: f32,
    /// Candidates below this score are never offered in a clarifying question.
    pub clarify_min_score: f32,
    /// At most this many candidates in a clarifying question.
    pub clarify_max_options: usize,
    /// How many FAQ matches are reported as evidence.
    pub evidence_matches: usize,
    /// After this many bot turns in a row without an answer, the conversation goes to a human.
    pub max_failed_turns: u32,
    /// Per-language overrides of the thresholds above (key: language code).
    pub languages: BTreeMap<String, PolicyOverride>,
    /// Shifts added to `answer_min_score` per support tier: positive means a human sooner.
    pub tier_shift: TierShift,
    /// FAQ categories a person always handles: a match hands off instead of answering.
    pub always_human_categories: Vec<String>,
    /// The intent model's calibrated confidence needed to answer (with retrieval agreeing).
    pub intent_min_confidence: f32,
    /// ... and its lead over the second intent.
    pub intent_min_margin: f32,
    /// Intents below this confidence are never offered in a clarifying question, and retrieval's clear answer
    /// needs at least this much support from the model.
    pub intent_clarify_min: f32,
    /// Retrieval's score the model's chosen entry needs for the two to agree.
    pub retrieval_agree_min: f32,
    /// Confidence at which the model's greeting / thanks / goodbye / person / frustration intents are acted on.
    pub conversational_min_confidence: f32,
    /// Probability of the model's out-of-scope class at which a message nothing in the FAQ matches is declined as
    /// off-topic (with the offer of a colleague) instead of handed off; the model's own out-of-scope verdict
    /// counts too. Shifted by tier like `answer_min_score`.
    pub off_topic_min_confidence: f32,
    /// Topics (FAQ categories, most entries first) listed in the menu for a message that names none.
    pub menu_max_options: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    pub answer_min_score: Option<f32>,
    pub answer_min_margin: Option<f32>,
    pub clarify_min_score: Option<f32>,
    pub intent_min_confidence: Option<f32>,
    pub intent_min_margin: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierShift {
    pub basic: f32,
    pub standard: f32,
    pub advanced: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// Replies on social media are cut (at a sentence where possible) to this many characters.
    pub social_max_chars: usize,
    /// Replies in chat and messaging apps are cut to this many characters (0: no limit).
    pub chat_max_chars: usize,
}

/// Routing of hand-offs to agents, office hours and waiting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoffConfig {
    /// Skill for hand-offs without a known topic.
    pub default_skill: String,
    /// Expected wait told to the customer while no claim times have been measured for a skill, in seconds.
    pub default_expected_wait_secs: u64,
    /// How many recent claims the expected wait is estimated from (their median).
    pub wait_sample: u32,
    /// Office hours of every skill without its own entry in `skill_hours`.
    pub office_hours: OfficeHoursConfig,
    /// Office hours per skill (key: skill).
    pub skill_hours: BTreeMap<String, OfficeHoursConfig>,
}

/// A weekly schedule in a time zone, with dates on which it is closed all day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeHoursConfig {
    /// IANA time zone name.
    pub timezone: String,
    /// Opening hours per weekday as "HH:MM-HH:MM" ranges; an empty list is closed all day. "00:00-24:00" is all day.
    pub monday: Vec<String>,
    pub tuesday: Vec<String>,
    pub wednesday: Vec<String>,
    pub thursday: Vec<String>,
    pub friday: Vec<String>,
    pub saturday: Vec<String>,
    pub sunday: Vec<String>,
    /// Dates ("YYYY-MM-DD") on which nobody is available: one-off closures.
    pub closed_dates: Vec<String>,
    /// Days ("MM-DD") closed every year: fixed-date public holidays.
    pub closed_every_year: Vec<String>,
    /// Days closed every year counted from Easter Sunday (Gregorian): 1 is Easter Monday, -2 Good Friday, 39
    /// Ascension Day, 50 Whit Monday. Together with `closed_every_year` this spells most countries' public
    /// holidays without a list per year.
    pub closed_after_easter: Vec<i32>,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            default_skill: "general".into(),
            default_expected_wait_secs: 120,
            wait_sample: 20,
            office_hours: OfficeHoursConfig::default(),
            skill_hours: BTreeMap::new(),
        }
    }
}

impl Default for OfficeHoursConfig {
    fn default() -> Self {
        let weekday = || vec!["08:00-20:00".to_string()];
        Self {
            timezone: "Europe/Amsterdam".into(),
            monday: weekday(),
            tuesday: weekday(),
            wednesday: weekday(),
            thursday: weekday(),
            friday: weekday(),
            saturday: vec!["09:00-17:00".into()],
            sunday: Vec::new(),
            closed_dates: Vec::new(),
            // The Netherlands' public holidays on which shops' service desks commonly close (the default time
            // zone's): New Year, King's Day, Christmas; Easter Monday, Ascension Day, Whit Monday.
            closed_every_year: vec!["01-01".into(), "04-27".into(), "12-25".into(), "12-26".into()],
            closed_after_easter: vec![1, 39, 50],
        }
    }
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("knowledge-base"), retrain: true, retrain_delay_ms: 2000, retrain_epochs: 30 }
    }
}

impl Default for LanguageConfig {
    fn default() -> Self {
        Self { default: "nl".into(), supported: vec!["nl".into(), "en".into()] }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            answer_min_score: 0.5,
            answer_min_margin: 0.12,
            clarify_min_score: 0.3,
            clarify_max_options: 3,
            evidence_matches: 5,
            max_failed_turns: 2,
            languages: BTreeMap::new(),
            tier_shift: TierShift::default(),
            always_human_categories: Vec::new(),
            intent_min_confidence: 0.5,
            intent_min_margin: 0.15,
            intent_clarify_min: 0.1,
            retrieval_agree_min: 0.2,
            conversational_min_confidence: 0.6,
            // The bar at which the model's other non-FAQ intents are acted on (`conversational_min_confidence`).
            off_topic_min_confidence: 0.6,
            menu_max_options: 5,
        }
    }
}

impl Default for TierShift {
    fn default() -> Self {
        Self { basic: -0.05, standard: 0.0, advanced: 0.1 }
    }
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self { social_max_chars: 280, chat_max_chars: 0 }
    }
}
