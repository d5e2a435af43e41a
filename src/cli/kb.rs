//! `loket kb check|import|export`: the knowledge-base files, and moving them into and out of the database.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::Common;
use crate::App;
use crate::editor::Editor;
use crate::knowledge::{KnowledgeBase, read_category_files};

#[derive(Subcommand)]
pub(super) enum KbCommand {
    /// Validate the knowledge-base files; prints every problem with file and line.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Import category files (`<dir>/faq/*.yaml`, or `<dir>/*.yaml`) into the database, all or nothing.
    /// For a running service use KnowledgeService.ImportFaqs instead: this one is seen at its next start.
    Import {
        #[command(flatten)]
        common: Common,
        /// Directory with the category files.
        dir: PathBuf,
        /// Retire the entries the files do not contain.
        #[arg(long)]
        replace: bool,
        /// Name recorded in the revision history.
        #[arg(long, default_value = "cli")]
        author: String,
        /// Directory of the embedded database (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Export the database's live entries as category files into `<dir>/faq/`.
    Export {
        #[command(flatten)]
        common: Common,
        dir: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub(super) async fn run(command: KbCommand) -> anyhow::Result<()> {
    match command {
        KbCommand::Check { common } => {
            let config = common.config()?;
            let kb = KnowledgeBase::load(&config.knowledge.dir, &config.languages.supported)?;
            let examples: usize =
                kb.faqs.iter().flat_map(|f| f.translations.values()).map(|t| 1 + t.phrasings.len()).sum();
            println!(
                "{}: {} entries, {} examples, languages {}: ok",
                config.knowledge.dir.display(),
                kb.faqs.len(),
                examples,
                config.languages.supported.join(", ")
            );
        }
        KbCommand::Import { common, dir, replace, author, data_dir } => {
            let editor = offline_editor(&common, data_dir).await?;
            let faq_dir = if dir.join("faq").is_dir() { dir.join("faq") } else { dir };
            let files = read_category_files(&faq_dir).map_err(|problem| anyhow::anyhow!("{problem}"))?;
            let files = files.into_iter().map(|(path, text)| (path.display().to_string(), text)).collect();
            let summary = editor.import(files, replace, &author).await?;
            println!(
                "imported: {} created, {} updated, {} unchanged, {} retired",
                summary.created, summary.updated, summary.unchanged, summary.retired
            );
        }
        KbCommand::Export { common, dir, data_dir } => {
            let editor = offline_editor(&common, data_dir).await?;
            let faq_dir = dir.join("faq");
            std::fs::create_dir_all(&faq_dir).with_context(|| format!("creating {}", faq_dir.display()))?;
            let files = editor.export().await;
            for (name, text) in &files {
                std::fs::write(faq_dir.join(name), text).with_context(|| format!("writing {name}"))?;
            }
            println!("exported {} category files to {}", files.len(), faq_dir.display());
        }
    }
    Ok(())
}

/// The knowledge editor on the configured database, without serving (no retrain: `serve` does it at its start).
async fn offline_editor(common: &Common, data_dir: Option<PathBuf>) -> anyhow::Result<Arc<Editor>> {
    let mut config = common.config_in(data_dir)?;
    config.knowledge.retrain = false;
    Ok(App::build(config).await?.editor)
}
