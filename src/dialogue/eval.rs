//! Offline evaluation of the decision policy on a file of held-out customer phrasings
//! (`lang<TAB>expected<TAB>text`, expected being an FAQ id or `oos`), through the same code path as the service.

use std::fmt;
use std::path::Path;

use super::{Policy, TurnInput};
use crate::conversation::{Channel, DecisionKind, DialogueMemory, Tier};
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
        let pct = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
        writeln!(f, "in-scope phrasings:            {}", self.in_scope)?;
        writeln!(
            f,
            "  answered correctly (top-1):  {} ({:.1}%)",
            self.answered_correctly,
            pct(self.answered_correctly, self.in_scope)
        )?;
        writeln!(
            f,
            "  answered wrongly:            {} ({:.1}%)",
            self.answered_wrongly,
            pct(self.answered_wrongly, self.in_scope)
        )?;
        writeln!(
            f,
            "  clarified, right one offered: {} ({:.1}%)",
            self.clarified_with_expected,
            pct(self.clarified_with_expected, self.in_scope)
        )?;
        writeln!(f, "  not answered (hand-off or other clarification): {}", self.not_answered)?;
        writeln!(f, "out-of-scope phrasings:        {}", self.out_of_scope)?;
        write!(
            f,
            "  wrongly answered:            {} ({:.1}%)",
            self.out_of_scope_answered,
            pct(self.out_of_scope_answered, self.out_of_scope)
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
        let answered = (decision.kind == DecisionKind::Answer).then(|| decision.faq_matches[0].faq_id.clone());
        if phrasing.expected == OUT_OF_SCOPE {
            report.out_of_scope += 1;
            report.out_of_scope_answered += usize::from(answered.is_some());
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
