//! Synthetic knowledge bases of any size, made by recombining the shipped one: every synthetic entry takes the
//! canonical question and ten phrasings of a shipped entry per language, puts in a subject of its own (a compound
//! of two content words, drawn from a pool that grows with the size, log-uniformly so some subjects are common)
//! and swaps another content word half the time. Word frequencies therefore follow the shipped knowledge base,
//! the vocabulary grows with the number of entries, and the held-out messages still find plausible matches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use loket::knowledge::{Faq, KnowledgeBase, Translation};

use crate::rng::Rng;

/// The 20-odd most frequent words of a language are function words ("ik", "de", "how"), not topics.
const FUNCTION_WORDS: usize = 40;
const PHRASINGS: usize = 10;

/// The shipped knowledge base in nl and en.
pub fn shipped(manifest_dir: &Path) -> KnowledgeBase {
    let languages = ["nl".to_owned(), "en".to_owned()];
    KnowledgeBase::load(&manifest_dir.join("knowledge-base"), &languages).expect("shipped knowledge base loads")
}

fn bare(word: &str) -> String {
    word.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Content words of one language with repetitions, so a uniform draw follows their frequency.
fn content_words(kb: &KnowledgeBase, language: &str) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for faq in &kb.faqs {
        for example in faq.translations[language].examples() {
            for word in example.split_whitespace() {
                *counts.entry(bare(word)).or_default() += 1;
            }
        }
    }
    let mut by_frequency: Vec<(&String, &usize)> = counts.iter().collect();
    by_frequency.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let stop: HashSet<String> = kb.locales[language].stop_words.iter().map(|w| bare(w)).collect();
    let function: HashSet<&String> = by_frequency.iter().take(FUNCTION_WORDS).map(|(w, _)| *w).collect();
    let mut out = Vec::new();
    for (word, count) in &by_frequency {
        if word.chars().count() >= 4 && !stop.contains(*word) && !function.contains(word) {
            out.extend(std::iter::repeat_n((*word).clone(), **count));
        }
    }
    out
}

struct Language {
    code: String,
    content: Vec<String>,
    content_set: HashSet<String>,
    subjects: Vec<String>,
}

impl Language {
    fn new(kb: &KnowledgeBase, code: &str, pool: usize, rng: &mut Rng) -> Self {
        let content = content_words(kb, code);
        let content_set = content.iter().cloned().collect();
        let subjects = (0..pool)
            .map(|_| format!("{}{}", content[rng.below(content.len())], content[rng.below(content.len())]))
            .collect();
        Language { code: code.to_owned(), content, content_set, subjects }
    }

    /// Log-uniform over the pool: a few subjects are shared by many entries, most by few.
    fn subject(&self, rng: &mut Rng) -> &str {
        let u = rng.below(1 << 20) as f64 / (1 << 20) as f64;
        let index = (self.subjects.len() as f64).powf(u) as usize - 1;
        &self.subjects[index.min(self.subjects.len() - 1)]
    }

    fn rewrite(&self, text: &str, subject: &str, rng: &mut Rng) -> String {
        let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        let slots: Vec<usize> = (0..words.len()).filter(|&i| self.content_set.contains(&bare(&words[i]))).collect();
        if slots.is_empty() {
            words.push(subject.to_owned());
        } else {
            words[slots[rng.below(slots.len())]] = subject.to_owned();
            if slots.len() > 1 && rng.chance(0.5) {
                words[slots[rng.below(slots.len())]] = self.content[rng.below(self.content.len())].clone();
            }
        }
        words.join(" ")
    }
}

/// A knowledge base of `entries` entries: the shipped ones first, then synthetic ones; same locales.
pub fn knowledge_base(shipped: &KnowledgeBase, entries: usize, seed: u64) -> KnowledgeBase {
    let mut rng = Rng::new(seed);
    let mut faqs: Vec<Faq> = shipped.faqs.iter().take(entries).cloned().collect();
    let pool = (entries / 4).max(50);
    let languages: Vec<Language> =
        shipped.locales.keys().map(|code| Language::new(shipped, code, pool, &mut rng)).collect();
    for number in faqs.len()..entries {
        let base = &shipped.faqs[rng.below(shipped.faqs.len())];
        let mut translations = BTreeMap::new();
        for language in &languages {
            let source = &base.translations[&language.code];
            let subject = language.subject(&mut rng).to_owned();
            let mut examples = source.examples().take(PHRASINGS + 1).map(|t| language.rewrite(t, &subject, &mut rng));
            let question = examples.next().unwrap_or_default();
            let translation = Translation { question, phrasings: examples.collect(), answer: source.answer.clone() };
            translations.insert(language.code.clone(), translation);
        }
        faqs.push(Faq {
            id: format!("synthetic-{number}"),
            category: base.category.clone(),
            skill: base.skill.clone(),
            translations,
        });
    }
    KnowledgeBase::new(faqs, shipped.locales.clone())
}

/// Examples (canonical questions and phrasings) in all languages.
pub fn example_count(kb: &KnowledgeBase) -> usize {
    kb.faqs.iter().flat_map(|faq| faq.translations.values()).map(|t| t.examples().count()).sum()
}
