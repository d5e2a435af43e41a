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

/// Groups `gaps` (any order): two questions of one language whose word sets overlap enough are in one group, and
/// so is everything connected through such pairs (the result does not depend on the order of the input). Only
/// questions sharing a word are compared. Largest groups first, then most recent.
pub fn group(gaps: &[Gap]) -> Vec<GapGroup> {
    let mut sorted: Vec<&Gap> = gaps.iter().collect();
    sorted.sort_by(|a, b| a.language.cmp(&b.language).then(a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id)));
    let words: Vec<BTreeSet<String>> = sorted.iter().map(|g| stems(&g.text)).collect();
    let mut parent: Vec<usize> = (0..sorted.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut by_word: std::collections::HashMap<(&str, &str), Vec<usize>> = std::collections::HashMap::new();
    let mut wordless: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for i in 0..sorted.len() {
        let language = sorted[i].language.as_str();
        if words[i].is_empty() {
            // Questions without content words ("??", "hallo") form one group per language.
            let first = *wordless.entry(language).or_insert(i);
            let (a, b) = (root(&mut parent, first), root(&mut parent, i));
            parent[b.max(a)] = b.min(a);
            continue;
        }
        let mut seen = BTreeSet::new();
        for word in &words[i] {
            for &j in by_word.get(&(language, word.as_str())).into_iter().flatten() {
                if seen.insert(j) && jaccard(&words[i], &words[j]) >= SIMILAR {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    // The older question's root stays the root: a group is named by its oldest question.
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
        for word in &words[i] {
            by_word.entry((language, word.as_str())).or_default().push(i);
        }
    }
    let mut groups: std::collections::BTreeMap<usize, GapGroup> = std::collections::BTreeMap::new();
    for (i, gap) in sorted.iter().enumerate() {
        let r = root(&mut parent, i);
        let group = groups.entry(r).or_insert_with(|| GapGroup {
            id: sorted[r].id.clone(),
            language: gap.language.clone(),
            gaps: Vec::new(),
            best_faq: None,
        });
        group.gaps.push((*gap).clone());
    }
    let mut groups: Vec<GapGroup> = groups
        .into_values()
        .map(|mut group| {
            group.best_faq = most_named(&group.gaps);
            group
        })
        .collect();
    groups.sort_by(|a, b| b.gaps.len().cmp(&a.gaps.len()).then(b.last_at().cmp(&a.last_at())).then(a.id.cmp(&b.id)));
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
    fn grouping_does_not_depend_on_the_order_of_the_questions() {
        // B-C are not similar on their own, A links them.
        let a = gap("a", "en", "may I bring my parrot into your shop", 1);
        let b = gap("b", "en", "is my parrot allowed into your shop", 1);
        let c = gap("c", "en", "can i bring my parrot into the shop", 1);
        for order in [[&a, &b, &c], [&b, &c, &a], [&c, &a, &b]] {
            let gaps: Vec<Gap> = order.into_iter().cloned().collect();
            let groups = group(&gaps);
            assert_eq!(groups.len(), 1, "{groups:#?}");
            assert_eq!(groups[0].id, "a");
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
