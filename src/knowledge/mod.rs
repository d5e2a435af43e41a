//! The FAQ knowledge base: the entry model, loading and validating `knowledge-base/` files, the per-language
//! locale texts and word lists, and the tantivy index that searches it. Knows nothing of conversations or gRPC.

mod dictionary;
mod files;
pub mod gaps;
mod index;
mod locale;
mod ordinals;
mod speller;
pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use dictionary::{Dictionary, DictionaryError};
pub use files::{Problem, export, load_dir, load_locales, parse_files, read_category_files, read_faq_dir};
pub use index::{FaqIndex, IndexError, SearchHit, SearchResult};
pub use locale::{Locale, SmallTalk};
pub use ordinals::chosen_option;

/// Fewest alternative phrasings an entry needs per language (the shipped knowledge base has at least 6).
pub const MIN_PHRASINGS: usize = 2;

/// One FAQ entry: an intent the bot can answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faq {
    /// Stable id (lowercase letters, digits, hyphens).
    pub id: String,
    /// Category, from the file the entry is in (ordering, delivery, ...).
    pub category: String,
    /// The agent skill that answers this topic in person.
    pub skill: String,
    /// Per language code: the question, phrasings and answer.
    pub translations: BTreeMap<String, Translation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Translation {
    pub question: String,
    pub phrasings: Vec<String>,
    pub answer: String,
}

impl Translation {
    /// The canonical question followed by every phrasing: the examples of this intent.
    pub fn examples(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.phrasings.iter().map(String::as_str))
    }
}

/// The whole knowledge base: entries and locales, validated.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    pub faqs: Vec<Faq>,
    pub locales: BTreeMap<String, Locale>,
    /// Position in `faqs` by id: the policy looks entries up by id on every message.
    positions: HashMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("knowledge base {dir} is invalid:\n{}", format_problems(problems))]
    Invalid { dir: String, problems: Vec<Problem> },
    #[error(transparent)]
    Index(#[from] IndexError),
}

fn format_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

impl KnowledgeBase {
    /// Loads `dir/faq/*.yaml` and `dir/locales/<language>.yaml` for each language, reporting every problem
    /// found (file, line, reason), not just the first.
    pub fn load(dir: &Path, languages: &[String]) -> Result<KnowledgeBase, KnowledgeError> {
        load_dir(dir, languages)
            .map_err(|problems| KnowledgeError::Invalid { dir: dir.display().to_string(), problems })
    }

    pub fn new(faqs: Vec<Faq>, locales: BTreeMap<String, Locale>) -> KnowledgeBase {
        let positions = faqs.iter().enumerate().map(|(position, faq)| (faq.id.clone(), position)).collect();
        KnowledgeBase { faqs, locales, positions }
    }

    /// Position of the entry with this id in `faqs`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.positions.get(id).copied()
    }

    pub fn faq(&self, id: &str) -> Option<&Faq> {
        self.position(id).map(|position| &self.faqs[position])
    }

    /// Words in each language's dictionary (0: the language has none), for the start-up log.
    pub fn dictionary_words(&self) -> BTreeMap<&str, usize> {
        self.locales.iter().map(|(code, l)| (code.as_str(), l.dictionary().map_or(0, |d| d.len()))).collect()
    }

    pub fn locale(&self, language: &str) -> &Locale {
        // Loading guarantees a locale for every configured language; the first is a safe fallback.
        self.locales.get(language).or_else(|| self.locales.values().next()).expect("at least one locale")
    }
}

/// The knowledge base together with its search index: what the dialogue policy consults.
pub struct Knowledge {
    pub base: KnowledgeBase,
    pub index: FaqIndex,
    /// Entries edited since the intent model in use was trained, with the edit's sequence number: the model's
    /// view of them is stale, so retrieval alone decides about them until a retrain has learned them.
    untrained: RwLock<HashMap<String, u64>>,
}

impl Knowledge {
    /// Loads and validates `dir`, then builds the index.
    pub fn load(dir: &Path, languages: &[String]) -> Result<Knowledge, KnowledgeError> {
        Self::build(KnowledgeBase::load(dir, languages)?)
    }

    /// Indexes a validated knowledge base.
    pub fn build(base: KnowledgeBase) -> Result<Knowledge, KnowledgeError> {
        let index = FaqIndex::build(&base)?;
        Ok(Knowledge { base, index, untrained: RwLock::default() })
    }

    /// Whether entry `id` changed after the intent model in use was trained.
    pub fn untrained(&self, id: &str) -> bool {
        self.untrained.read().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// The edited entries the model has not learned, by edit sequence number.
    pub fn untrained_edits(&self) -> HashMap<String, u64> {
        self.untrained.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_untrained_edits(&self, edits: HashMap<String, u64>) {
        *self.untrained.write().unwrap_or_else(|e| e.into_inner()) = edits;
    }

    /// A model trained on every edit up to sequence number `learned` is in use now.
    pub fn learned(&self, learned: u64) {
        self.untrained.write().unwrap_or_else(|e| e.into_inner()).retain(|_, seq| *seq > learned);
    }
}

/// The knowledge the service answers from right now. An edit builds a whole new [`Knowledge`] and swaps it in:
/// a message being decided keeps the `Arc` it started with, the next one sees the edit.
pub struct LiveKnowledge {
    current: RwLock<Arc<Knowledge>>,
}

impl LiveKnowledge {
    pub fn new(knowledge: Knowledge) -> Self {
        LiveKnowledge { current: RwLock::new(Arc::new(knowledge)) }
    }

    pub fn current(&self) -> Arc<Knowledge> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn swap(&self, knowledge: Knowledge) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(knowledge);
    }
}
