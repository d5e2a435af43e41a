//! Service configuration in layers: built-in defaults < TOML file < `LOKET_SECTION__KEY` environment variables <
//! command-line settings. Owns no behaviour; every threshold, limit and target is read from here so operators
//! tune without a rebuild. Unknown keys are errors that name the key, in every layer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Receivers of outbound webhooks (`[[webhooks]]`); none by default.
    pub webhooks: Vec<WebhookConfig>,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub knowledge: KnowledgeConfig,
    pub languages: LanguageConfig,
    pub policy: PolicyConfig,
    pub limits: LimitsConfig,
    pub channels: ChannelsConfig,
    pub handoff: HandoffConfig,
    pub intent: IntentConfig,
    pub metrics: MetricsConfig,
    pub kpi: KpiConfig,
    pub auth: AuthConfig,
    pub privacy: PrivacyConfig,
    pub log: LogConfig,
    pub web: WebConfig,
    pub webhook_delivery: WebhookDeliveryConfig,
}

/// One receiver of outbound webhooks (a `[[webhooks]]` entry): loket posts the events it names to `url`, signed
/// with `secret` (docs/webhooks.md).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in deliveries, metrics and logs: 1 to 64 of `a-z`, `0-9`, `-`, `_`. Deliveries still to be
    /// made are kept under this name, so they go to the webhook's new URL after a change of URL.
    pub name: String,
    /// `https://host[:port]/path`. Plain `http://` and hosts on loopback or private networks only with
    /// `webhook_delivery.allow_private_addresses`.
    pub url: String,
    /// The HMAC-SHA256 key the receiver checks the `loket-signature` header with: at least 32 bytes.
    pub secret: String,
    /// The events to send (`handoff.created`, `handoff.claimed`, `handoff.transferred`, `handoff.resolved`,
    /// `conversation.rated`, `knowledge_gap.created`, `faq.changed`); at least one.
    pub events: Vec<String>,
    /// How long one attempt may take, connecting included, in milliseconds (1 to 60,000).
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_webhook_timeout_ms() -> u64 {
    5000
}

/// Not derived: the secret never reaches a log line.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"(hidden)")
            .field("events", &self.events)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// How webhook deliveries are retried and run, for every webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookDeliveryConfig {
    /// Attempts per delivery before it is kept as failed (listed by `AdminService.ListFailedDeliveries`).
    pub max_attempts: u32,
    /// Wait before the second attempt, in milliseconds; each further wait doubles, with random jitter ...
    pub backoff_base_ms: u64,
    /// ... up to this many milliseconds.
    pub backoff_max_ms: u64,
    /// Deliveries this replica posts at once to each webhook (one conversation's events always one after the
    /// other): a receiver that hangs holds up only its own.
    pub concurrency: usize,
    /// How often the outbox is looked at when nothing woke the deliverer (retries falling due, events committed
    /// through another replica), in milliseconds.
    pub poll_ms: u64,
    /// Also deliver over plain `http://` and to loopback, private, link-local and other internal addresses. For
    /// tests and development only: otherwise a webhook URL could reach services inside your network.
    pub allow_private_addresses: bool,
}

impl Default for WebhookDeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 15,
            backoff_base_ms: 1000,
            backoff_max_ms: 3_600_000,
            concurrency: 16,
            poll_ms: 1000,
            allow_private_addresses: false,
        }
    }
}

/// How the process logs (to stderr; `RUST_LOG` picks the levels).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` (one object per line) for log collectors. `--log-format` overrides it.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The browser side: gRPC-Web on the gRPC port, the pages loket serves, and who may call from a browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Origins (`scheme://host[:port]`) of the web sites whose pages may call loket from a browser (gRPC-Web, CORS)
    /// besides loket's own pages. loket's own origin counts when it is reached by IP address or `localhost`; list it
    /// too when browsers reach loket by another name (`https://chat.example.com`).
    pub allowed_origins: Vec<String>,
    /// How long a conversation token (what a widget key's StartConversation returns) is accepted, in seconds.
    pub conversation_token_ttl_secs: u64,
    /// Conversations a widget key may start per minute from one client address (0: no limit).
    pub widget_starts_per_minute_per_address: f64,
    /// Secret shared with the shop's backend, which signs customer ids with HMAC-SHA256 under it so the widget's
    /// customer is known (`customer_id_signature`); empty: identity verification off, every widget visitor is
    /// anonymous.
    pub identity_secret: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            conversation_token_ttl_secs: 86_400,
            widget_starts_per_minute_per_address: 10.0,
            identity_secret: String::new(),
        }
    }
}

/// Personal data in stored transcripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Days a transcript keeps its raw text; after that personal data in it is redacted (0: keep it raw).
    pub transcript_retention_days: u64,
    /// How often the redaction of expired transcripts runs, in seconds.
    pub retention_check_secs: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self { transcript_retention_days: 90, retention_check_secs: 3600 }
    }
}

/// Who may call: API keys with roles (`loket keys create`), or an explicit, loudly logged open demo mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `keys`: every call needs `authorization: Bearer <key>` (the default, secure). `open`: no credentials, every
    /// caller is an administrator; a demo mode only, refused unless the listen address is loopback.
    pub mode: String,
    /// How often keys created or revoked by `loket keys` from outside the process are picked up, in seconds.
    pub reload_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { mode: "keys".into(), reload_secs: 5 }
    }
}

impl AuthConfig {
    pub fn open(&self) -> bool {
        self.mode == "open"
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether `serve` exposes `/metrics` over HTTP.
    pub enabled: bool,
    /// Address of the HTTP listener for `/metrics`, apart from the gRPC port.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, listen: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

/// Service-level targets: `GetKpis` and `loket stats` say whether each is met. 0 means no target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// Median wait from hand-off to an agent's claim must be at most this many seconds.
    pub median_wait_secs: u64,
    /// Share of ratings that are 4 or 5 (CSAT) must be at least this, in [0, 1].
    pub csat_min: f64,
    /// Share of hand-offs resolved by an agent must be at least this, in [0, 1].
    pub resolution_min: f64,
    /// Share of conversations the bot handled without a person must be at least this, in [0, 1].
    pub deflection_min: f64,
}

impl Default for KpiConfig {
    fn default() -> Self {
        Self { median_wait_secs: 120, csat_min: 0.85, resolution_min: 0.9, deflection_min: 0.7 }
    }
}

/// The intent model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntentConfig {
    /// Directory of the trained model (`loket train` writes it). Without a model loket answers from search alone.
    pub model_dir: PathBuf,
    /// How often `serve` checks the model directory for a newly trained model to swap in, in seconds (0: never).
    pub reload_check_secs: u64,
}

impl Default for IntentConfig {
    fn default() -> Self {
        Self { model_dir: PathBuf::from("models/intent"), reload_check_secs: 5 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// PEM certificate chain for TLS (with `tls_key`); empty: plain text.
    pub tls_cert: PathBuf,
    /// PEM private key for TLS.
    pub tls_key: PathBuf,
    /// Serve plain text on a non-loopback address. Off: without TLS only loopback is served (put a TLS-terminating
    /// proxy in front, or configure `tls_cert`/`tls_key`).
    pub allow_plaintext: bool,
    /// After SIGTERM, how long requests in flight get to finish before the process exits anyway, in
    /// milliseconds. Orchestrators kill after a grace period of their own; stay well inside it.
    pub drain_timeout_ms: u64,
}

impl ServerConfig {
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for the embedded SQLite database, and for the model this replica retrains.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database` to share one PostgreSQL among several replicas; empty: the
    /// embedded SQLite database in `data_dir`.
    pub database_url: String,
    /// Most PostgreSQL connections per replica for queries, and as many again for per-conversation locks.
    pub max_connections: u32,
    /// With PostgreSQL: how long a request waits for a connection before it answers UNAVAILABLE, in milliseconds.
    /// Short, so callers hear at once that the database is down (and retry) instead of hanging with it.
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// Directory with `faq/*.yaml`, `locales/*.yaml` and the speller's `dictionaries/<language>.txt.zst`. The FAQ
    /// files seed the database on first start; from then on the database is the source of truth (edited through
    /// `KnowledgeService` or `loket kb import`).
    pub dir: PathBuf,
    /// Retrain the intent model in the background after knowledge edits, and swap it in when done.
    pub retrain: bool,
    /// Quiet time after the last edit before a retrain starts, in milliseconds (edits in a burst train once).
    pub retrain_delay_ms: u64,
    /// Training passes of a background retrain (`loket train` uses the same default).
    pub retrain_epochs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageConfig {
    /// Language of a conversation that does not name one, and of messages whose language cannot be detected.
    pub default: String,
    /// Languages served. Each needs `knowledge-base/locales/<code>.yaml` and a translation in every FAQ entry.
    pub supported: Vec<String>,
}

/// Thresholds of the answer / clarify / hand-off policy, on normalised FAQ scores in [0, 1].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The best match must reach this score to be answered.
    pub answer_min_score: f32,
    /// ... and lead the runner-up by this much; otherwise the close candidates are offered (CLARIFY).
    pub answer_min_margin: f32,
    /// Candidates below this score are never offered in a clarifying question.
    pub clarify_min_score: f32,
    /// At most this many candidates in a clarifying question.
    pub clarify_max_options: usize,
    /// How many FAQ matches are reported as evidence.
    pub evidence_matches: usize,
    /// After this many bot turns in a row without an answer, the conversation goes to a human.
    pub max_failed_turns: u32,
    /// Per-language overrides of the thresholds above (key: language code).
    pub languages: BTreeMap<String, PolicyOverride>,
    /// Shifts added to `answer_min_score` per support tier: positive means a human sooner.
    pub tier_shift: TierShift,
    /// FAQ categories a person always handles: a match hands off instead of answering.
    pub always_human_categories: Vec<String>,
    /// The intent model's calibrated confidence needed to answer (with retrieval agreeing).
    pub intent_min_confidence: f32,
    /// ... and its lead over the second intent.
    pub intent_min_margin: f32,
    /// Intents below this confidence are never offered in a clarifying question, and retrieval's clear answer
    /// needs at least this much support from the model.
    pub intent_clarify_min: f32,
    /// Retrieval's score the model's chosen entry needs for the two to agree.
    pub retrieval_agree_min: f32,
    /// Confidence at which the model's greeting / thanks / goodbye / person / frustration intents are acted on.
    pub conversational_min_confidence: f32,
    /// Probability of the model's out-of-scope class at which a message nothing in the FAQ matches is declined as
    /// off-topic (with the offer of a colleague) instead of handed off; the model's own out-of-scope verdict
    /// counts too. Shifted by tier like `answer_min_score`.
    pub off_topic_min_confidence: f32,
    /// Topics (FAQ categories, most entries first) listed in the menu for a message that names none.
    pub menu_max_options: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    pub answer_min_score: Option<f32>,
    pub answer_min_margin: Option<f32>,
    pub clarify_min_score: Option<f32>,
    pub intent_min_confidence: Option<f32>,
    pub intent_min_margin: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierShift {
    pub basic: f32,
    pub standard: f32,
    pub advanced: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest accepted customer message, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// Longest accepted id (customer id, client message id), in bytes.
    pub max_id_bytes: usize,
    /// Most metadata entries on a conversation.
    pub max_metadata_entries: usize,
    /// Requests per second one API key may make on average (0: no limit) ...
    pub requests_per_second_per_key: f64,
    /// ... with bursts up to this many.
    pub request_burst_per_key: f64,
    /// Customer messages per minute one conversation may send (0: no limit); more is RESOURCE_EXHAUSTED.
    pub messages_per_minute_per_conversation: f64,
    /// Most concurrent HTTP/2 streams (requests and watches) per connection.
    pub max_concurrent_streams: u32,
    /// Longest a unary request may run before it fails with DEADLINE_EXCEEDED, in seconds (0: no limit; a
    /// client's shorter `grpc-timeout` applies too).
    pub request_timeout_secs: u64,
}

impl LimitsConfig {
    /// The bounds every service checks what callers send against.
    pub fn bounds(&self) -> crate::text::Limits {
        crate::text::Limits { max_id_bytes: self.max_id_bytes, max_message_bytes: self.max_message_bytes }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// Replies on social media are cut (at a sentence where possible) to this many characters.
    pub social_max_chars: usize,
    /// Replies in chat and messaging apps are cut to this many characters (0: no limit).
    pub chat_max_chars: usize,
}

/// Routing of hand-offs to agents, office hours and waiting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoffConfig {
    /// Skill for hand-offs without a known topic.
    pub default_skill: String,
    /// Expected wait told to the customer while no claim times have been measured for a skill, in seconds.
    pub default_expected_wait_secs: u64,
    /// How many recent claims the expected wait is estimated from (their median).
    pub wait_sample: u32,
    /// Office hours of every skill without its own entry in `skill_hours`.
    pub office_hours: OfficeHoursConfig,
    /// Office hours per skill (key: skill).
    pub skill_hours: BTreeMap<String, OfficeHoursConfig>,
}

/// A weekly schedule in a time zone, with dates on which it is closed all day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficeHoursConfig {
    /// IANA time zone name.
    pub timezone: String,
    /// Opening hours per weekday as "HH:MM-HH:MM" ranges; an empty list is closed all day. "00:00-24:00" is all day.
    pub monday: Vec<String>,
    pub tuesday: Vec<String>,
    pub wednesday: Vec<String>,
    pub thursday: Vec<String>,
    pub friday: Vec<String>,
    pub saturday: Vec<String>,
    pub sunday: Vec<String>,
    /// Dates ("YYYY-MM-DD") on which nobody is available: one-off closures.
    pub closed_dates: Vec<String>,
    /// Days ("MM-DD") closed every year: fixed-date public holidays.
    pub closed_every_year: Vec<String>,
    /// Days closed every year counted from Easter Sunday (Gregorian): 1 is Easter Monday, -2 Good Friday, 39
    /// Ascension Day, 50 Whit Monday. Together with `closed_every_year` this spells most countries' public
    /// holidays without a list per year.
    pub closed_after_easter: Vec<i32>,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            default_skill: "general".into(),
            default_expected_wait_secs: 120,
            wait_sample: 20,
            office_hours: OfficeHoursConfig::default(),
            skill_hours: BTreeMap::new(),
        }
    }
}

impl Default for OfficeHoursConfig {
    fn default() -> Self {
        let weekday = || vec!["08:00-20:00".to_string()];
        Self {
            timezone: "Europe/Amsterdam".into(),
            monday: weekday(),
            tuesday: weekday(),
            wednesday: weekday(),
            thursday: weekday(),
            friday: weekday(),
            saturday: vec!["09:00-17:00".into()],
            sunday: Vec::new(),
            closed_dates: Vec::new(),
            // The Netherlands' public holidays on which shops' service desks commonly close (the default time
            // zone's): New Year, King's Day, Christmas; Easter Monday, Ascension Day, Whit Monday.
            closed_every_year: vec!["01-01".into(), "04-27".into(), "12-25".into(), "12-26".into()],
            closed_after_easter: vec![1, 39, 50],
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            allow_plaintext: false,
            drain_timeout_ms: 1000,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            max_connections: 16,
            acquire_timeout_ms: 750,
        }
    }
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("knowledge-base"), retrain: true, retrain_delay_ms: 2000, retrain_epochs: 30 }
    }
}

impl Default for LanguageConfig {
    fn default() -> Self {
        Self { default: "nl".into(), supported: vec!["nl".into(), "en".into()] }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            answer_min_score: 0.5,
            answer_min_margin: 0.12,
            clarify_min_score: 0.3,
            clarify_max_options: 3,
            evidence_matches: 5,
            max_failed_turns: 2,
            languages: BTreeMap::new(),
            tier_shift: TierShift::default(),
            always_human_categories: Vec::new(),
            intent_min_confidence: 0.5,
            intent_min_margin: 0.15,
            intent_clarify_min: 0.1,
            retrieval_agree_min: 0.2,
            conversational_min_confidence: 0.6,
            // The bar at which the model's other non-FAQ intents are acted on (`conversational_min_confidence`).
            off_topic_min_confidence: 0.6,
            menu_max_options: 5,
        }
    }
}

impl Default for TierShift {
    fn default() -> Self {
        Self { basic: -0.05, standard: 0.0, advanced: 0.1 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 4096,
            max_id_bytes: 128,
            max_metadata_entries: 32,
            requests_per_second_per_key: 200.0,
            request_burst_per_key: 400.0,
            messages_per_minute_per_conversation: 60.0,
            max_concurrent_streams: 256,
            request_timeout_secs: 30,
        }
    }
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self { social_max_chars: 280, chat_max_chars: 0 }
    }
}

/// Prefix of the environment variables that set configuration keys.
const ENV_PREFIX: &str = "LOKET_";
/// The environment variable naming the file (the command line's `--config`), not a key.
pub const ENV_CONFIG_FILE: &str = "LOKET_CONFIG";

/// Where a configuration came from, for `loket config check` and the startup summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    pub file: Option<PathBuf>,
    /// Keys set by `LOKET_*` environment variables.
    pub env: Vec<String>,
    /// Keys set on the command line.
    pub command_line: Vec<String>,
}

impl Config {
    /// Built-in defaults overlaid by `path` when given; validated.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Ok(Self::load_layered(path, std::iter::empty(), &[])?.0)
    }

    /// Built-in defaults < the file at `path` < `env` (`LOKET_SECTION__KEY=value`, nested sections joined by `__`,
    /// case-insensitive) < `settings` (`section.key=value`, from the command line). Every `LOKET_*` variable but
    /// `LOKET_CONFIG` must name a key. A value is read as TOML (`0.6`, `true`, `["nl", "en"]`); a key holding a
    /// string takes the text as it is, and a list also takes `a,b,c`. Validated as a whole at the end.
    pub fn load_layered(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        settings: &[(String, String)],
    ) -> Result<(Config, Sources), ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?
            }
        };
        let mut sources = Sources { file: path.map(Path::to_owned), ..Sources::default() };
        let mut env: Vec<(String, String)> =
            env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX) && name != ENV_CONFIG_FILE).collect();
        // The environment has no order; sorting makes the first error reported the same on every run.
        env.sort();
        let mut layers = Vec::new();
        for (name, value) in env {
            let key = name[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
            sources.env.push(key.clone());
            layers.push((key, value, name));
        }
        for (key, value) in settings {
            sources.command_line.push(key.clone());
            layers.push((key.clone(), value.clone(), "the command line".to_owned()));
        }
        if layers.is_empty() {
            config.validate()?;
            return Ok((config, sources));
        }
        let mut tree = toml::Value::try_from(&config)
            .map_err(|e| ConfigError::Invalid { key: "(all)".into(), reason: e.to_string() })?;
        for (key, value, origin) in layers {
            let invalid = |reason: String| ConfigError::Invalid { key: format!("{key} (from {origin})"), reason };
            set_key(&mut tree, &key, &value).map_err(invalid)?;
            // Checked key by key, so the error names the key that broke it.
            tree.clone().try_into::<Config>().map_err(|e| invalid(e.message().to_owned()))?;
        }
        let config: Config = tree.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
            key: "(all)".into(),
            reason: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok((config, sources))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, reason: &str| Err(ConfigError::Invalid { key: key.to_owned(), reason: reason.to_owned() });
        if self.languages.supported.is_empty() {
            return invalid("languages.supported", "at least one language is needed");
        }
        if !self.languages.supported.contains(&self.languages.default) {
            return invalid("languages.default", "must be one of languages.supported");
        }
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        let p = &self.policy;
        for (key, value) in [
            ("policy.answer_min_score", p.answer_min_score),
            ("policy.answer_min_margin", p.answer_min_margin),
            ("policy.clarify_min_score", p.clarify_min_score),
            ("policy.intent_min_confidence", p.intent_min_confidence),
            ("policy.intent_min_margin", p.intent_min_margin),
            ("policy.intent_clarify_min", p.intent_clarify_min),
            ("policy.retrieval_agree_min", p.retrieval_agree_min),
            ("policy.conversational_min_confidence", p.conversational_min_confidence),
        ] {
            if !unit(value) {
                return invalid(key, "must be between 0 and 1");
            }
        }
        if self.server.tls_cert.as_os_str().is_empty() != self.server.tls_key.as_os_str().is_empty() {
            return invalid("server.tls_key", "tls_cert and tls_key go together");
        }
        if !self.server.tls() && !self.server.listen.ip().is_loopback() && !self.server.allow_plaintext {
            return invalid(
                "server.listen",
                "plain text is only served on loopback: set server.tls_cert and server.tls_key, or server.allow_plaintext",
            );
        }
        if !["keys", "open"].contains(&self.auth.mode.as_str()) {
            return invalid("auth.mode", "must be \"keys\" or \"open\"");
        }
        if self.auth.open() && !self.server.listen.ip().is_loopback() {
            return invalid("auth.mode", "\"open\" (no credentials) is only allowed on a loopback listen address");
        }
        if p.clarify_max_options < 2 {
            return invalid("policy.clarify_max_options", "must be at least 2");
        }
        for code in p.languages.keys() {
            if !self.languages.supported.contains(code) {
                return invalid(&format!("policy.languages.{code}"), "not a supported language");
            }
        }
        crate::handoff::Schedules::from_config(&self.handoff)
            .map_err(|reason| ConfigError::Invalid { key: "handoff.office_hours".into(), reason })?;
        let url = self.storage.database_url.trim();
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return invalid("storage.database_url", "must be empty (SQLite) or a postgres:// URL");
        }
        if self.storage.max_connections == 0 {
            return invalid("storage.max_connections", "must be positive");
        }
        if self.storage.acquire_timeout_ms == 0 {
            return invalid("storage.acquire_timeout_ms", "must be positive");
        }
        if self.limits.max_message_bytes == 0 {
            return invalid("limits.max_message_bytes", "must be positive");
        }
        if self.web.conversation_token_ttl_secs == 0 {
            return invalid("web.conversation_token_ttl_secs", "must be positive");
        }
        if self.web.widget_starts_per_minute_per_address.is_nan() || self.web.widget_starts_per_minute_per_address < 0.0
        {
            return invalid("web.widget_starts_per_minute_per_address", "must be 0 (no limit) or positive");
        }
        for (n, origin) in self.web.allowed_origins.iter().enumerate() {
            if let Err(reason) = check_origin(origin) {
                return invalid(&format!("web.allowed_origins[{n}]"), &reason);
            }
        }
        crate::webhooks::check_config(&self.webhooks, &self.webhook_delivery)
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        for (key, value) in [
            ("kpi.csat_min", self.kpi.csat_min),
            ("kpi.resolution_min", self.kpi.resolution_min),
            ("kpi.deflection_min", self.kpi.deflection_min),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return invalid(key, "must be between 0 and 1");
            }
        }
        Ok(())
    }
}

/// An origin as browsers send it: `http` or `https`, a host, an optional port, nothing else (no path, no
/// trailing slash, no wildcard), in lower case.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    let Some(authority) = rest else {
        return Err(format!("{origin:?} is not an origin: it must start with http:// or https://"));
    };
    // `[::1]:8080` keeps its brackets; only a colon after the host starts a port.
    let host_end = if authority.starts_with('[') { authority.find(']').map_or(0, |i| i + 1) } else { 0 };
    let (host, port) = match authority[host_end..].find(':') {
        Some(i) => (&authority[..host_end + i], Some(&authority[host_end + i + 1..])),
        None => (authority, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(format!("{origin:?} has an invalid port"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.[]:".contains(c);
    if host.is_empty() || !host.chars().all(allowed) {
        return Err(format!(
            "{origin:?} is not an origin: scheme://host[:port] in lower case, without path, slash or wildcard"
        ));
    }
    Ok(())
}

/// Sets the dotted `key` in `tree` to `value`, read as the type the key holds now (or as TOML where it holds
/// nothing yet, as in a new `policy.languages.<code>` entry). Unknown keys are left for deserialisation to name.
fn set_key(tree: &mut toml::Value, key: &str, value: &str) -> Result<(), String> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("not a key: expected section.key".into());
    }
    let (leaf, parents) = segments.split_last().expect("split yields at least one segment");
    let mut table = tree.as_table_mut().ok_or("the configuration is not a table")?;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table.entry(segment.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("{} is a value, not a section", segments[..=depth].join(".")))?;
    }
    let parsed = || toml::from_str::<toml::Table>(&format!("v = {value}")).ok().and_then(|mut t| t.remove("v"));
    let new = match table.get(*leaf) {
        Some(toml::Value::String(_)) => toml::Value::String(value.to_owned()),
        Some(toml::Value::Array(_)) => parsed().unwrap_or_else(|| {
            toml::Value::Array(
                value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(|v| v.to_owned().into()).collect(),
            )
        }),
        Some(toml::Value::Table(_)) => return Err("is a section: set one of its keys".into()),
        _ => parsed().unwrap_or_else(|| toml::Value::String(value.to_owned())),
    };
    table.insert(leaf.to_string(), new);
    Ok(())
}
