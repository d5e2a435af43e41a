//! What knowledge editors do: create, change and retire FAQ entries (with revisions and optimistic concurrency),
//! import and export the knowledge-base file format, try a query, and work the knowledge-gap list.
//!
//! Every change follows one path: validate against the whole knowledge base, store (all or nothing), rebuild the
//! search index and swap it in (so the very next message is answered from it), then ask the [`retrain`] task
//! for a new intent model, which it trains in the background and hot-swaps. Edits are serialised by one lock:
//! they are rare, and it makes "validate against everything else" exact.

mod gaps;
mod import;
mod retrain;
pub mod seed;

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;

pub use retrain::{RetrainSources, RetrainStatus, Retrainer, trained_version};

use crate::clock::Clock;
use crate::config::Config;
use crate::conversation::{Channel, Decision, DialogueMemory, Tier};
use crate::dialogue::{Policy, TurnInput};
use crate::error::{Error, Result};
use crate::intent::LiveModel;
use crate::knowledge::validate::{Violation, check_across, check_entry};
use crate::knowledge::{Faq, Knowledge, KnowledgeBase, LiveKnowledge, Locale, Problem, Translation};
use crate::store::{FaqAction, FaqChange, FaqRevision, KnowledgeWrite, Store, StoreError, StoredFaq};
use crate::text::Limits;
use crate::webhooks::{EventType, Webhooks, payload};

/// Which fields of an entry an update replaces (`UpdateFaq`'s field mask).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaqMask {
    pub category: bool,
    pub skill: bool,
    /// The whole per-language content (questions, phrasings, answers).
    pub translations: bool,
}

impl FaqMask {
    pub const ALL: FaqMask = FaqMask { category: true, skill: true, translations: true };
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct FaqFilter {
    pub category: Option<String>,
    /// Only this language's content is returned (and searched).
    pub language: Option<String>,
    /// Words that must all occur in the entry's id, questions, phrasings or answers (normalised).
    pub text: Option<String>,
    pub include_retired: bool,
}

/// How an import went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub retired: usize,
}

/// What loket would do with a message, without a conversation (the editors' "try it").
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub decision: Decision,
    pub replies: Vec<String>,
}

pub struct Editor {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    knowledge: Arc<LiveKnowledge>,
    model: Arc<LiveModel>,
    config: Arc<Config>,
    policy: Policy,
    limits: Limits,
    webhooks: Arc<Webhooks>,
    locales: BTreeMap<String, Locale>,
    /// Every entry ever stored (retired too), by id; changed only under this lock, after the store committed.
    entries: tokio::sync::Mutex<BTreeMap<String, StoredFaq>>,
    retrainer: Arc<Retrainer>,
    /// Numbers edits, so a retrain knows which edits its model learned.
    edits: std::sync::atomic::AtomicU64,
}

/// What the editor is built from: the parts of the application context it uses.
pub struct EditorParts {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub knowledge: Arc<LiveKnowledge>,
    pub model: Arc<LiveModel>,
    pub config: Arc<Config>,
    pub webhooks: Arc<Webhooks>,
}

impl Editor {
    pub fn new(
        parts: EditorParts,
        entries: Vec<StoredFaq>,
        locales: BTreeMap<String, Locale>,
        retrainer: Arc<Retrainer>,
    ) -> Editor {
        let EditorParts { store, clock, knowledge, model, config, webhooks } = parts;
        let entries = entries.into_iter().map(|e| (e.faq.id.clone(), e)).collect();
        Editor {
            policy: Policy::new(config.policy.clone(), config.channels.clone()),
            limits: config.limits.bounds(),
            store,
            clock,
            knowledge,
            model,
            config,
            webhooks,
            locales,
            entries: tokio::sync::Mutex::new(entries),
            retrainer,
            edits: Default::default(),
        }
    }

    pub fn retrainer(&self) -> &Retrainer {
        &self.retrainer
    }

    /// The retrain task's state, with the entries the model in use leaves to retrieval.
    pub fn retrain_status(&self) -> RetrainStatus {
        let mut status = self.retrainer.status();
        if let Some(model) = self.model.current() {
            status.weak_entries = model.weak_labels().to_vec();
        }
        status
    }

    pub(crate) fn retrainer_handle(&self) -> Arc<Retrainer> {
        Arc::clone(&self.retrainer)
    }

    fn languages(&self) -> &[String] {
        &self.config.languages.supported
    }

    pub async fn get(&self, id: &str) -> Result<StoredFaq> {
        self.limits.check_id("id", id)?;
        self.entries.lock().await.get(id).cloned().ok_or_else(|| Error::NotFound { what: "FAQ", id: id.to_owned() })
    }

    /// Entries matching `filter`, by id, after `page_after` (the last id of the previous page), at most `limit`;
    /// and whether more follow.
    pub async fn list(
        &self,
        filter: &FaqFilter,
        page_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredFaq>, bool)> {
        if let Some(language) = &filter.language {
            self.check_language(language)?;
        }
        let words: Vec<String> = filter.text.as_deref().map(crate::text::words).unwrap_or_default();
        let entries = self.entries.lock().await;
        let mut found = entries
            .values()
            .filter(|e| filter.include_retired || !e.retired)
            .filter(|e| page_after.is_none_or(|after| e.faq.id.as_str() > after))
            .filter(|e| filter.category.as_ref().is_none_or(|c| &e.faq.category == c))
            .filter(|e| words.is_empty() || matches_words(&e.faq, filter.language.as_deref(), &words))
            .take(limit + 1)
            .cloned()
            .map(|mut e| {
                if let Some(language) = &filter.language {
                    e.faq.translations.retain(|l, _| l == language);
                }
                e
            })
            .collect::<Vec<_>>();
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((found, more))
    }

    pub async fn create(&self, faq: Faq, author: &str) -> Result<StoredFaq> {
        let faq = tidy(faq);
        let mut entries = self.entries.lock().await;
        if let Some(existing) = entries.get(&faq.id) {
            let how = if existing.retired { "exists (retired; its id is not reused)" } else { "exists" };
            return Err(Error::AlreadyExists(format!("FAQ {:?} {how}", faq.id)));
        }
        self.validate(&entries, &[&faq])?;
        let after = self.stored(faq, 1, false, author);
        let change = FaqChange { after: after.clone(), action: FaqAction::Create, expected_revision: None };
        self.apply(&mut entries, KnowledgeWrite { changes: vec![change], ..self.write() }).await?;
        Ok(after)
    }

    /// Replaces the masked fields of entry `id`, which must still be at `revision`.
    pub async fn update(&self, patch: Faq, mask: FaqMask, revision: i64, author: &str) -> Result<StoredFaq> {
        let patch = tidy(patch);
        let mut entries = self.entries.lock().await;
        let current = live_entry(&entries, &patch.id)?;
        check_revision(current, revision)?;
        let mut faq = current.faq.clone();
        if mask.category {
            faq.category = patch.category;
        }
        if mask.skill {
            faq.skill = patch.skill;
        }
        if mask.translations {
            faq.translations = patch.translations;
        }
        self.validate(&entries, &[&faq])?;
        let after = self.stored(faq, current.revision + 1, false, author);
        let change = FaqChange { after: after.clone(), action: FaqAction::Update, expected_revision: Some(revision) };
        self.apply(&mut entries, KnowledgeWrite { changes: vec![change], ..self.write() }).await?;
        Ok(after)
    }

    /// Retires entry `id` (kept with its history, no longer answered); `revision`, when given, must match.
    pub async fn retire(&self, id: &str, revision: Option<i64>, author: &str) -> Result<StoredFaq> {
        self.limits.check_id("id", id)?;
        let mut entries = self.entries.lock().await;
        let current = live_entry(&entries, id)?;
        if let Some(revision) = revision {
            check_revision(current, revision)?;
        }
        let after = self.stored(current.faq.clone(), current.revision + 1, true, author);
        let change =
            FaqChange { after: after.clone(), action: FaqAction::Retire, expected_revision: Some(current.revision) };
        self.apply(&mut entries, KnowledgeWrite { changes: vec![change], ..self.write() }).await?;
        Ok(after)
    }

    pub async fn revisions(
        &self,
        faq_id: Option<&str>,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FaqRevision>> {
        if let Some(id) = faq_id {
            self.get(id).await?;
        }
        Ok(self.store.faq_revisions(faq_id, before_version, limit).await?)
    }

    /// What loket would answer to `text` right now, and why; nothing is stored.
    pub fn test_query(&self, text: &str, language: Option<&str>, tier: Tier, channel: Channel) -> Result<TestOutcome> {
        self.limits.check_text(text)?;
        let knowledge = self.knowledge.current();
        let language = match language {
            Some(language) => {
                self.check_language(language)?;
                language.to_owned()
            }
            None => knowledge.index.detect_language(text).unwrap_or_else(|| self.config.languages.default.clone()),
        };
        let model = self.model.current();
        let memory = DialogueMemory::default();
        let input = TurnInput { text, language: &language, tier, channel, memory: &memory };
        let outcome = self.policy.decide(&knowledge, model.as_deref(), &input);
        Ok(TestOutcome { decision: outcome.decision, replies: outcome.replies.into_iter().map(|r| r.text).collect() })
    }

    fn write(&self) -> KnowledgeWrite {
        KnowledgeWrite { at: self.clock.now_millis(), ..Default::default() }
    }

    fn stored(&self, faq: Faq, revision: i64, retired: bool, author: &str) -> StoredFaq {
        StoredFaq { faq, revision, retired, updated_at: self.clock.now_millis(), updated_by: author.to_owned() }
    }

    fn check_language(&self, language: &str) -> Result<()> {
        if self.languages().iter().any(|l| l == language) {
            Ok(())
        } else {
            Err(Error::invalid(
                "language",
                format!("{language:?} is not served (serving {})", self.languages().join(", ")),
            ))
        }
    }

    /// `changed` on their own, and together with every other live entry.
    fn validate(&self, entries: &BTreeMap<String, StoredFaq>, changed: &[&Faq]) -> Result<()> {
        let mut violations: Vec<Violation> = Vec::new();
        for (position, faq) in changed.iter().enumerate() {
            let prefix = if changed.len() > 1 { format!("faqs[{position}].") } else { String::new() };
            violations.extend(
                check_entry(faq, self.languages())
                    .into_iter()
                    .map(|v| Violation { field: format!("{prefix}faq.{}", v.field), reason: v.reason }),
            );
        }
        if violations.is_empty() {
            // The changed entries come first, so a clash is reported on the stored entry they collide with...
            // unless reported on a changed one, which is what the caller can fix: report on theirs.
            let others = entries.values().filter(|e| !e.retired && !changed.iter().any(|c| c.id == e.faq.id));
            let all: Vec<&Faq> = others.map(|e| &e.faq).chain(changed.iter().copied()).collect();
            let first_changed = all.len() - changed.len();
            for (position, violation) in check_across(all.iter().copied()) {
                if position >= first_changed {
                    let id = &all[position].id;
                    violations.push(Violation {
                        field: format!("faq.{}", violation.field),
                        reason: format!("{id}: {}", violation.reason),
                    });
                }
            }
        }
        if violations.is_empty() { Ok(()) } else { Err(Error::InvalidFields(violations)) }
    }

    /// Stores `write`, then rebuilds and swaps the search index, then asks for a retrain.
    async fn apply(&self, entries: &mut BTreeMap<String, StoredFaq>, mut write: KnowledgeWrite) -> Result<()> {
        let webhooks = &self.webhooks;
        for change in &write.changes {
            let key = format!("faq:{}", change.after.faq.id);
            let data = || payload::faq_changed(change);
            webhooks.record(&mut write.deliveries, EventType::FaqChanged, None, &key, write.at, data);
        }
        match self.store.write_knowledge(&write).await {
            Ok(()) => webhooks.wake(),
            Err(StoreError::Conflict) => {
                return Err(Error::Aborted("the FAQ was changed concurrently: read it again and retry".into()));
            }
            Err(e) => return Err(e.into()),
        }
        let changed: Vec<String> = write.changes.iter().map(|c| c.after.faq.id.clone()).collect();
        for change in write.changes {
            entries.insert(change.after.faq.id.clone(), change.after);
        }
        self.swap_in(entries, changed).await
    }

    /// Takes in what another replica changed in the knowledge base: re-reads every entry from the database and,
    /// if any differs, rebuilds and swaps the index and asks for a retrain, as after an edit made here.
    pub async fn reload(&self) -> Result<()> {
        let mut entries = self.entries.lock().await;
        let stored = self.store.faqs().await?;
        let changed: Vec<String> =
            stored.iter().filter(|e| entries.get(&e.faq.id) != Some(*e)).map(|e| e.faq.id.clone()).collect();
        if changed.is_empty() {
            return Ok(());
        }
        *entries = stored.into_iter().map(|e| (e.faq.id.clone(), e)).collect();
        info!(changed = changed.len(), "knowledge changed through another replica");
        self.swap_in(&mut entries, changed).await
    }

    /// Rebuilds the search index from `entries`, swaps it in and asks for a retrain; `changed` entries are
    /// unknown to the current model until then.
    async fn swap_in(&self, entries: &mut BTreeMap<String, StoredFaq>, changed: Vec<String>) -> Result<()> {
        let seq = self.edits.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut untrained = self.knowledge.current().untrained_edits();
        for id in changed {
            untrained.insert(id, seq);
        }
        let started = std::time::Instant::now();
        let live: Vec<Faq> = entries.values().filter(|e| !e.retired).map(|e| e.faq.clone()).collect();
        let base = KnowledgeBase::new(live, self.locales.clone());
        // Indexing is CPU work: off the async workers. The stored change stands even if this failed, and the next
        // start indexes it; a failure here would be a bug (everything stored was validated), so report it.
        let knowledge = tokio::task::spawn_blocking(move || Knowledge::build(base))
            .await
            .map_err(|e| Error::Store(StoreError::Corrupt(format!("indexing task: {e}"))))?
            .map_err(|e| Error::Store(StoreError::Corrupt(format!("indexing: {e}"))))?;
        knowledge.set_untrained_edits(untrained);
        let entries_live = knowledge.base.faqs.len();
        self.knowledge.swap(knowledge);
        info!(entries = entries_live, index_ms = started.elapsed().as_millis() as u64, "knowledge edit live");
        self.retrainer.request();
        Ok(())
    }
}

/// Trims every text, as the file loader does, so the API and files store the same thing.
pub(super) fn tidy(mut faq: Faq) -> Faq {
    faq.id = faq.id.trim().to_owned();
    faq.category = faq.category.trim().to_owned();
    faq.skill = faq.skill.trim().to_owned();
    for t in faq.translations.values_mut() {
        *t = Translation {
            question: t.question.trim().to_owned(),
            phrasings: t.phrasings.iter().map(|p| p.trim().to_owned()).collect(),
            answer: t.answer.trim().to_owned(),
        };
    }
    faq
}

pub(super) fn live_entry<'a>(entries: &'a BTreeMap<String, StoredFaq>, id: &str) -> Result<&'a StoredFaq> {
    entries.get(id).filter(|e| !e.retired).ok_or_else(|| Error::NotFound { what: "FAQ", id: id.to_owned() })
}

pub(super) fn check_revision(current: &StoredFaq, revision: i64) -> Result<()> {
    if revision <= 0 {
        return Err(Error::invalid("revision", "is required: the revision the change is based on"));
    }
    if current.revision != revision {
        return Err(Error::Aborted(format!(
            "FAQ {:?} is at revision {}, not {revision}: someone changed it meanwhile; read it again and retry",
            current.faq.id, current.revision
        )));
    }
    Ok(())
}

fn matches_words(faq: &Faq, language: Option<&str>, words: &[String]) -> bool {
    let mut text = faq.id.replace('-', " ");
    for (l, t) in &faq.translations {
        if language.is_none_or(|language| language == l) {
            for part in t.examples().chain(std::iter::once(t.answer.as_str())) {
                text.push(' ');
                text.push_str(part);
            }
        }
    }
    let have: std::collections::HashSet<String> = crate::text::words(&text).into_iter().collect();
    words.iter().all(|w| have.contains(w))
}

pub(super) fn problems_to_error(problems: Vec<Problem>) -> Error {
    Error::InvalidFields(
        problems
            .into_iter()
            .map(|p| Violation { field: format!("files[{}]:{}", p.file.display(), p.line), reason: p.reason })
            .collect(),
    )
}
