//! The command line: `serve`, `ask`, `kb check` and `eval`. Parses arguments and calls the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::App;
use crate::config::Config;
use crate::conversation::{Channel, DialogueMemory, Tier};
use crate::dialogue::{Policy, TurnInput, eval};
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
    /// Evaluate the decision policy on a labelled file.
    Eval {
        #[command(flatten)]
        common: Common,
        /// Format of the data: `heldout` is `lang<TAB>expected<TAB>text` with `oos` for out-of-scope.
        #[arg(long, value_enum, default_value = "heldout")]
        format: EvalFormat,
        /// The evaluation file.
        #[arg(long, default_value = "tests/data/heldout.tsv")]
        data: PathBuf,
        /// Also list the wrongly answered phrasings.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum KbCommand {
    /// Validate the knowledge-base files; prints every problem with file and line.
    Check {
        #[command(flatten)]
        common: Common,
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
            let outcome = policy.decide(&knowledge, &input);
            let d = &outcome.decision;
            println!("decision:    {}", d.kind.as_str());
            println!("language:    {}", d.language);
            println!("why:         {}", d.explanation);
            for m in &d.faq_matches {
                println!("  {:.3}  {:<28} {}", m.score, m.faq_id, m.question);
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
        Command::Eval { common, format: EvalFormat::Heldout, data, verbose } => {
            let config = common.config()?;
            let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
            let phrasings = eval::read_phrasings(&data).map_err(anyhow::Error::msg)?;
            let policy = Policy::new(config.policy.clone(), config.channels.clone());
            let report = eval::evaluate(&knowledge, &policy, &phrasings);
            println!("{}: {report}", data.display());
            if verbose {
                for (text, expected, given) in &report.wrong {
                    println!("  wrong: {text:?} expected {expected}, answered {given}");
                }
            }
            Ok(())
        }
    }
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
