//! The decision for one customer message: answer, clarify, small talk or hand-off, with its evidence. Pure:
//! no I/O, no clock; everything it needs is passed in, so it is tested and benchmarked on its own.
//!
//! Two signals, which must agree before anything is answered: the intent model's calibrated ranking (when a
//! model is loaded) and FAQ retrieval's normalised score. Either alone can at most lead to a clarifying question.

use crate::config::{ChannelsConfig, PolicyConfig};
use crate::conversation::{
    Channel, Decision, DecisionKind, DialogueMemory, FaqMatch, HandoffReason, IntentScore, Tier,
};
use crate::intent::IntentModel;
use crate::intent::data::{FRUSTRATION, GOODBYE, GREETING, HUMAN_REQUEST, THANKS};
use crate::knowledge::{Faq, Knowledge, SmallTalk, chosen_option};
use crate::text::{normalize, shorten};

/// Longest first question kept for a hand-off summary.
const MAX_SUMMARY_CHARS: usize = 500;
/// Messages of at most this many words only get an answer when retrieval alone is clear as well.
const TERSE_WORDS: usize = 2;
/// How many intents are reported as evidence.
const EVIDENCE_INTENTS: usize = 5;
/// How many FAQ entries retrieval scores, so the intent model's choice can be checked against it.
const RETRIEVAL_DEPTH: usize = 20;

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
    pub intent_min_confidence: f32,
    pub intent_min_margin: f32,
}

pub struct Policy {
    config: PolicyConfig,
    channels: ChannelsConfig,
}

/// Retrieval's and the model's view of one message.
struct Evidence {
    /// FAQ position and retrieval score, best first.
    hits: Vec<(usize, f32)>,
    /// Label and calibrated probability, best first; empty without a model.
    intents: Vec<(String, f32)>,
    out_of_scope: bool,
    /// One- or two-word messages ("retour", "mijn account") are ambiguous however sure the model sounds.
    terse: bool,
    /// Retrieval's best entry is one the model was not trained on (created or edited since) or learned too
    /// poorly (`IntentModel::knows`): until a retrain teaches it, retrieval alone decides about it.
    top_hit_new: bool,
}

impl Evidence {
    fn retrieval(&self, faq: usize) -> f32 {
        self.hits.iter().find(|(f, _)| *f == faq).map_or(0.0, |(_, s)| *s)
    }

    fn top_intent(&self) -> Option<(&str, f32)> {
        self.intents.first().map(|(label, p)| (label.as_str(), *p))
    }

    /// The model names a conversational intent confidently.
    fn says(&self, label: &str, min: f32) -> bool {
        self.top_intent().is_some_and(|(top, p)| top == label && p >= min)
    }
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
        let c = &self.config;
        Thresholds {
            answer_min_score: (over.answer_min_score.unwrap_or(c.answer_min_score) + shift).clamp(0.0, 1.0),
            answer_min_margin: over.answer_min_margin.unwrap_or(c.answer_min_margin),
            clarify_min_score: over.clarify_min_score.unwrap_or(c.clarify_min_score),
            intent_min_confidence: (over.intent_min_confidence.unwrap_or(c.intent_min_confidence) + shift)
                .clamp(0.0, 1.0),
            intent_min_margin: over.intent_min_margin.unwrap_or(c.intent_min_margin),
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

    pub fn decide(&self, knowledge: &Knowledge, model: Option<&IntentModel>, input: &TurnInput<'_>) -> Outcome {
        let locale = knowledge.base.locale(input.language);
        let normalized = normalize(input.text);
        let mut turn = Draft::new(input.language);
        let limits = self.thresholds(input.language, input.tier);
        let conversational = self.config.conversational_min_confidence;

        let found = knowledge.index.search(input.text, input.language, RETRIEVAL_DEPTH);
        let terse = normalized.split(' ').filter(|w| !w.is_empty()).count() <= TERSE_WORDS;
        let (intents, out_of_scope) = match model {
            Some(model) => {
                let prediction = model.classify(input.text, EVIDENCE_INTENTS);
                (prediction.ranking, prediction.out_of_scope)
            }
            None => (Vec::new(), false),
        };
        let top_hit_new = match (model, found.hits.first()) {
            (Some(model), Some(hit)) => {
                let id = &knowledge.base.faqs[hit.faq].id;
                knowledge.untrained(id) || !model.knows(id)
            }
            _ => false,
        };
        let hits = found.hits.iter().map(|h| (h.faq, h.score)).collect();
        let evidence = Evidence { hits, intents, out_of_scope, terse, top_hit_new };
        turn.intents = evidence
            .intents
            .iter()
            .map(|(intent, confidence)| IntentScore { intent: intent.clone(), confidence: *confidence })
            .collect();
        turn.matches =
            evidence.hits.iter().map(|&(f, s)| faq_match(&knowledge.base.faqs[f], input.language, s)).collect();
        let (top, runner_up) = (evidence.hits.first().map_or(0.0, |h| h.1), evidence.hits.get(1).map_or(0.0, |h| h.1));
        if let Some(&(f, score)) = evidence.hits.first()
            && score >= limits.clarify_min_score
        {
            turn.skill = Some(knowledge.base.faqs[f].skill.clone());
        }
        turn.explanation = format!("search best {top:.2}, runner-up {runner_up:.2}");
        if let Some((label, p)) = evidence.top_intent() {
            turn.explanation.push_str(&format!(
                "; intent {label} {p:.2}{}",
                if evidence.out_of_scope { " (out of scope)" } else { "" }
            ));
        }
        if !found.corrections.is_empty() {
            let fixed: Vec<String> = found.corrections.iter().map(|(a, b)| format!("{a}->{b}")).collect();
            turn.explanation.push_str(&format!("; corrected {}", fixed.join(", ")));
        }

        // Humans stay reachable: asking for one is never argued with.
        if locale.asks_for_human(&normalized) || evidence.says(HUMAN_REQUEST, conversational) {
            // "I want a person" names no topic: route by what the conversation was about, if anything.
            if input.memory.last_skill.is_some() {
                turn.skill = input.memory.last_skill.clone();
            }
            turn.handoff(HandoffReason::CustomerRequest, "the customer asked for a person");
            turn.say(&locale.replies.handoff_requested, None);
            return self.finish(turn, input, DialogueMemory::default());
        }
        let pending = &input.memory.pending_options;
        if let Some(choice) = chosen_option(&normalized, pending.len())
            && let Some(faq) = knowledge.base.faq(&pending[choice])
        {
            turn.explanation = format!("the customer chose option {} of the clarifying question", choice + 1);
            turn.matches = vec![faq_match(faq, input.language, 1.0)];
            return self.answer(turn, input, faq);
        }
        let model_small_talk =
            [(GREETING, SmallTalk::Greeting), (THANKS, SmallTalk::Thanks), (GOODBYE, SmallTalk::Goodbye)]
                .into_iter()
                .find(|(label, _)| evidence.says(label, conversational) && top < limits.clarify_min_score)
                .map(|(_, kind)| kind);
        if let Some(kind) = locale.small_talk(&normalized).or(model_small_talk) {
            turn.kind = DecisionKind::SmallTalk;
            turn.explanation = format!("small talk: {kind:?}").to_lowercase();
            turn.say(locale.small_talk_reply(kind), None);
            return self.finish(turn, input, input.memory.clone());
        }
        if locale.sounds_frustrated(input.text, &normalized) || evidence.says(FRUSTRATION, conversational) {
            turn.handoff(HandoffReason::Frustration, "the customer sounds frustrated");
            turn.say(&locale.replies.handoff_frustrated, None);
            return self.finish(turn, input, DialogueMemory::default());
        }

        if let Some(faq) = self.agreed_answer(knowledge, model.is_some(), &evidence, &limits) {
            if self.config.always_human_categories.contains(&faq.category) {
                let detail = format!("category {} is always handled by a person", faq.category);
                turn.handoff(HandoffReason::AlwaysHuman, &detail);
                turn.say(&locale.replies.handoff_specialist, None);
                return self.finish(turn, input, DialogueMemory::default());
            }
            return self.answer(turn, input, faq);
        }

        let failed_turns = input.memory.failed_turns + 1;
        let options = self.clarify_candidates(knowledge, &evidence, &limits);
        let clarified_before = !pending.is_empty();
        let gave_up = clarified_before && failed_turns >= self.config.max_failed_turns;
        if !options.is_empty() && !gave_up {
            turn.kind = DecisionKind::Clarify;
            let mut text = locale.replies.clarify.clone();
            for (n, &faq) in options.iter().enumerate() {
                let question = &knowledge.base.faqs[faq].translations[input.language].question;
                let line = locale.replies.clarify_option.replace("{n}", &(n + 1).to_string());
                text.push('\n');
                text.push_str(&line.replace("{question}", question));
            }
            text.push('\n');
            text.push_str(&locale.replies.clarify_hint);
            turn.say(&text, None);
            turn.clarify_options = options.iter().map(|&f| knowledge.base.faqs[f].id.clone()).collect();
            let memory =
                DialogueMemory { pending_options: turn.clarify_options.clone(), failed_turns, ..Default::default() };
            return self.finish(turn, input, memory);
        }
        let (reason, detail) = if clarified_before {
            (HandoffReason::RepeatedFailure, "a clarifying question did not lead to an answer")
        } else {
            (HandoffReason::LowConfidence, "nothing in the knowledge base matches well enough")
        };
        turn.handoff(reason, detail);
        turn.say(&locale.replies.handoff_unsure, None);
        self.finish(turn, input, DialogueMemory::default())
    }

    /// The FAQ entry both signals point to clearly, if any. Without a model, retrieval alone must be clear.
    fn agreed_answer<'k>(
        &self,
        knowledge: &'k Knowledge,
        has_model: bool,
        evidence: &Evidence,
        limits: &Thresholds,
    ) -> Option<&'k Faq> {
        let retrieval_clear = |faq: usize| {
            let first = evidence.hits.first().is_some_and(|&(f, s)| f == faq && s >= limits.answer_min_score);
            let runner_up = evidence.hits.get(1).map_or(0.0, |h| h.1);
            first && evidence.retrieval(faq) - runner_up >= limits.answer_min_margin
        };
        if !has_model || evidence.top_hit_new {
            let &(faq, _) = evidence.hits.first()?;
            return retrieval_clear(faq).then(|| &knowledge.base.faqs[faq]);
        }
        let (label, p1) = evidence.top_intent()?;
        let p2 = evidence.intents.get(1).map_or(0.0, |i| i.1);
        let faq = knowledge.base.position(label)?;
        let model_clear = !evidence.out_of_scope
            && !evidence.terse
            && p1 >= limits.intent_min_confidence
            && p1 - p2 >= limits.intent_min_margin;
        // The model is sure and retrieval finds the entry relevant, or retrieval is sure and it is also the
        // model's best guess (even one the model alone would not dare: the two signals agree).
        let retrieval_top = evidence.hits.first().map_or(0.0, |h| h.1);
        let retrieval_concurs = evidence.retrieval(faq) >= self.config.retrieval_agree_min
            && retrieval_top - evidence.retrieval(faq) < limits.answer_min_margin;
        let agreed =
            (model_clear && retrieval_concurs) || (retrieval_clear(faq) && p1 >= self.config.intent_clarify_min);
        agreed.then(|| &knowledge.base.faqs[faq])
    }

    /// Entries worth offering: the model's and retrieval's plausible candidates, best first, at most the maximum.
    fn clarify_candidates(&self, knowledge: &Knowledge, evidence: &Evidence, limits: &Thresholds) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = Vec::new();
        if !evidence.out_of_scope {
            for (label, p) in &evidence.intents {
                if *p >= self.config.intent_clarify_min
                    && let Some(faq) = knowledge.base.position(label)
                {
                    scored.push((faq, *p));
                }
            }
        }
        let top = evidence.hits.first().map_or(0.0, |h| h.1);
        for &(faq, score) in &evidence.hits {
            let close = top - score <= 2.0 * limits.answer_min_margin;
            // When the model rules the message out of scope, only a candidate retrieval is sure of is offered:
            // the signals disagree, so ask rather than hand off or answer.
            let allowed = !evidence.out_of_scope || score >= limits.answer_min_score;
            if score >= limits.clarify_min_score && close && allowed && !scored.iter().any(|(f, _)| *f == faq) {
                scored.push((faq, score));
            }
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().map(|(f, _)| f).take(self.config.clarify_max_options).collect()
    }

    fn answer(&self, mut turn: Draft, input: &TurnInput<'_>, faq: &Faq) -> Outcome {
        turn.kind = DecisionKind::Answer;
        turn.skill = Some(faq.skill.clone());
        if let Some(position) = turn.matches.iter().position(|m| m.faq_id == faq.id) {
            // The answered entry leads the evidence.
            let chosen = turn.matches.remove(position);
            turn.matches.insert(0, chosen);
        } else {
            turn.matches.insert(0, faq_match(faq, input.language, 0.0));
        }
        turn.say(&faq.translations[input.language].answer, Some(&faq.id));
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
                intents: turn.intents,
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
    intents: Vec<IntentScore>,
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
            intents: Vec::new(),
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
        self.explanation = format!("{detail} ({})", self.explanation);
    }
}

fn faq_match(entry: &Faq, language: &str, score: f32) -> FaqMatch {
    FaqMatch {
        faq_id: entry.id.clone(),
        category: entry.category.clone(),
        question: entry.translations.get(language).map(|t| t.question.clone()).unwrap_or_default(),
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, PolicyOverride};

    #[test]
    fn tiers_move_the_thresholds_and_languages_override_them() {
        let mut config = Config::default();
        config.policy.languages.insert(
            "en".into(),
            PolicyOverride { answer_min_score: Some(0.6), intent_min_confidence: Some(0.7), ..Default::default() },
        );
        let policy = Policy::new(config.policy.clone(), config.channels.clone());
        let (basic, standard, advanced) = (
            policy.thresholds("nl", Tier::Basic),
            policy.thresholds("nl", Tier::Standard),
            policy.thresholds("nl", Tier::Advanced),
        );
        // ADVANCED customers need a surer answer (a person sooner); BASIC ones get more automation.
        assert!(
            basic.answer_min_score < standard.answer_min_score && standard.answer_min_score < advanced.answer_min_score
        );
        assert!(basic.intent_min_confidence < standard.intent_min_confidence);
        assert!(standard.intent_min_confidence < advanced.intent_min_confidence);
        let english = policy.thresholds("en", Tier::Standard);
        assert_eq!((english.answer_min_score, english.intent_min_confidence), (0.6, 0.7));
        assert_eq!(english.answer_min_margin, standard.answer_min_margin, "not overridden: the default");
    }
}
