//! `loket eval`: the decision policy on held-out phrasings or scripted conversations, or the intent classifier on a
//! benchmark (CLINC150 or any `text,label` CSV files).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::Common;
use crate::config::Config;
use crate::dialogue::{Policy, eval};
use crate::intent::{self, LiveModel};
use crate::knowledge::Knowledge;

#[derive(Args)]
pub(super) struct EvalArgs {
    #[command(flatten)]
    common: Common,
    /// `heldout`: `lang<TAB>expected<TAB>text` phrasings through the policy; `conversations`: whole
    /// conversations (YAML) with every turn's expected decision; `clinc150`: CLINC150's data_full.json;
    /// `csv`: `text,label` files given with --train and --test.
    #[arg(long, value_enum, default_value = "heldout")]
    format: EvalFormat,
    /// The evaluation file (heldout, clinc150).
    #[arg(long, default_value = "tests/data/heldout.tsv")]
    data: PathBuf,
    /// How CLINC150 is cut (clinc150 format): `full` as published; `no-oos` without out-of-scope examples in
    /// training and validation; `10-shot` the first 10 training examples per intent, no out-of-scope, no
    /// validation list (calibrated on a hold-out of those 10).
    #[arg(long, value_enum, default_value = "full")]
    protocol: ProtocolArg,
    /// Training CSV (csv format). Without --valid, every 5th row per label is held out to calibrate the
    /// temperature and the out-of-scope threshold, then the model is trained again on all rows.
    #[arg(long)]
    train: Option<PathBuf>,
    /// Validation CSV (csv format): calibrate on it instead of a hold-out of --train.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Test CSV (csv format).
    #[arg(long)]
    test: Option<PathBuf>,
    /// Label of out-of-scope rows (csv format).
    #[arg(long)]
    oos_label: Option<String>,
    /// Seed of the classifier's training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Whether the classifier also reads the built-in lexicon's vector (default: the preset's choice).
    #[arg(long)]
    lexicon: Option<bool>,
    /// Length of the lexicon vector the network sees (default: the preset's).
    #[arg(long)]
    lexicon_scale: Option<f32>,
    /// Also list the wrongly answered phrasings and the out-of-scope outcomes (heldout format), or the failed
    /// turns (conversations format).
    #[arg(long)]
    verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Full,
    NoOos,
    #[value(name = "10-shot")]
    TenShot,
}

#[derive(Clone, Copy, ValueEnum)]
enum EvalFormat {
    Heldout,
    Conversations,
    Clinc150,
    Csv,
}

pub(super) fn run(args: EvalArgs) -> anyhow::Result<()> {
    let EvalArgs {
        common,
        format,
        data,
        protocol,
        train,
        valid,
        test,
        oos_label,
        seed,
        lexicon,
        lexicon_scale,
        verbose,
    } = args;
    let config = common.config()?;
    match format {
        EvalFormat::Heldout => eval_heldout(&config, &data, verbose),
        EvalFormat::Conversations => eval_conversations(&config, &data, verbose),
        EvalFormat::Clinc150 => {
            let clinc = intent::data::read_clinc150(&data)?;
            let protocol = match protocol {
                ProtocolArg::Full => intent::data::Protocol::Full,
                ProtocolArg::NoOos => intent::data::Protocol::NoOos,
                ProtocolArg::TenShot => intent::data::Protocol::FewShot(10),
            };
            let split = clinc.protocol(protocol);
            let oos = Some(intent::data::CLINC_OOS);
            print_measurement(
                &split.train,
                split.validation.as_deref(),
                &split.test,
                oos,
                seed,
                (lexicon, lexicon_scale),
            )
        }
        EvalFormat::Csv => {
            let (Some(train), Some(test)) = (train, test) else {
                anyhow::bail!("--format csv needs --train and --test");
            };
            let train = read_csv_reporting(&train)?;
            let valid = valid.as_deref().map(read_csv_reporting).transpose()?;
            let test = read_csv_reporting(&test)?;
            print_measurement(&train, valid.as_deref(), &test, oos_label.as_deref(), seed, (lexicon, lexicon_scale))
        }
    }
}

fn eval_heldout(config: &Config, data: &Path, verbose: bool) -> anyhow::Result<()> {
    let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
    let phrasings = eval::read_phrasings(data).map_err(anyhow::Error::msg)?;
    let policy = Policy::new(config.policy.clone(), config.channels.clone());
    let model = LiveModel::open(&config.intent.model_dir).current();
    let mut runs = vec![("search alone", None)];
    if let Some(model) = model.as_deref() {
        runs.push(("search + intent model", Some(model)));
    }
    for (name, model) in runs {
        let report = eval::evaluate(&knowledge, model, &policy, &phrasings);
        println!("{} ({name}):\n{report}", data.display());
        if verbose {
            for (text, expected, given) in &report.wrong {
                println!("  wrong: {text:?} expected {expected}, answered {given}");
            }
            for (text, kind) in &report.out_of_scope_outcomes {
                println!("  out of scope: {text:?} -> {}", kind.as_str());
            }
        }
    }
    Ok(())
}

fn eval_conversations(config: &Config, data: &Path, verbose: bool) -> anyhow::Result<()> {
    let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
    let conversations = eval::read_conversations(data).map_err(anyhow::Error::msg)?;
    let policy = Policy::new(config.policy.clone(), config.channels.clone());
    let model = LiveModel::open(&config.intent.model_dir).current();
    let report = eval::evaluate_conversations(&knowledge, model.as_deref(), &policy, &conversations);
    println!("{}:\n{report}", data.display());
    if verbose {
        for (name, turn, text, expected, got) in &report.failures {
            println!("  {name:?} turn {turn}: {text:?} expected {expected}, got {got}");
        }
    }
    Ok(())
}

/// Reads a `text,label` CSV and says on stderr what was skipped or looks thin.
fn read_csv_reporting(path: &Path) -> anyhow::Result<Vec<intent::Example>> {
    let read = intent::data::read_csv(path)?;
    if !read.empty_rows.is_empty() {
        let lines: Vec<String> = read.empty_rows.iter().take(10).map(usize::to_string).collect();
        let more = if read.empty_rows.len() > 10 { ", ..." } else { "" };
        eprintln!(
            "{}: skipped {} rows with empty text (lines {}{more})",
            path.display(),
            read.empty_rows.len(),
            lines.join(", ")
        );
    }
    for (label, line) in &read.single_examples {
        eprintln!("{}: label {label:?} has a single example (line {line})", path.display());
    }
    Ok(read.examples)
}

fn print_measurement(
    train: &[intent::Example],
    validation: Option<&[intent::Example]>,
    test: &[intent::Example],
    oos_label: Option<&str>,
    seed: u64,
    (lexicon, lexicon_scale): (Option<bool>, Option<f32>),
) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("loket-eval-{}", std::process::id()));
    let mut config = intent::TrainConfig { seed, ..intent::TrainConfig::for_data(train) };
    config.lexicon = lexicon.unwrap_or(config.lexicon);
    config.lexicon_scale = lexicon_scale.unwrap_or(config.lexicon_scale);
    config.progress = crate::progress::meter("training", crate::progress::Style::for_stderr());
    match validation {
        Some(validation) => {
            println!("train {} / validation {} / test {} examples", train.len(), validation.len(), test.len())
        }
        None => println!(
            "train {} (every 5th per label held out to calibrate, then trained on all) / test {} examples",
            train.len(),
            test.len()
        ),
    }
    let measured = intent::measure::measure(train, validation, test, oos_label, &config, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{}", measured?);
    Ok(())
}
