//! Where the served knowledge comes from at start: the database, seeded from `knowledge-base/faq` the first time.

use std::path::Path;

use tracing::info;

use crate::knowledge::validate::check_entry;
use crate::knowledge::{KnowledgeBase, KnowledgeError, Problem, load_locales, parse_files, read_faq_dir};
use crate::store::{FaqAction, FaqChange, KnowledgeWrite, Store, StoredFaq};

/// Who wrote the entries imported from the shipped files on first start.
pub const SEED_AUTHOR: &str = "seed";

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "the knowledge base in the database does not fit the configuration:\n{}\nFix the entries with \
         `loket kb import` (or UpdateFaq) or change the configured languages.",
        .0.join("\n")
    )]
    Stored(Vec<String>),
}

/// Every stored entry (seeding an empty database from `dir` first) and the knowledge base of the live ones.
pub async fn load(
    store: &dyn Store,
    dir: &Path,
    languages: &[String],
    now: i64,
) -> Result<(Vec<StoredFaq>, KnowledgeBase), SeedError> {
    let invalid = |problems: Vec<Problem>| KnowledgeError::Invalid { dir: dir.display().to_string(), problems };
    // The locales bring the dictionaries: a few hundred milliseconds of CPU, kept off the async workers.
    let (owned_dir, owned_languages) = (dir.to_owned(), languages.to_vec());
    let locales = tokio::task::spawn_blocking(move || load_locales(&owned_dir, &owned_languages))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(invalid)?;
    let mut entries = store.faqs().await?;
    if entries.is_empty() {
        let files = read_faq_dir(dir).map_err(|p| invalid(vec![p]))?;
        let faqs = parse_files(&files, languages).map_err(invalid)?;
        let changes: Vec<FaqChange> = faqs
            .into_iter()
            .map(|faq| FaqChange {
                after: StoredFaq { faq, revision: 1, retired: false, updated_at: now, updated_by: SEED_AUTHOR.into() },
                action: FaqAction::Import,
                expected_revision: None,
            })
            .collect();
        match store.write_knowledge(&KnowledgeWrite { changes, at: now, ..Default::default() }).await {
            Ok(()) => info!(dir = %dir.display(), "knowledge base seeded into the database"),
            // Another replica starting on the same empty database seeded it first.
            Err(crate::store::StoreError::Conflict) => info!("knowledge base seeded by another replica"),
            Err(e) => return Err(e.into()),
        }
        entries = store.faqs().await?;
    }
    let problems: Vec<String> = entries
        .iter()
        .filter(|e| !e.retired)
        .flat_map(|e| {
            check_entry(&e.faq, languages)
                .into_iter()
                .map(move |v| format!("  {}: {}: {}", e.faq.id, v.field, v.reason))
        })
        .collect();
    if !problems.is_empty() {
        return Err(SeedError::Stored(problems));
    }
    let live = entries.iter().filter(|e| !e.retired).map(|e| e.faq.clone()).collect();
    Ok((entries, KnowledgeBase::new(live, locales)))
}

/// Whether any change since the seed was made by an editor (so the shipped model no longer fits).
pub async fn edited_since_seed(store: &dyn Store) -> Result<bool, crate::store::StoreError> {
    let newest = store.faq_revisions(None, None, 1).await?;
    Ok(newest.first().is_some_and(|r| r.entry.updated_by != SEED_AUTHOR))
}
