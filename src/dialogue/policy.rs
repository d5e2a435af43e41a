//! The decision for one customer message: answer, clarify, small talk or hand-off, with its evidence. Pure:
//! no I/O, no clock; everything it needs is passed in, so it is tested and benchmarked on its own.

use crate::config::{ChannelsConfig, PolicyConfig};
use crate::conversation::{Channel, Decision, DecisionKind, DialogueMemory, FaqMatch, HandoffReason, Tier};
use crate::knowledge::{Faq, Knowledge, SearchHit, chosen_option};
use crate::text::{normalize, shorten};

/// Longest first question kept for a hand-off summary.
const MAX_SUMMARY_CHARS: usize = 500;

/// What the policy was asked about.
pub struct TurnInput<'a> {
    pub text: &'a str,
    pub language: &'a str,
    pub tier: Tier,
    pub channel: Channel,
    pub memory: &'a DialogueMemory,
}

/// One bot reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub faq_id: Option<String>,
}

/// What the policy decided, what to say, and what to remember.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub replies: Vec<Reply>,
    pub memory: DialogueMemory,
}

/// The thresholds in force for one turn, after language overrides and the tier shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub answer_min_score: f32,
    pub answer_min_margin: f32,
    pub clarify_min_score: f32,
}

pub struct Policy {
    config: PolicyConfig,
    channels: ChannelsConfig,
}

impl Policy {
    pub fn new(config: PolicyConfig, channels: ChannelsConfig) -> Self {
        Self { config, channels }
    }

    pub fn thresholds(&self, language: &str, tier: Tier) -> Thresholds {
        let over = self.config.languages.get(language).cloned().unwrap_or_default();
        let shift = match tier {
            Tier::Basic => self.config.tier_shift.basic,
            Tier::Standard => self.config.tier_shift.standard,
            Tier::Advanced => self.config.tier_shift.advanced,
        };
        Thresholds {
            answer_min_score: (over.answer_min_score.unwrap_or(self.config.answer_min_score) + shift).clamp(0.0, 1.0),
            answer_min_margin: over.answer_min_margin.unwrap_or(self.config.answer_min_margin),
            clarify_min_score: over.clarify_min_score.unwrap_or(self.config.clarify_min_score),
        }
    }

    /// Longest reply on a channel, in characters (0: no limit).
    pub fn reply_limit(&self, channel: Channel) -> usize {
        match channel {
            Channel::Social => self.channels.social_max_chars,
            Channel::Chat | Channel::Messaging => self.channels.chat_max_chars,
            Channel::Email | Channel::Phone => 0,
        }
    }

    pub fn decide(&self, knowledge: &Knowledge, input: &TurnInput<'_>) -> Outcome {
        let locale = knowledge.base.locale(input.language);
        let normalized = normalize(input.text);
        let mut turn = Draft::new(input.language);

        let pending = &input.memory.pending_options;
        if !locale.asks_for_human(&normalized) {
            if let Some(choice) = chosen_option(&normalized, pending.len())
                && let Some(faq) = knowledge.base.faq(&pending[choice])
            {
                turn.kind = DecisionKind::Answer;
                turn.explanation = format!("the customer chose option {} of the clarifying question", choice + 1);
                turn.matches.push(faq_match(faq, input.language, 1.0));
                turn.skill = Some(faq.skill.clone());
                turn.say(&faq.translations[input.language].answer, Some(&faq.id));
                return self.finish(turn, input, DialogueMemory::default());
            }
            if let Some(kind) = locale.small_talk(&normalized) {
                turn.kind = DecisionKind::SmallTalk;
                turn.explanation = format!("small talk: {kind:?}").to_lowercase();
                turn.say(locale.small_talk_reply(kind), None);
                return self.finish(turn, input, input.memory.clone());
            }
        }

        // Every other path searches: a hand-off needs the evidence for its routing and its package too.
        let found = knowledge.index.search(input.text, input.language, self.config.evidence_matches.max(2));
        turn.matches =
            found.hits.iter().map(|h| faq_match(&knowledge.base.faqs[h.faq], input.language, h.score)).collect();
        let limits = self.thresholds(input.language, input.tier);
        let top = found.hits.first().map_or(0.0, |h| h.score);
        let runner_up = found.hits.get(1).map_or(0.0, |h| h.score);
        if top >= limits.clarify_min_score {
            turn.skill = Some(knowledge.base.faqs[found.hits[0].faq].skill.clone());
        }
        turn.explanation = format!(
            "best match {top:.2}, runner-up {runner_up:.2}; answer needs {:.2} with a lead of {:.2}",
            limits.answer_min_score, limits.answer_min_margin
        );
        if !found.corrections.is_empty() {
            let fixed: Vec<String> = found.corrections.iter().map(|(a, b)| format!("{a}->{b}")).collect();
            turn.explanation.push_str(&format!("; corrected {}", fixed.join(", ")));
        }

        // Humans stay reachable: asking for one is never argued with.
        if locale.asks_for_human(&normalized) {
            // "I want a person" names no topic: route by what the conversation was about, if anything.
            if input.memory.last_skill.is_some() {
                turn.skill = input.memory.last_skill.clone();
            }
            turn.handoff(HandoffReason::CustomerRequest, "the customer asked for a person");
            turn.say(&locale.replies.handoff_requested, None);
            return self.finish(turn, input, DialogueMemory::default());
        }
        if locale.sounds_frustrated(input.text, &normalized) {
            turn.handoff(HandoffReason::Frustration, "the customer sounds frustrated");
            turn.say(&locale.replies.handoff_frustrated, None);
            return self.finish(turn, input, DialogueMemory::default());
        }

        if top >= limits.answer_min_score && top - runner_up >= limits.answer_min_margin {
            let faq = &knowledge.base.faqs[found.hits[0].faq];
            if self.config.always_human_categories.contains(&faq.category) {
                turn.handoff(
                    HandoffReason::AlwaysHuman,
                    &format!("category {} is always handled by a person", faq.category),
                );
                turn.say(&locale.replies.handoff_specialist, None);
                return self.finish(turn, input, DialogueMemory::default());
            }
            turn.kind = DecisionKind::Answer;
            turn.say(&faq.translations[input.language].answer, Some(&faq.id));
            return self.finish(turn, input, DialogueMemory::default());
        }

        let failed_turns = input.memory.failed_turns + 1;
        let options = clarify_candidates(&found.hits, &limits, self.config.clarify_max_options);
        let clarified_before = !pending.is_empty();
        let gave_up = clarified_before && failed_turns >= self.config.max_failed_turns;
        if !options.is_empty() && !gave_up {
            turn.kind = DecisionKind::Clarify;
            let mut text = locale.replies.clarify.clone();
            for (n, hit) in options.iter().enumerate() {
                let question = &knowledge.base.faqs[hit.faq].translations[input.language].question;
                let line = locale.replies.clarify_option.replace("{n}", &(n + 1).to_string());
                text.push('\n');
                text.push_str(&line.replace("{question}", question));
            }
            text.push('\n');
            text.push_str(&locale.replies.clarify_hint);
            turn.say(&text, None);
            turn.clarify_options = options.iter().map(|h| knowledge.base.faqs[h.faq].id.clone()).collect();
            let memory =
                DialogueMemory { pending_options: turn.clarify_options.clone(), failed_turns, ..Default::default() };
            return self.finish(turn, input, memory);
        }
        let (reason, detail) = if clarified_before {
            (HandoffReason::RepeatedFailure, "a clarifying question did not lead to an answer")
        } else {
            (HandoffReason::LowConfidence, "no knowledge-base entry matches well enough")
        };
        turn.handoff(reason, detail);
        turn.say(&locale.replies.handoff_unsure, None);
        self.finish(turn, input, DialogueMemory::default())
    }

    /// Shapes the replies for the channel and seals the outcome.
    fn finish(&self, turn: Draft, input: &TurnInput<'_>, mut memory: DialogueMemory) -> Outcome {
        let limit = self.reply_limit(input.channel);
        let asked = turn.kind != DecisionKind::SmallTalk;
        memory.first_ask =
            input.memory.first_ask.clone().or_else(|| asked.then(|| shorten(input.text.trim(), MAX_SUMMARY_CHARS)));
        memory.last_skill = turn.skill.clone().or_else(|| input.memory.last_skill.clone());
        let replies = turn.replies.into_iter().map(|r| Reply { text: shorten(&r.text, limit), ..r }).collect();
        let mut matches = turn.matches;
        matches.truncate(self.config.evidence_matches);
        Outcome {
            decision: Decision {
                kind: turn.kind,
                language: turn.language,
                explanation: turn.explanation,
                faq_matches: matches,
                intents: Vec::new(),
                clarify_options: turn.clarify_options,
                handoff_reason: turn.handoff_reason,
            },
            replies,
            memory,
        }
    }
}

/// The decision under construction.
struct Draft {
    language: String,
    /// The skill of the topic the message is about, when one matched well enough to tell.
    skill: Option<String>,
    kind: DecisionKind,
    explanation: String,
    matches: Vec<FaqMatch>,
    clarify_options: Vec<String>,
    handoff_reason: Option<HandoffReason>,
    replies: Vec<Reply>,
}

impl Draft {
    fn new(language: &str) -> Self {
        Draft {
            language: language.to_owned(),
            skill: None,
            kind: DecisionKind::Handoff,
            explanation: String::new(),
            matches: Vec::new(),
            clarify_options: Vec::new(),
            handoff_reason: None,
            replies: Vec::new(),
        }
    }

    fn say(&mut self, text: &str, faq_id: Option<&str>) {
        self.replies.push(Reply { text: text.to_owned(), faq_id: faq_id.map(str::to_owned) });
    }

    fn handoff(&mut self, reason: HandoffReason, detail: &str) {
        self.kind = DecisionKind::Handoff;
        self.handoff_reason = Some(reason);
        if self.explanation.is_empty() {
            self.explanation = detail.to_owned();
        } else {
            self.explanation = format!("{detail} ({})", self.explanation);
        }
    }
}

/// Candidates worth offering: above the clarify floor and within reach of the best one.
fn clarify_candidates(hits: &[SearchHit], limits: &Thresholds, max: usize) -> Vec<SearchHit> {
    let Some(top) = hits.first() else { return Vec::new() };
    hits.iter()
        .filter(|h| h.score >= limits.clarify_min_score && top.score - h.score <= 2.0 * limits.answer_min_margin)
        .take(max)
        .cloned()
        .collect()
}

fn faq_match(entry: &Faq, language: &str, score: f32) -> FaqMatch {
    FaqMatch {
        faq_id: entry.id.clone(),
        category: entry.category.clone(),
        question: entry.translations.get(language).map(|t| t.question.clone()).unwrap_or_default(),
        score,
    }
}
