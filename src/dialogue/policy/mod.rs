//! The decision for one customer message: answer, clarify, small talk or hand-off, with its evidence. Pure:
//! no I/O, no clock; everything it needs is passed in, so it is tested and benchmarked on its own.
//!
//! Two signals, which must agree before anything is answered: the intent model's calibrated ranking (when a
//! model is loaded) and FAQ retrieval's normalised score. Either alone can at most lead to a clarifying question.

use crate::config::{ChannelsConfig, PolicyConfig};
use crate::conversation::{
    Channel, Decision, DecisionKind, DialogueMemory, FaqMatch, HandoffReason, IntentScore, MENU_PERSON, Tier,
};
use crate::intent::IntentModel;
use crate::intent::data::{FRUSTRATION, GOODBYE, GREETING, HUMAN_REQUEST, OUT_OF_SCOPE, THANKS};
use crate::knowledge::{Faq, Knowledge, Locale, SmallTalk, chosen_option};
use crate::text::{normalize, shorten};

/// Longest first question kept for a hand-off summary.
const MAX_SUMMARY_CHARS: usize = 500;
/// Messages of at most this many words only get an answer when retrieval alone is clear as well.
const TERSE_WORDS: usize = 2;
/// How many intents are reported as evidence.
const EVIDENCE_INTENTS: usize = 5;
/// How many FAQ entries retrieval scores, so the intent model's choice can be checked against it.
const RETRIEVAL_DEPTH: usize = 20;
/// Most questions listed when the customer picks a topic from the menu (the ordinals understood go to six).
const MENU_TOPIC_QUESTIONS: usize = 6;

mod clarify;
mod draft;
mod followup;

use draft::{Draft, categories, faq_match};

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
    /// A 1-5 rating the customer typed in reply to the rating question, for `memory.rating_handoff`.
    pub rating: Option<u8>,
}

/// The thresholds in force for one turn, after language overrides and the tier shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub answer_min_score: f32,
    pub answer_min_margin: f32,
    pub clarify_min_score: f32,
    pub intent_min_confidence: f32,
    pub intent_min_margin: f32,
    pub off_topic_min_confidence: f32,
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
    /// The model's probability of its explicit out-of-scope class (0 without a model or such a class).
    out_of_scope_class: f32,
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
            // A person sooner (positive shift) also means the bot declines less readily.
            off_topic_min_confidence: (c.off_topic_min_confidence + shift).clamp(0.0, 1.0),
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
        let (intents, out_of_scope, out_of_scope_class) = match model {
            Some(model) => {
                // The whole ranking, so the out-of-scope class's probability is known even when it is not among
                // the best few.
                let mut prediction = model.classify(input.text, usize::MAX);
                let oos = prediction.ranking.iter().find(|(label, _)| label == OUT_OF_SCOPE).map_or(0.0, |r| r.1);
                prediction.ranking.truncate(EVIDENCE_INTENTS);
                (prediction.ranking, prediction.out_of_scope, oos)
            }
            None => (Vec::new(), false, 0.0),
        };
        let top_hit_new = match (model, found.hits.first()) {
            (Some(model), Some(hit)) => {
                let id = &knowledge.base.faqs[hit.faq].id;
                knowledge.untrained(id) || !model.knows(id)
            }
            _ => false,
        };
        let hits = found.hits.iter().map(|h| (h.faq, h.score)).collect();
        let evidence = Evidence { hits, intents, out_of_scope, out_of_scope_class, terse, top_hit_new };
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
        if locale.asks_for_human(&normalized) {
            return self.person_requested(turn, input, locale);
        }
        // A question the bot asked last shapes how a short reply is read.
        if let Some(outcome) = self.pending_reply(knowledge, input, locale, &normalized, &mut turn) {
            return outcome;
        }
        // "help", "vraag", "🙂", "12": no topic to go on, so show what the bot can do instead of guessing.
        if locale.is_vague(&normalized) || !normalized.chars().any(char::is_alphabetic) {
            return self.menu(knowledge, turn, input, locale);
        }
        if evidence.says(HUMAN_REQUEST, conversational) {
            return self.person_requested(turn, input, locale);
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

        // An answer needs real evidence: when most of the message's longer words are unknown to the knowledge base
        // ("hoe ver is de maan van de aarde"), whatever matched is the small print, not the topic.
        let (unknown, long_words) = (found.unknown_words, found.long_words);
        let unknown_topic = unknown > 0 && 2 * unknown >= long_words;
        if unknown_topic {
            turn.explanation.push_str(&format!("; {unknown} of {long_words} words unknown"));
        }
        if !unknown_topic && let Some(faq) = self.agreed_answer(knowledge, model.is_some(), &evidence, &limits) {
            if self.config.always_human_categories.contains(&faq.category) {
                let detail = format!("category {} is always handled by a person", faq.category);
                turn.handoff(HandoffReason::AlwaysHuman, &detail);
                turn.say(&locale.replies.handoff_specialist, None);
                return self.finish(turn, input, DialogueMemory::default());
            }
            return self.answer(turn, input, faq);
        }

        let failed_turns = input.memory.failed_turns + 1;
        if self.off_topic(&evidence, &limits) && !locale.mentions_us(&normalized) {
            // Declined once with an offer of a colleague; a customer who keeps trying gets one anyway.
            if input.memory.offered_person && failed_turns >= self.config.max_failed_turns {
                turn.handoff(HandoffReason::RepeatedFailure, "off-topic again after the bot declined");
                turn.say(&locale.replies.handoff_unsure, None);
                return self.finish(turn, input, DialogueMemory::default());
            }
            turn.kind = DecisionKind::OffTopic;
            turn.skill = None;
            turn.explanation = format!("off topic: {}", turn.explanation);
            let topics: Vec<String> = categories(knowledge).iter().map(|c| locale.category_name(c)).collect();
            turn.say(&locale.replies.off_topic.replace("{topics}", &locale.list(&topics)), None);
            let memory = DialogueMemory { offered_person: true, failed_turns, ..Default::default() };
            return self.finish(turn, input, memory);
        }
        let options = self.clarify_candidates(knowledge, &evidence, &limits);
        let clarified_before = !input.memory.pending_options.is_empty();
        let gave_up = clarified_before && failed_turns >= self.config.max_failed_turns;
        if !options.is_empty() && !gave_up {
            let options: Vec<&Faq> = options.iter().map(|&f| &knowledge.base.faqs[f]).collect();
            return self.clarify(turn, input, locale, &locale.replies.clarify, &options, failed_turns);
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

    /// Whether the message is about something the shop does not do. Either the model's out-of-scope class is
    /// confident and search has no match it would answer from (a word or two in common with an FAQ example is
    /// not a topic), or the out-of-scope class is merely the model's best guess and search finds no entry worth
    /// offering at all. A model that is only unsure between shop topics is no evidence: that goes to a person, as
    /// does a question that mentions the shop itself (the caller checks the locale's `about_us`).
    /// Without a model nothing is declined.
    fn off_topic(&self, evidence: &Evidence, limits: &Thresholds) -> bool {
        let top = evidence.hits.first().map_or(0.0, |h| h.1);
        let confident = evidence.out_of_scope_class >= limits.off_topic_min_confidence;
        let best_guess = evidence.out_of_scope && evidence.top_intent().is_some_and(|(label, _)| label == OUT_OF_SCOPE);
        (confident && top < limits.answer_min_score) || (best_guess && top < limits.clarify_min_score)
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
        // The hand-off the bot asked a rating for stays rateable until it is rated (the service clears it then).
        memory.rating_handoff = input.memory.rating_handoff.clone();
        let replies = turn.replies.into_iter().map(|r| Reply { text: shorten(&r.text, limit), ..r }).collect();
        // `answer` puts the answered entry first.
        let answer_faq_id =
            turn.matches.first().filter(|_| turn.kind == DecisionKind::Answer).map(|m| m.faq_id.clone());
        let mut matches = turn.matches;
        // Best first, whatever was answered (that is `answer_faq_id`).
        matches.sort_by(|a, b| b.score.total_cmp(&a.score));
        matches.truncate(self.config.evidence_matches);
        Outcome {
            rating: turn.rating,
            decision: Decision {
                kind: turn.kind,
                language: turn.language,
                explanation: turn.explanation,
                faq_matches: matches,
                intents: turn.intents,
                clarify_options: turn.clarify_options,
                handoff_reason: turn.handoff_reason,
                answer_faq_id,
            },
            replies,
            memory,
        }
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
        // ... and decline off-topic questions less readily.
        assert!(basic.off_topic_min_confidence < standard.off_topic_min_confidence);
        assert!(standard.off_topic_min_confidence < advanced.off_topic_min_confidence);
        let english = policy.thresholds("en", Tier::Standard);
        assert_eq!((english.answer_min_score, english.intent_min_confidence), (0.6, 0.7));
        assert_eq!(english.answer_min_margin, standard.answer_min_margin, "not overridden: the default");
    }
}
