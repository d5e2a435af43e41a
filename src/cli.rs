//! The command line: `serve`, `ask`, `kb check`, `eval`, `train`, `stats` and `config check`. Parses arguments and
//! calls the library.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::App;
use crate::config::{Config, LogFormat, Sources};
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
            (None, Command::Serve { common, .. }) => common.config().map_or(LogFormat::Text, |c| c.log.format),
            (None, _) => LogFormat::Text,
        }
    }
}

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
        Ok(Config::load_layered(self.config.as_deref(), std::env::vars(), &settings)?)
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key and print it (once: only a hash of its secret is stored).
    Create {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Who holds it ("web widget"); for an agent key, the agent's id ("anna"), to which its work is attributed.
        #[arg(long)]
        name: String,
        /// Agents only: the skills whose hand-offs the key may work, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Agents only: the name customers see on the agent's messages ("Anna"; default: none, they see "agent").
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a key by its id (a running server notices within `auth.reload_secs`).
    Revoke {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List the keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Client,
    Agent,
    Editor,
    Admin,
    /// A web widget's publishable key: only starts conversations, from pages of allowed origins.
    Widget,
}

impl RoleArg {
    fn role(self) -> crate::access::Role {
        use crate::access::Role;
        match self {
            RoleArg::Client => Role::Client,
            RoleArg::Agent => Role::Agent,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
            RoleArg::Widget => Role::Widget,
        }
    }
}

/// Access control on the configured database, without serving.
async fn offline_access(common: &Common, data_dir: Option<PathBuf>) -> anyhow::Result<crate::access::Access> {
    let mut config = common.config()?;
    if let Some(dir) = data_dir {
        config.storage.data_dir = dir;
    }
    let store = crate::store::open(&config.storage).await?;
    let clock = std::sync::Arc::new(crate::clock::SystemClock);
    Ok(crate::access::Access::new(store, clock, false, crate::access::RateLimiter::new(0.0, 1.0)).await?)
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys (access control).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
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
        /// Address of the Prometheus `/metrics` listener (default 127.0.0.1:9464; port 0 picks one).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Do not expose metrics.
        #[arg(long, conflicts_with = "metrics_listen")]
        no_metrics: bool,
    },
    /// Print the KPIs of the conversations in the database, against the configured targets.
    Stats {
        #[command(flatten)]
        common: Common,
        /// Start of the range: a duration before now (`7d`, `24h`, `30m`) or a time (`2026-11-01T00:00:00Z`).
        #[arg(long, default_value = "7d")]
        since: String,
        /// End of the range (default now), in the same forms.
        #[arg(long)]
        until: Option<String>,
        /// Directory of the database (default: the configured one).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Only this channel.
        #[arg(long, value_enum)]
        channel: Option<ChannelArg>,
        /// Only this support tier.
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
        /// Only this language.
        #[arg(long)]
        language: Option<String>,
        /// Only this skill.
        #[arg(long)]
        skill: Option<String>,
    },
    /// Configuration maintenance.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
    },
    /// Train the intent model from the knowledge base and write it (with its model card) for `serve`.
    Train {
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

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the layered configuration (file, environment, --set) without starting; names any bad key.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ChannelArg {
    Chat,
    Email,
    Social,
    Phone,
    Messaging,
}

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Basic,
    Standard,
    Advanced,
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

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { common, listen, data_dir, metrics_listen, no_metrics } => {
            let mut flags = Vec::new();
            if let Some(listen) = listen {
                flags.push(("server.listen".into(), listen.to_string()));
            }
            if let Some(dir) = data_dir {
                flags.push(("storage.data_dir".into(), dir.display().to_string()));
            }
            if let Some(listen) = metrics_listen {
                flags.push(("metrics.listen".into(), listen.to_string()));
                flags.push(("metrics.enabled".into(), "true".into()));
            }
            if no_metrics {
                flags.push(("metrics.enabled".into(), "false".into()));
            }
            let (config, sources) = common.config_with(flags)?;
            let file = sources.file.as_ref().map_or("built-in defaults".into(), |f| f.display().to_string());
            tracing::info!(%file, env = ?sources.env, command_line = ?sources.command_line, "configuration loaded");
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.server.listen))?;
            let metrics = match config.metrics.enabled {
                true => Some(
                    tokio::net::TcpListener::bind(config.metrics.listen)
                        .await
                        .with_context(|| format!("cannot listen for metrics on {}", config.metrics.listen))?,
                ),
                false => None,
            };
            let app = App::build(config).await?;
            app.welcome(listener.local_addr()?).await?;
            app.serve_with_metrics(listener, metrics, shutdown_signal()).await
        }
        Command::Keys { command: KeysCommand::Create { common, role, name, skills, display_name, data_dir } } => {
            let access = offline_access(&common, data_dir).await?;
            let skills = skills.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            let key = access.create_key(&name, role.role(), skills, &display_name, "cli").await?;
            eprintln!(
                "created key {} ({}); keep it secret, it is not shown again:",
                key.record.id,
                key.record.role.as_str()
            );
            println!("{}", key.token);
            Ok(())
        }
        Command::Keys { command: KeysCommand::Revoke { common, id, data_dir } } => {
            offline_access(&common, data_dir).await?.revoke_key(&id, "cli").await?;
            println!("revoked {id}");
            Ok(())
        }
        Command::Keys { command: KeysCommand::List { common, data_dir } } => {
            for key in offline_access(&common, data_dir).await?.keys().await? {
                let state = if key.revoked_at.is_some() { "revoked" } else { "live" };
                let shown =
                    if key.display_name.is_empty() { String::new() } else { format!(" ({})", key.display_name) };
                let (id, role, name, skills) = (&key.id, key.role.as_str(), &key.name, key.skills.join(","));
                println!("{id}  {role:<7} {state:<7} {name}{shown}  [{skills}]");
            }
            Ok(())
        }
        Command::Stats { common, since, until, data_dir, channel, tier, language, skill } => {
            let mut flags = Vec::new();
            if let Some(dir) = data_dir {
                flags.push(("storage.data_dir".into(), dir.display().to_string()));
            }
            let (config, _) = common.config_with(flags)?;
            let now = crate::clock::Clock::now_millis(&crate::clock::SystemClock);
            let end = match until {
                Some(until) => parse_moment(&until, now)?,
                None => now,
            };
            let query = crate::stats::KpiQuery {
                start: parse_moment(&since, end)?,
                end,
                channel: channel.map(ChannelArg::channel),
                tier: tier.map(TierArg::tier),
                language,
                skill,
            };
            // Skills of FAQ entries, for conversations the bot answered; without the knowledge base only
            // hand-offs carry a skill.
            let skills = match KnowledgeBase::load(&config.knowledge.dir, &config.languages.supported) {
                Ok(base) => crate::stats::faq_skills(&base),
                Err(error) => {
                    eprintln!("warning: knowledge base not loaded, answered conversations have no skill: {error}");
                    Default::default()
                }
            };
            // Reading statistics never creates a database: a mistyped directory would report zeros.
            let embedded = config.storage.database_url.trim().is_empty();
            let database = crate::store::SqliteStore::file(&config.storage.data_dir);
            if embedded && !database.exists() {
                anyhow::bail!("no loket database at {} (check --data-dir or storage.data_dir)", database.display());
            }
            let store = crate::store::open(&config.storage).await?;
            let kpis = crate::stats::kpis(&*store, &query, &config.kpi, &skills, now).await?;
            let moment = |ms: i64| jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default();
            println!("{} from {} to {}", config.storage.data_dir.display(), moment(query.start), moment(query.end));
            print!("{}", crate::stats::render(&kpis));
            Ok(())
        }
        Command::Config { command: ConfigCommand::Check { common } } => {
            let (config, sources) = common.config_with(Vec::new())?;
            let file = sources.file.as_ref().map_or("built-in defaults".into(), |f| f.display().to_string());
            println!("configuration ok: {file}");
            if !sources.env.is_empty() {
                println!("  from the environment: {}", sources.env.join(", "));
            }
            if !sources.command_line.is_empty() {
                println!("  from the command line: {}", sources.command_line.join(", "));
            }
            let metrics = if config.metrics.enabled { config.metrics.listen.to_string() } else { "off".into() };
            let kpi = &config.kpi;
            println!("  gRPC        {}", config.server.listen);
            println!("  metrics     {metrics}");
            println!("  data dir    {}", config.storage.data_dir.display());
            println!("  knowledge   {}", config.knowledge.dir.display());
            println!("  model       {}", config.intent.model_dir.display());
            println!("  languages   {} (default {})", config.languages.supported.join(", "), config.languages.default);
            let webhooks: Vec<String> =
                config.webhooks.iter().map(|w| format!("{} ({} events)", w.name, w.events.len())).collect();
            let webhooks = if webhooks.is_empty() { "none".to_owned() } else { webhooks.join(", ") };
            println!("  webhooks    {webhooks}");
            println!(
                "  KPI targets median wait <= {} s, CSAT >= {}%, resolution >= {}%, deflection >= {}%",
                kpi.median_wait_secs,
                kpi.csat_min * 100.0,
                kpi.resolution_min * 100.0,
                kpi.deflection_min * 100.0
            );
            Ok(())
        }
        Command::Ask { common, text, lang, tier } => {
            let config = common.config()?;
            let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
            let language = lang
                .or_else(|| knowledge.index.detect_language(&text))
                .unwrap_or_else(|| config.languages.default.clone());
            anyhow::ensure!(config.languages.supported.contains(&language), "language {language} is not configured");
            let policy = Policy::new(config.policy.clone(), config.channels.clone());
            let tier = tier.tier();
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
        Command::Eval {
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
        } => {
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
                    print_measurement(
                        &train,
                        valid.as_deref(),
                        &test,
                        oos_label.as_deref(),
                        seed,
                        (lexicon, lexicon_scale),
                    )
                }
            }
        }
        Command::Train { common, out, seed, lexicon } => {
            let config = common.config()?;
            // Never the shipped model by default: an experiment must not overwrite what the repository ships.
            let out = out.unwrap_or_else(|| config.storage.data_dir.join("trained-model"));
            let knowledge = Knowledge::load(&config.knowledge.dir, &config.languages.supported)?;
            let conversational = config.knowledge.dir.join("intents/conversational.yaml");
            let started = std::time::Instant::now();
            let training = intent::service::train_with_lexicon(
                &knowledge.base,
                &conversational,
                &config.languages.supported,
                seed,
                lexicon,
                crate::progress::meter("training", crate::progress::Style::for_stderr()),
            )?;
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
            if out != config.intent.model_dir {
                println!("serve it with `--set intent.model_dir={}`", out.display());
            }
            println!("{evaluation}");
            Ok(())
        }
    }
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

/// `7d`, `24h`, `30m`, `90s` before `relative_to`, or an RFC 3339 time; Unix milliseconds.
fn parse_moment(text: &str, relative_to: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    let unit = |suffix: char, millis: i64| -> Option<i64> {
        let number: i64 = text.strip_suffix(suffix)?.parse().ok()?;
        Some(relative_to - number * millis)
    };
    if let Some(ms) = unit('d', 86_400_000).or_else(|| unit('h', 3_600_000)).or_else(|| unit('m', 60_000)) {
        return Ok(ms);
    }
    if let Some(ms) = unit('s', 1000) {
        return Ok(ms);
    }
    let time: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("{text:?}: expected a duration like 7d or a time like 2026-11-01T00:00:00Z"))?;
    Ok(time.as_millisecond())
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
