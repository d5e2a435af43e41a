//! Knowledge gaps: customer questions the bot could not answer well (handed off for want of a match, or
//! answered only with a clarifying question), grouped by similarity so an editor sees which FAQ is missing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::text::normalize;

/// One recorded question. Its text is redacted of personal data before it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub id: String,
    pub conversation_id: String,
    pub language: String,
    pub text: String,
    /// What the bot did: `low_confidence`, `repeated_failure` (hand-off reasons) or `clarify`.
    pub reason: String,
    /// The entry retrieval or the model thought closest, if any.
    pub best_faq: Option<String>,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    /// The entry the question was attached to, or created from it.
    pub resolved_faq: Option<String>,
}

/// Similar open questions of one language.
#[derive(Debug, Clone, PartialEq)]
pub struct GapGroup {
    /// The id of the group's oldest question: stable while the group's questions stay open.
    pub id: String,
    pub language: String,
    /// Its questions, oldest first.
    pub gaps: Vec<Gap>,
    /// The closest entry most of its questions named, if any.
    pub best_faq: Option<String>,
}

impl GapGroup {
    /// Distinct question texts, oldest first, at most `limit`.
    pub fn examples(&self, limit: usize) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.gaps.iter().filter(|g| seen.insert(normalize(&g.text))).map(|g| g.text.clone()).take(limit).collect()
    }

    pub fn last_at(&self) -> i64 {
        self.gaps.iter().map(|g| g.created_at).max().unwrap_or_default()
    }
}

/// Questions whose word sets overlap at least this much (Jaccard) are one gap.
const SIMILAR: f32 = 0.5;
/// A question is compared with at most this many members of a group.
const COMPARED_MEMBERS: usize = 20;

/// Rough word stems: lowercase, accents folded, words of 3+ letters cut to 6 characters, so "refund",
/// "refunds" and "refunded" meet. Language-neutral on purpose: gaps span every language served.
fn stems(text: &str) -> BTreeSet<String> {
    // Redaction placeholders ("[email]") say nothing about the topic.
    let words: Vec<&str> = text.split_whitespace().filter(|w| !(w.starts_with('[') && w.contains(']'))).collect();
    normalize(&words.join(" "))
        .split(' ')
        .filter(|w| w.chars().count() >= 3)
        .map(|w| w.chars().take(6).collect())
        .collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f32 {
    let shared = a.intersection(b).count();
    let all = a.len() + b.len() - shared;
    if all == 0 { 0.0 } else { shared as f32 / all as f32 }
}

/// Groups `gaps` (any order): each joins the first group of its language holding a similar question (among its
/// first few, which bounds the work), else starts a group. Largest groups first, then most recent.
pub fn group(gaps: &[Gap]) -> Vec<GapGroup> {
    let mut sorted: Vec<&Gap> = gaps.iter().collect();
    sorted.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let mut groups: Vec<(Vec<BTreeSet<String>>, GapGroup)> = Vec::new();
    for gap in sorted {
        let words = stems(&gap.text);
        let home = groups.iter_mut().find(|(members, group)| {
            group.language == gap.language
                && members.iter().any(|m| jaccard(m, &words) >= SIMILAR || (m.is_empty() && words.is_empty()))
        });
        match home {
            Some((members, group)) => {
                if members.len() < COMPARED_MEMBERS {
                    members.push(words);
                }
                group.gaps.push(gap.clone());
            }
            None => {
                let group = GapGroup {
                    id: gap.id.clone(),
                    language: gap.language.clone(),
                    gaps: vec![gap.clone()],
                    best_faq: None,
                };
                groups.push((vec![words], group));
            }
        }
    }
    let mut groups: Vec<GapGroup> = groups
        .into_iter()
        .map(|(_, mut group)| {
            group.best_faq = most_named(&group.gaps);
            group
        })
        .collect();
    groups.sort_by(|a, b| b.gaps.len().cmp(&a.gaps.len()).then(b.last_at().cmp(&a.last_at())));
    groups
}

fn most_named(gaps: &[Gap]) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for faq in gaps.iter().filter_map(|g| g.best_faq.as_deref()) {
        *counts.entry(faq).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(faq, _)| faq.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(id: &str, language: &str, text: &str, at: i64) -> Gap {
        Gap {
            id: id.into(),
            conversation_id: "c".into(),
            language: language.into(),
            text: text.into(),
            reason: "low_confidence".into(),
            best_faq: None,
            created_at: at,
            resolved_at: None,
            resolved_faq: None,
        }
    }

    #[test]
    fn similar_questions_group_and_the_biggest_group_comes_first() {
        let gaps = vec![
            gap("1", "en", "Do you sell gift cards?", 1),
            gap("2", "en", "Can I pay with my bike?", 2),
            gap("3", "en", "do you sell giftcards or gift cards", 3),
            gap("4", "nl", "Verkopen jullie cadeaukaarten?", 4),
            gap("5", "en", "Do you sell gift cards online?", 5),
        ];
        let groups = group(&gaps);
        assert_eq!(groups.len(), 3, "{groups:#?}");
        assert_eq!(groups[0].id, "1");
        assert_eq!(groups[0].gaps.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["1", "3", "5"]);
        assert!(groups.iter().any(|g| g.language == "nl" && g.gaps.len() == 1));
    }
}
