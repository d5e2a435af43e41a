//! Offline evaluation of the decision policy, through the same code path as the service: single held-out customer
//! phrasings (`lang<TAB>expected<TAB>text`, expected being an FAQ id or `oos`), and whole conversations with the
//! expected decision of every turn (`conversations` format, see [`read_conversations`]).

use std::fmt;
use std::path::Path;

use super::{Policy, TurnInput};
use crate::conversation::{Channel, Conversation, DecisionKind, DialogueMemory, State, Tier};
use crate::intent::IntentModel;
use crate::knowledge::Knowledge;

/// Label of out-of-scope phrasings in an evaluation file.
pub const OUT_OF_SCOPE: &str = "oos";

#[derive(Debug, Clone)]
pub struct LabeledPhrasing {
    pub language: String,
    pub expected: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeldoutReport {
    pub in_scope: usize,
    /// Answered with the expected entry.
    pub answered_correctly: usize,
    /// Answered with another entry: the worst outcome.
    pub answered_wrongly: usize,
    /// A clarifying question that offered the expected entry.
    pub clarified_with_expected: usize,
    /// Clarified without the expected entry, or handed off.
    pub not_answered: usize,
    pub out_of_scope: usize,
    /// Out-of-scope phrasings that got an FAQ answer.
    pub out_of_scope_answered: usize,
    /// Out-of-scope phrasings declined as off-topic (the offer of a colleague, nobody queued).
    pub out_of_scope_declined: usize,
    /// Out-of-scope phrasings handed to a person.
    pub out_of_scope_handed_off: usize,
    /// What became of every out-of-scope phrasing: (text, decision kind).
    pub out_of_scope_outcomes: Vec<(String, DecisionKind)>,
    /// The in-scope phrasings answered wrongly: (text, expected, given).
    pub wrong: Vec<(String, String, String)>,
}

impl HeldoutReport {
    /// Share of in-scope phrasings answered with the right entry at once.
    pub fn top1_accuracy(&self) -> f64 {
        self.answered_correctly as f64 / self.in_scope.max(1) as f64
    }
}

impl fmt::Display for HeldoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line per outcome: its count and its share of the phrasings it is counted among.
        let line = |f: &mut fmt::Formatter<'_>, label: &str, n: usize, of: usize| {
            writeln!(f, "  {label:<28} {n} ({:.1}%)", 100.0 * n as f64 / of.max(1) as f64)
        };
        writeln!(f, "in-scope phrasings:            {}", self.in_scope)?;
        line(f, "answered correctly (top-1):", self.answered_correctly, self.in_scope)?;
        line(f, "answered wrongly:", self.answered_wrongly, self.in_scope)?;
        line(f, "clarified, right one offered:", self.clarified_with_expected, self.in_scope)?;
        writeln!(f, "  not answered (hand-off or other clarification): {}", self.not_answered)?;
        writeln!(f, "out-of-scope phrasings:        {}", self.out_of_scope)?;
        line(f, "wrongly answered:", self.out_of_scope_answered, self.out_of_scope)?;
        line(f, "declined as off-topic:", self.out_of_scope_declined, self.out_of_scope)?;
        write!(
            f,
            "  {:<28} {} ({:.1}%)",
            "handed to a person:",
            self.out_of_scope_handed_off,
            100.0 * self.out_of_scope_handed_off as f64 / self.out_of_scope.max(1) as f64
        )
    }
}

/// Reads an evaluation file; malformed lines are reported with their number.
pub fn read_phrasings(path: &Path) -> Result<Vec<LabeledPhrasing>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(language), Some(expected), Some(text), None) => out.push(LabeledPhrasing {
                language: language.trim().to_owned(),
                expected: expected.trim().to_owned(),
                text: text.trim().to_owned(),
            }),
            _ => return Err(format!("{}:{}: expected 3 tab-separated fields", path.display(), number + 1)),
        }
    }
    Ok(out)
}

/// Runs every phrasing as the first message of a standard-tier chat conversation in its language.
pub fn evaluate(
    knowledge: &Knowledge,
    model: Option<&IntentModel>,
    policy: &Policy,
    phrasings: &[LabeledPhrasing],
) -> HeldoutReport {
    let mut report = HeldoutReport::default();
    let memory = DialogueMemory::default();
    for phrasing in phrasings {
        let input = TurnInput {
            text: &phrasing.text,
            language: &phrasing.language,
            tier: Tier::Standard,
            channel: Channel::Chat,
            memory: &memory,
        };
        let decision = policy.decide(knowledge, model, &input).decision;
        let answered = decision.answer_faq_id.clone();
        if phrasing.expected == OUT_OF_SCOPE {
            report.out_of_scope += 1;
            report.out_of_scope_answered += usize::from(answered.is_some());
            report.out_of_scope_declined += usize::from(decision.kind == DecisionKind::OffTopic);
            report.out_of_scope_handed_off += usize::from(decision.kind == DecisionKind::Handoff);
            report.out_of_scope_outcomes.push((phrasing.text.clone(), decision.kind));
            continue;
        }
        report.in_scope += 1;
        match answered {
            Some(id) if id == phrasing.expected => report.answered_correctly += 1,
            Some(id) => {
                report.answered_wrongly += 1;
                report.wrong.push((phrasing.text.clone(), phrasing.expected.clone(), id));
            }
            None if decision.clarify_options.contains(&phrasing.expected) => report.clarified_with_expected += 1,
            None => report.not_answered += 1,
        }
    }
    report
}

/// One conversation of a conversations file: who speaks, and what the bot is expected to decide each turn.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedConversation {
    pub name: String,
    /// The language the front-end started the conversation in (then it changes only when a message is clearly
    /// in another served language).
    pub language: String,
    #[serde(default)]
    pub tier: Option<String>,
    pub turns: Vec<ScriptedTurn>,
}

/// A customer message with its expected decision, or an agent resolving the open hand-off.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedTurn {
    #[serde(default)]
    pub say: Option<String>,
    /// `answer [faq-id]`, `clarify [faq-id offered]`, `handoff [reason]`, `off_topic`, `menu`, `rating [score]`,
    /// `small_talk`, `silent`.
    #[serde(default)]
    pub expect: Option<String>,
    /// The language the message is expected to be handled in, when it matters.
    #[serde(default)]
    pub in_language: Option<String>,
    /// `resolve`: an agent resolved the hand-off; the bot asks for a rating.
    #[serde(default)]
    pub agent: Option<String>,
}

/// How the scripted conversations went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationsReport {
    pub conversations: usize,
    /// Conversations in which every turn went as expected.
    pub conversations_passed: usize,
    pub turns: usize,
    pub turns_passed: usize,
    /// (conversation, turn number, text, expected, got).
    pub failures: Vec<(String, usize, String, String, String)>,
}

impl fmt::Display for ConversationsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
        writeln!(
            f,
            "conversations passed:  {} / {} ({:.1}%)",
            self.conversations_passed,
            self.conversations,
            pct(self.conversations_passed, self.conversations)
        )?;
        write!(
            f,
            "turns passed:          {} / {} ({:.1}%)",
            self.turns_passed,
            self.turns,
            pct(self.turns_passed, self.turns)
        )
    }
}

/// Reads a conversations file (YAML: a list of conversations); every problem names the conversation.
pub fn read_conversations(path: &Path) -> Result<Vec<ScriptedConversation>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let conversations: Vec<ScriptedConversation> =
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for c in &conversations {
        for (n, turn) in c.turns.iter().enumerate() {
            let ok = match (&turn.say, &turn.expect, &turn.agent) {
                (Some(_), Some(expect), None) => parse_expectation(expect).is_some(),
                (None, None, Some(agent)) => agent == "resolve",
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "{}: conversation {:?}, turn {}: needs `say` with a valid `expect`, or `agent: resolve`",
                    path.display(),
                    c.name,
                    n + 1
                ));
            }
        }
    }
    Ok(conversations)
}

fn parse_expectation(expect: &str) -> Option<(DecisionKind, Option<&str>)> {
    let mut parts = expect.split_whitespace();
    let kind = DecisionKind::parse(parts.next()?)?;
    let detail = parts.next();
    parts.next().is_none().then_some((kind, detail))
}

/// Plays every conversation through the policy as the service would: the conversation's language, the memory
/// carried between turns, silence while a person owns it, and the rating question after a resolution.
pub fn evaluate_conversations(
    knowledge: &Knowledge,
    model: Option<&IntentModel>,
    policy: &Policy,
    conversations: &[ScriptedConversation],
) -> ConversationsReport {
    let mut report = ConversationsReport { conversations: conversations.len(), ..Default::default() };
    for scripted in conversations {
        let mut conversation = Conversation {
            id: scripted.name.clone(),
            customer_id: "eval".into(),
            tier: scripted.tier.as_deref().and_then(Tier::parse).unwrap_or(Tier::Standard),
            channel: Channel::Chat,
            language: scripted.language.clone(),
            language_fixed: true,
            metadata: Default::default(),
            state: State::Bot,
            created_at: 0,
            updated_at: 0,
            last_seq: 0,
            memory: DialogueMemory::default(),
            owner: None,
        };
        let mut handoffs = 0;
        let mut passed = true;
        for (n, turn) in scripted.turns.iter().enumerate() {
            let (Some(text), Some(expect)) = (&turn.say, &turn.expect) else {
                // An agent resolved the hand-off: the bot is back and asked for a rating of it.
                conversation.state = State::Bot;
                conversation.memory = DialogueMemory::after_resolution(&format!("h{handoffs}"));
                continue;
            };
            let language = super::message_language(knowledge, &conversation, text);
            conversation.language = language.clone();
            let got = if conversation.state.human_owned() {
                (DecisionKind::Silent, None)
            } else {
                let input = TurnInput {
                    text,
                    language: &language,
                    tier: conversation.tier,
                    channel: conversation.channel,
                    memory: &conversation.memory,
                };
                let outcome = policy.decide(knowledge, model, &input);
                conversation.memory = outcome.memory;
                let decision = outcome.decision;
                let detail = match decision.kind {
                    DecisionKind::Answer => decision.answer_faq_id.clone(),
                    DecisionKind::Handoff => decision.handoff_reason.map(|r| r.as_str().to_owned()),
                    DecisionKind::Rating => outcome.rating.map(|s| s.to_string()),
                    DecisionKind::Clarify => Some(decision.clarify_options.join(",")),
                    _ => None,
                };
                if outcome.rating.is_some() {
                    conversation.memory.rating_handoff = None;
                }
                if decision.handoff_reason.is_some() {
                    conversation.state = State::Queued;
                    handoffs += 1;
                }
                (decision.kind, detail)
            };
            report.turns += 1;
            let (want_kind, want_detail) = parse_expectation(expect).unwrap_or((DecisionKind::Silent, None));
            let detail_ok = match (want_kind, want_detail, &got.1) {
                (_, None, _) => true,
                (DecisionKind::Clarify, Some(id), Some(offered)) => offered.split(',').any(|o| o == id),
                (_, Some(want), Some(have)) => want == have,
                (_, Some(_), None) => false,
            };
            let language_ok = turn.in_language.as_ref().is_none_or(|l| *l == language);
            if got.0 == want_kind && detail_ok && language_ok {
                report.turns_passed += 1;
            } else {
                passed = false;
                let have = format!("{} {} in {language}", got.0.as_str(), got.1.unwrap_or_default());
                report.failures.push((scripted.name.clone(), n + 1, text.clone(), expect.clone(), have));
            }
        }
        report.conversations_passed += usize::from(passed);
    }
    report
}
