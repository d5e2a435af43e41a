//! The sections about running the service: listeners and TLS, storage, access, limits, logs, metrics, privacy,
//! the web pages, the intent model's files and the outbound webhooks.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
