//! A turn being decided (what the bot says, whether it hands off) and the small pieces the decisions share.

use super::*;

/// The decision under construction.
pub(super) struct Draft {
    pub(super) language: String,
    /// The skill of the topic the message is about, when one matched well enough to tell.
    pub(super) skill: Option<String>,
    pub(super) kind: DecisionKind,
    pub(super) explanation: String,
    pub(super) matches: Vec<FaqMatch>,
    pub(super) intents: Vec<IntentScore>,
    pub(super) clarify_options: Vec<String>,
    pub(super) handoff_reason: Option<HandoffReason>,
    pub(super) replies: Vec<Reply>,
    pub(super) rating: Option<u8>,
}

impl Draft {
    pub(super) fn new(language: &str) -> Self {
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
            rating: None,
        }
    }

    pub(super) fn say(&mut self, text: &str, faq_id: Option<&str>) {
        self.replies.push(Reply { text: text.to_owned(), faq_id: faq_id.map(str::to_owned) });
    }

    pub(super) fn handoff(&mut self, reason: HandoffReason, detail: &str) {
        self.kind = DecisionKind::Handoff;
        self.handoff_reason = Some(reason);
        self.explanation = format!("{detail} ({})", self.explanation);
    }
}

/// The knowledge base's categories, those with most entries first (ties by name, so files and database agree):
/// what the bot can help with.
pub(super) fn categories(knowledge: &Knowledge) -> Vec<String> {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for faq in &knowledge.base.faqs {
        match counted.iter_mut().find(|(c, _)| *c == faq.category) {
            Some((_, n)) => *n += 1,
            None => counted.push((faq.category.clone(), 1)),
        }
    }
    counted.sort_by(|(a, n), (b, m)| m.cmp(n).then_with(|| a.cmp(b)));
    counted.into_iter().map(|(c, _)| c).collect()
}

pub(super) fn faq_match(entry: &Faq, language: &str, score: f32) -> FaqMatch {
    FaqMatch {
        faq_id: entry.id.clone(),
        category: entry.category.clone(),
        question: entry.translations.get(language).map(|t| t.question.clone()).unwrap_or_default(),
        score,
    }
}
