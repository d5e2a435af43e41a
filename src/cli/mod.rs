//! The command line: `serve`, `keys`, `stats`, `config check`, `ask`, `kb check|import|export`, `eval` and
//! `train`, one file per command. Each parses its arguments and calls the library; none holds logic the service
//! itself would need.

mod ask;
mod config;
mod eval;
mod kb;
mod keys;
mod serve;
mod stats;
mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat, Sources};
use crate::conversation::{Channel, Tier};

#[derive(Parser)]
#[command(
    name = "loket",
    version,
    about = "Support chatbot service: FAQ answers, clarifying questions and hand-offs over gRPC"
)]
pub struct Cli {
    /// Log lines on stderr as `text` or `json` (one object per line); `serve` also reads `[log] format`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl Cli {
    /// How to log: the flag, else (for `serve`, whose operators configure it) the configuration, else text. Read
    /// before logging starts; a configuration that does not load is reported by the command itself.
    pub fn log_format(&self) -> LogFormat {
        match (self.log_format, &self.command) {
            (Some(LogFormatArg::Text), _) => LogFormat::Text,
            (Some(LogFormatArg::Json), _) => LogFormat::Json,
            (None, Command::Serve(serve)) => serve.common.config().map_or(LogFormat::Text, |c| c.log.format),
            (None, _) => LogFormat::Text,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys (access control).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Run the gRPC service.
    Serve(serve::ServeArgs),
    /// Print the KPIs of the conversations in the database, against the configured targets.
    Stats(stats::StatsArgs),
    /// Configuration maintenance.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Answer one message locally, with the evidence, without a server.
    Ask(ask::AskArgs),
    /// Knowledge-base maintenance.
    Kb {
        #[command(subcommand)]
        command: kb::KbCommand,
    },
    /// Evaluate: the decision policy on held-out phrasings, or the intent classifier on a benchmark.
    Eval(eval::EvalArgs),
    /// Train the intent model from the knowledge base and write it (with its model card) for `serve`.
    Train(train::TrainArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keys { command } => keys::run(command).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Stats(args) => stats::run(args).await,
        Command::Config { command } => config::run(command),
        Command::Ask(args) => ask::run(args),
        Command::Kb { command } => kb::run(command).await,
        Command::Eval(args) => eval::run(args),
        Command::Train(args) => train::run(args),
    }
}

/// The options every command takes: where its configuration comes from.
#[derive(Args)]
struct Common {
    /// TOML configuration file; built-in defaults apply where it is silent.
    #[arg(long, short, env = "LOKET_CONFIG")]
    config: Option<PathBuf>,
    /// Knowledge-base directory (overrides the config).
    #[arg(long)]
    knowledge_dir: Option<PathBuf>,
    /// Sets one configuration key, over the file and the environment (repeatable): `--set kpi.csat_min=0.9`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

impl Common {
    fn config(&self) -> anyhow::Result<Config> {
        Ok(self.config_with(Vec::new())?.0)
    }

    /// The configuration with the database in `data_dir` when one is given.
    fn config_in(&self, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
        Ok(self.config_with(data_dir_flag(data_dir))?.0)
    }

    /// The layered configuration with `flags` (key, value) from a command's own options on top.
    fn config_with(&self, mut flags: Vec<(String, String)>) -> anyhow::Result<(Config, Sources)> {
        let mut settings = Vec::new();
        for setting in &self.settings {
            let Some((key, value)) = setting.split_once('=') else {
                anyhow::bail!("--set {setting}: expected KEY=VALUE");
            };
            settings.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        if let Some(dir) = &self.knowledge_dir {
            flags.push(("knowledge.dir".into(), dir.display().to_string()));
        }
        settings.extend(flags);
        // The one place the environment enters: the `LOKET_*` configuration layer.
        #[allow(clippy::disallowed_methods)]
        let env = std::env::vars();
        let (config, sources) = Config::load_layered(self.config.as_deref(), env, &settings)?;
        crate::check_config(&config)?;
        Ok((config, sources))
    }
}

/// A command's `--data-dir` as a configuration setting, so it layers like every other source.
fn data_dir_flag(data_dir: Option<PathBuf>) -> Vec<(String, String)> {
    data_dir.map(|dir| ("storage.data_dir".to_owned(), dir.display().to_string())).into_iter().collect()
}

#[derive(Clone, Copy, ValueEnum)]
enum ChannelArg {
    Chat,
    Email,
    Social,
    Phone,
    Messaging,
}

impl ChannelArg {
    fn channel(self) -> Channel {
        match self {
            ChannelArg::Chat => Channel::Chat,
            ChannelArg::Email => Channel::Email,
            ChannelArg::Social => Channel::Social,
            ChannelArg::Phone => Channel::Phone,
            ChannelArg::Messaging => Channel::Messaging,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Basic,
    Standard,
    Advanced,
}

impl TierArg {
    fn tier(self) -> Tier {
        match self {
            TierArg::Basic => Tier::Basic,
            TierArg::Standard => Tier::Standard,
            TierArg::Advanced => Tier::Advanced,
        }
    }
}
