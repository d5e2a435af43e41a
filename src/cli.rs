//! The command line: `serve`, `ask`, `kb check` and `eval`. Parses arguments and calls the library.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::App;
use crate::config::Config;
use crate::conversation::{Channel, DialogueMemory, Tier};
use crate::dialogue::{Policy, TurnInput, eval};
use crate::intent::{self, LiveModel};
use crate::knowledge::{Knowledge, KnowledgeBase};

#[derive(Parser)]
#[command(
    name = "loket",
    version,
    about = "Support chatbot service: FAQ answers, clarifying questions and hand-offs over gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// TOML configuration file; built-in defaults apply where it is silent.
    #[arg(long, short, env = "LOKET_CONFIG")]
    config: Option<PathBuf>,
    /// Knowledge-base directory (overrides the config).
    #[arg(long)]
    knowledge_dir: Option<PathBuf>,
}

impl Common {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.knowledge_dir {
            config.knowledge.dir = dir.clone();
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:50051).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Directory for the embedded database (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Answer one message locally, with the evidence, without a server.
    Ask {
        #[command(flatten)]
        common: Common,
        /// The customer's message.
        text: String,
        /// Language of the message (default: detected).
        #[arg(long)]
        lang: Option<String>,
        #[arg(long, value_enum, default_value = "standard")]
        tier: TierArg,
    },
    /// Knowledge-base maintenance.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Evaluate: the decision policy on held-out phrasings, or the intent classifier on a benchmark.
    Eval {
        #[command(flatten)]
        common: Common,
        /// `heldout`: `lang<TAB>expected<TAB>text` phrasings through the policy; `clinc150`: CLINC150's
        /// data_full.json; `csv`: `text,label` files given with --train and --test.
        #[arg(long, value_enum, default_value = "heldout")]
        format: EvalFormat,
        /// The evaluation file (heldout, clinc150).
        #[arg(long, default_value = "tests/data/heldout.tsv")]
        data: PathBuf,
        /// Training CSV (csv format); every 10th row per label is held out for calibration.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Test CSV (csv format).
        #[arg(long)]
        test: Option<PathBuf>,
        /// Label of out-of-scope rows (csv format).
        #[arg(long)]
        oos_label: Option<String>,
        /// Seed of the classifier's training.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also list the wrongly answered phrasings (heldout format).
        #[arg(long)]
        verbose: bool,
    },
    /// Train the intent model from the knowledge base and write it (with its model card) for `serve`.
    Train {
        #[command(flatten)]
        common: Common,
        /// Output directory (default: the configured model directory, models/intent).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum KbCommand {
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

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Basic,
    Standard,
    Advanced,
}

#[derive(Clone, Copy, ValueEnum)]
enum EvalFormat {
    Heldout,
    Clinc150,
    Csv,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { common, listen, data_dir } => {
            let mut config = common.config()?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(dir) = data_dir {
                config.storage.data_dir = dir;
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.server.listen))?;
            tracing::info!(data_dir = %config.storage.data_dir.display(), "opening database");
            let app = App::build(config).await?;
            app.serve(listener, shutdown_signal()).await
        }
        Command::Ask { common, text, lang, tier } => {
            let config = common.config()?;
            let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
            let language = lang
                .or_else(|| knowledge.index.detect_language(&text))
                .unwrap_or_else(|| config.languages.default.clone());
            anyhow::ensure!(config.languages.supported.contains(&language), "language {language} is not configured");
            let policy = Policy::new(config.policy.clone(), config.channels.clone());
            let tier = match tier {
                TierArg::Basic => Tier::Basic,
                TierArg::Standard => Tier::Standard,
                TierArg::Advanced => Tier::Advanced,
            };
            let memory = DialogueMemory::default();
            let input = TurnInput { text: &text, language: &language, tier, channel: Channel::Chat, memory: &memory };
            let model = LiveModel::open(&config.intent.model_dir).current();
            let outcome = policy.decide(&knowledge, model.as_deref(), &input);
            let d = &outcome.decision;
            println!("decision:    {}", d.kind.as_str());
            println!("language:    {}", d.language);
            println!("why:         {}", d.explanation);
            for m in &d.faq_matches {
                println!("  search {:.3}  {:<28} {}", m.score, m.faq_id, m.question);
            }
            for i in &d.intents {
                println!("  intent {:.3}  {}", i.confidence, i.intent);
            }
            for reply in &outcome.replies {
                println!("reply:\n{}", reply.text);
            }
            Ok(())
        }
        Command::Kb { command: KbCommand::Check { common } } => {
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
            Ok(())
        }
        Command::Kb { command: KbCommand::Import { common, dir, replace, author, data_dir } } => {
            let editor = offline_editor(&common, data_dir).await?;
            let faq_dir = if dir.join("faq").is_dir() { dir.join("faq") } else { dir.clone() };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(&faq_dir).with_context(|| format!("reading {}", faq_dir.display()))? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    files.push((path.display().to_string(), text));
                }
            }
            anyhow::ensure!(!files.is_empty(), "no *.yaml files in {}", faq_dir.display());
            files.sort();
            let summary = editor.import(files, replace, &author).await?;
            println!(
                "imported: {} created, {} updated, {} unchanged, {} retired",
                summary.created, summary.updated, summary.unchanged, summary.retired
            );
            Ok(())
        }
        Command::Kb { command: KbCommand::Export { common, dir, data_dir } } => {
            let editor = offline_editor(&common, data_dir).await?;
            let faq_dir = dir.join("faq");
            std::fs::create_dir_all(&faq_dir).with_context(|| format!("creating {}", faq_dir.display()))?;
            let files = editor.export().await;
            for (name, text) in &files {
                std::fs::write(faq_dir.join(name), text).with_context(|| format!("writing {name}"))?;
            }
            println!("exported {} category files to {}", files.len(), faq_dir.display());
            Ok(())
        }
        Command::Eval { common, format, data, train, test, oos_label, seed, verbose } => {
            let config = common.config()?;
            match format {
                EvalFormat::Heldout => eval_heldout(&config, &data, verbose),
                EvalFormat::Clinc150 => {
                    let clinc = intent::data::read_clinc150(&data)?;
                    let oos = Some(intent::data::CLINC_OOS);
                    print_measurement(&clinc.train, &clinc.validation, &clinc.test, oos, seed)
                }
                EvalFormat::Csv => {
                    let (Some(train), Some(test)) = (train, test) else {
                        anyhow::bail!("--format csv needs --train and --test");
                    };
                    let examples = intent::data::read_csv(&train)?;
                    let test = intent::data::read_csv(&test)?;
                    let (train, validation) = intent::data::split(&examples);
                    print_measurement(&train, &validation, &test, oos_label.as_deref(), seed)
                }
            }
        }
        Command::Train { common, out, seed } => {
            let config = common.config()?;
            let out = out.unwrap_or_else(|| config.intent.model_dir.clone());
            let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
            let conversational = config.knowledge.dir.join("intents/conversational.yaml");
            let started = std::time::Instant::now();
            let training = intent::service::train(&knowledge.base, &conversational, &config.languages.supported, seed)?;
            let seconds = started.elapsed().as_secs_f64();
            let heldout = Path::new("tests/data/heldout.tsv");
            let evaluation = match eval::read_phrasings(heldout) {
                Ok(phrasings) => {
                    let policy = Policy::new(config.policy.clone(), config.channels.clone());
                    let report = eval::evaluate(&knowledge, Some(&training.model), &policy, &phrasings);
                    format!(
                        "Held-out phrasings (`{}`), through the decision policy:\n\n```\n{report}\n```",
                        heldout.display()
                    )
                }
                Err(_) => "Held-out phrasings not found.".to_string(),
            };
            intent::service::save(&training, &out, seed, &evaluation)?;
            println!("trained in {seconds:.1} s; model written to {}", out.display());
            println!("{evaluation}");
            Ok(())
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
        }
    }
    Ok(())
}

fn print_measurement(
    train: &[intent::Example],
    validation: &[intent::Example],
    test: &[intent::Example],
    oos_label: Option<&str>,
    seed: u64,
) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("loket-eval-{}", std::process::id()));
    let config = intent::TrainConfig { seed, ..intent::TrainConfig::default() };
    println!("train {} / validation {} / test {} examples", train.len(), validation.len(), test.len());
    let measured = intent::measure::measure(train, validation, test, oos_label, &config, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{}", measured?);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// The knowledge editor on the configured database, without serving (no retrain: `serve` does it at its start).
async fn offline_editor(
    common: &Common,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<std::sync::Arc<crate::editor::Editor>> {
    let mut config = common.config()?;
    if let Some(dir) = data_dir {
        config.storage.data_dir = dir;
    }
    config.knowledge.retrain = false;
    Ok(App::build(config).await?.editor)
}
