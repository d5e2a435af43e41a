//! Category files in and out of the database: an import is validated whole and applied all or nothing; an
//! export writes the live entries in the files' format.

use std::path::PathBuf;

use tracing::info;

use super::{Editor, ImportSummary, problems_to_error};
use crate::error::Result;
use crate::knowledge::{Faq, export, parse_files};
use crate::store::{FaqAction, FaqChange, KnowledgeWrite};

impl Editor {
    /// Imports category files (name and YAML text) all-or-nothing: every problem in them is reported and nothing
    /// changes unless there is none. With `replace`, live entries absent from the files are retired.
    pub async fn import(&self, files: Vec<(String, String)>, replace: bool, author: &str) -> Result<ImportSummary> {
        let files: Vec<(PathBuf, String)> = files.into_iter().map(|(name, text)| (PathBuf::from(name), text)).collect();
        let languages = self.languages().to_vec();
        let parsed = parse_files(&files, &languages).map_err(problems_to_error)?;
        let mut entries = self.entries.lock().await;
        let mut summary = ImportSummary::default();
        let mut changes = Vec::new();
        for faq in &parsed {
            match entries.get(&faq.id) {
                None => {
                    summary.created += 1;
                    let after = self.stored(faq.clone(), 1, false, author);
                    changes.push(FaqChange { after, action: FaqAction::Import, expected_revision: None });
                }
                Some(current) if !current.retired && current.faq == *faq => summary.unchanged += 1,
                Some(current) => {
                    summary.updated += 1;
                    let after = self.stored(faq.clone(), current.revision + 1, false, author);
                    let expected_revision = Some(current.revision);
                    changes.push(FaqChange { after, action: FaqAction::Import, expected_revision });
                }
            }
        }
        if replace {
            for current in entries.values().filter(|e| !e.retired && !parsed.iter().any(|f| f.id == e.faq.id)) {
                summary.retired += 1;
                let after = self.stored(current.faq.clone(), current.revision + 1, true, author);
                let expected_revision = Some(current.revision);
                changes.push(FaqChange { after, action: FaqAction::Retire, expected_revision });
            }
        }
        // The files are consistent in themselves; what stays live besides them must be consistent with them.
        let imported: Vec<&Faq> = parsed.iter().collect();
        if !replace {
            self.validate(&entries, &imported)?;
        }
        if !changes.is_empty() {
            self.apply(&mut entries, KnowledgeWrite { changes, ..self.write() }).await?;
        }
        info!(created = summary.created, updated = summary.updated, retired = summary.retired, "knowledge imported");
        Ok(summary)
    }

    /// The live entries as category files (name and YAML text), the format `import` and `knowledge-base/` use.
    pub async fn export(&self) -> Vec<(String, String)> {
        let entries = self.entries.lock().await;
        export(&entries.values().filter(|e| !e.retired).map(|e| &e.faq).collect::<Vec<_>>())
    }
}
