//! `loket train`: the intent model from the knowledge base, written with its model card; optionally evaluated on a
//! held-out file named on the command line (never a path the binary assumes).

use std::path::PathBuf;

use clap::Args;

use super::Common;
use crate::dialogue::{Policy, eval};
use crate::intent;
use crate::knowledge::Knowledge;

#[derive(Args)]
pub(super) struct TrainArgs {
    #[command(flatten)]
    common: Common,
    /// Output directory (default: `trained-model` in the data directory). `--out models/intent` replaces the
    /// shipped model, as its card's recipe does.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Whether the model also reads the built-in lexicon's vector (default: the preset's choice).
    #[arg(long)]
    lexicon: Option<bool>,
    /// Held-out phrasings (`lang<TAB>expected<TAB>text`, like `tests/data/heldout.tsv`) to run through the decision
    /// policy with the new model; the report goes into the model card.
    #[arg(long)]
    heldout: Option<PathBuf>,
}

pub(super) fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.common.config()?;
    // Never the shipped model by default: an experiment must not overwrite what the repository ships.
    let out = args.out.unwrap_or_else(|| config.storage.data_dir.join("trained-model"));
    let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
    let conversational = config.knowledge.dir.join("intents/conversational.yaml");
    let started = std::time::Instant::now();
    let training = intent::service::train_with_lexicon(
        &knowledge.base,
        &conversational,
        &config.languages.supported,
        args.seed,
        args.lexicon,
        crate::progress::meter("training", crate::progress::Style::for_stderr()),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let evaluation = match &args.heldout {
        Some(heldout) => {
            let phrasings = eval::read_phrasings(heldout).map_err(anyhow::Error::msg)?;
            let policy = Policy::new(config.policy.clone(), config.channels.clone());
            let report = eval::evaluate(&knowledge, Some(&training.model), &policy, &phrasings);
            format!("Held-out phrasings (`{}`), through the decision policy:\n\n```\n{report}\n```", heldout.display())
        }
        None => "Not evaluated on held-out phrasings (`loket train --heldout FILE` does).".to_string(),
    };
    intent::service::save(&training, &out, args.seed, &evaluation)?;
    println!("trained in {seconds:.1} s; model written to {}", out.display());
    if out != config.intent.model_dir {
        println!("serve it with `--set intent.model_dir={}`", out.display());
    }
    println!("{evaluation}");
    Ok(())
}
