//! Prometheus metrics: their names, descriptions and the process-wide recorder (the `/metrics` endpoint and the
//! gauges read at scrape time are `gauges`, beside `App`). Domain code records through the `metrics` facade
//! macros with these names; this module imports nothing of the domain. Label values are
//! enum-like only (RPC name, status code, decision kind, reason, configured skill), never customer text or ids.

use std::path::Path;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram of gRPC request latency (until the response head; for streams, until the stream opens), by
/// `grpc_service` and `grpc_method`.
pub const RPC_DURATION: &str = "loket_rpc_duration_seconds";
/// gRPC requests by `grpc_service`, `grpc_method` and `code` (the canonical status name, `OK`, `NOT_FOUND`, ...).
pub const RPC_REQUESTS: &str = "loket_rpc_requests_total";
/// Bot decisions on customer messages by `kind` (answer, clarify, handoff, small_talk, silent).
pub const DECISIONS: &str = "loket_decisions_total";
/// Hand-offs opened by `reason` and `skill`.
pub const HANDOFFS: &str = "loket_handoffs_total";
/// Hand-offs waiting for an agent, by `skill`.
pub const QUEUE_LENGTH: &str = "loket_queue_length";
/// How long the longest-waiting hand-off of a `skill` has waited, in seconds (0 with an empty queue).
pub const QUEUE_OLDEST_WAIT: &str = "loket_queue_oldest_wait_seconds";
/// Agents' open WatchQueue streams.
pub const AGENTS_CONNECTED: &str = "loket_agents_connected";
/// 1, with the intent model in use as `version` (the first 12 hex digits of the SHA-256 of its weights).
pub const MODEL_INFO: &str = "loket_intent_model_info";
/// When the weights of the intent model in use were written (by `loket train`, or by a checkout), Unix seconds.
/// Training does not record its own time in the model files, so their bytes stay reproducible.
pub const MODEL_WRITTEN: &str = "loket_intent_model_written_timestamp_seconds";
/// FAQ entries in the knowledge base.
pub const KNOWLEDGE_ENTRIES: &str = "loket_knowledge_entries";
/// Example phrasings in the search index.
pub const INDEX_EXAMPLES: &str = "loket_index_examples";
/// Webhook delivery attempts by `webhook` (the configured name) and `outcome`: `delivered`, `retry` (failed, tried
/// again later) or `failed` (failed and out of attempts: kept for redelivery).
pub const WEBHOOK_ATTEMPTS: &str = "loket_webhook_attempts_total";
/// Webhook deliveries in the outbox by `webhook` and `state`: `pending` (to be sent, or retried) or `failed`.
pub const WEBHOOK_OUTBOX: &str = "loket_webhook_outbox";

/// Request latency buckets, in seconds: a turn takes about a millisecond, a slow one a second.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process-wide `metrics` recorder, once; later calls (several servers
/// in one test process) share it. Until it is installed, recording is a no-op.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(RPC_DURATION.into()), LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(RPC_DURATION, metrics::Unit::Seconds, "gRPC request latency by service and method");
    describe_counter!(RPC_REQUESTS, "gRPC requests by service, method and status code");
    describe_counter!(DECISIONS, "bot decisions on customer messages by kind");
    describe_counter!(HANDOFFS, "hand-offs opened by reason and skill");
    describe_gauge!(QUEUE_LENGTH, "hand-offs waiting for an agent by skill");
    describe_gauge!(QUEUE_OLDEST_WAIT, metrics::Unit::Seconds, "wait of the longest-waiting hand-off by skill");
    describe_gauge!(AGENTS_CONNECTED, "agents watching the queue");
    describe_gauge!(MODEL_INFO, "the intent model in use, by version");
    describe_gauge!(MODEL_WRITTEN, metrics::Unit::Seconds, "when the weights of the intent model in use were written");
    describe_gauge!(KNOWLEDGE_ENTRIES, "FAQ entries in the knowledge base");
    describe_gauge!(INDEX_EXAMPLES, "example phrasings in the search index");
    describe_counter!(WEBHOOK_ATTEMPTS, "webhook delivery attempts by webhook and outcome");
    describe_gauge!(WEBHOOK_OUTBOX, "webhook deliveries waiting (pending) or given up (failed) by webhook");
}

/// Counts an agent's queue watch while it lives.
pub struct AgentConnected(());

impl AgentConnected {
    pub fn connect() -> Self {
        metrics::gauge!(AGENTS_CONNECTED).increment(1.0);
        AgentConnected(())
    }
}

impl Drop for AgentConnected {
    fn drop(&mut self) {
        metrics::gauge!(AGENTS_CONNECTED).decrement(1.0);
    }
}

/// The intent model on disk: a short content hash as its version (the same seed gives the same version), and
/// when its weights were written.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub version: String,
    pub written_at: Option<std::time::SystemTime>,
}

impl ModelVersion {
    /// `None` without a model in `dir`. Reads the weights (a few MB) once per call.
    pub fn of_dir(dir: &Path) -> Option<ModelVersion> {
        use sha2::Digest;
        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).ok()?;
        let digest = sha2::Sha256::digest(&bytes);
        let version = crate::text::hex(&digest[..6]);
        let written_at = std::fs::metadata(&weights).and_then(|m| m.modified()).ok();
        Some(ModelVersion { version, written_at })
    }
}
