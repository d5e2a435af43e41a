//! The knowledge-gap list as editors work it: questions the bot could not answer, grouped, each either added as
//! phrasings to an entry or made into a new entry; either closes the gap in the same commit.

use std::collections::BTreeMap;

use super::{Editor, check_revision, live_entry, tidy};
use crate::error::{Error, Result};
use crate::knowledge::Faq;
use crate::knowledge::gaps::{self, GapGroup};
use crate::store::{FaqAction, FaqChange, KnowledgeWrite, StoredFaq};
use crate::text::normalize;

/// Most gaps read to build the grouped list.
const MAX_GAPS_READ: u32 = 10_000;

impl Editor {
    /// Open knowledge gaps, grouped by similarity, largest first.
    pub async fn gaps(&self) -> Result<Vec<GapGroup>> {
        let open = self.store.open_gaps(MAX_GAPS_READ).await?;
        Ok(gaps::group(&open))
    }

    /// Adds the questions of gap group `group_id` as phrasings of entry `faq_id` (at `revision`) and closes them.
    pub async fn attach_gap(&self, group_id: &str, faq_id: &str, revision: i64, author: &str) -> Result<StoredFaq> {
        self.limits.check_id("faq_id", faq_id)?;
        let group = self.gap_group(group_id).await?;
        let mut entries = self.entries.lock().await;
        let current = live_entry(&entries, faq_id)?;
        check_revision(current, revision)?;
        let mut faq = current.faq.clone();
        add_phrasings(&entries, &mut faq, &group);
        self.validate(&entries, &[&faq])?;
        let after = self.stored(faq, current.revision + 1, false, author);
        let change = FaqChange { after: after.clone(), action: FaqAction::Update, expected_revision: Some(revision) };
        let write = self.closing(&group, faq_id, change);
        self.apply(&mut entries, write).await?;
        Ok(after)
    }

    /// Creates `faq` with the questions of gap group `group_id` added as phrasings, and closes them.
    pub async fn create_from_gap(&self, group_id: &str, faq: Faq, author: &str) -> Result<StoredFaq> {
        let group = self.gap_group(group_id).await?;
        let mut faq = tidy(faq);
        let mut entries = self.entries.lock().await;
        if entries.contains_key(&faq.id) {
            return Err(Error::AlreadyExists(format!("FAQ {:?} exists", faq.id)));
        }
        add_phrasings(&entries, &mut faq, &group);
        self.validate(&entries, &[&faq])?;
        let id = faq.id.clone();
        let after = self.stored(faq, 1, false, author);
        let change = FaqChange { after: after.clone(), action: FaqAction::Create, expected_revision: None };
        let write = self.closing(&group, &id, change);
        self.apply(&mut entries, write).await?;
        Ok(after)
    }

    async fn gap_group(&self, group_id: &str) -> Result<GapGroup> {
        self.limits.check_id("gap_id", group_id)?;
        self.gaps()
            .await?
            .into_iter()
            .find(|g| g.id == group_id)
            .ok_or_else(|| Error::NotFound { what: "knowledge gap", id: group_id.to_owned() })
    }

    fn closing(&self, group: &GapGroup, faq_id: &str, change: FaqChange) -> KnowledgeWrite {
        KnowledgeWrite {
            changes: vec![change],
            resolve_gaps: group.gaps.iter().map(|g| g.id.clone()).collect(),
            resolved_faq: Some(faq_id.to_owned()),
            ..self.write()
        }
    }
}

/// Adds a gap group's questions to `faq` in their language, skipping ones it or another live entry already has.
fn add_phrasings(entries: &BTreeMap<String, StoredFaq>, faq: &mut Faq, group: &GapGroup) {
    let taken: std::collections::HashSet<String> = entries
        .values()
        .filter(|e| !e.retired && e.faq.id != faq.id)
        .filter_map(|e| e.faq.translations.get(&group.language))
        .flat_map(|t| t.examples().map(normalize).collect::<Vec<_>>())
        .collect();
    let Some(translation) = faq.translations.get_mut(&group.language) else { return };
    for text in group.examples(usize::MAX) {
        let key = normalize(&text);
        let known = translation.examples().any(|e| normalize(e) == key);
        if !key.is_empty() && !known && !taken.contains(&key) {
            translation.phrasings.push(text);
        }
    }
}
