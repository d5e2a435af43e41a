//! Prometheus metrics: their names, the process-wide recorder, the `/metrics` HTTP endpoint and the gauges read
//! at scrape time. Domain code records through the `metrics` facade macros with these names. Label values are
//! enum-like only (RPC name, status code, decision kind, reason, configured skill), never customer text or ids.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tracing::warn;

use crate::conversation::HandoffState;
use crate::dialogue::Dialogue;
use crate::stats::queue::SkillQueue;
use crate::store::HandoffFilter;

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
            warn!(%error, "another metrics recorder is installed: /metrics stays empty");
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

/// Reads what the gauges show from the running service, just before each scrape.
pub struct Gauges {
    dialogue: Arc<Dialogue>,
    /// The model version, recomputed only when a different model is in use.
    model: Mutex<Option<(usize, Option<ModelVersion>)>>,
}

impl Gauges {
    pub fn new(dialogue: Arc<Dialogue>) -> Self {
        Self { dialogue, model: Mutex::new(None) }
    }

    /// Skills that may appear as label values ([`crate::handoff::known_skills`]). A transfer to any other skill
    /// (typed by an agent) is shown as "other".
    fn known_skills(&self) -> BTreeSet<String> {
        crate::handoff::known_skills(&self.dialogue.config().handoff, &self.dialogue.knowledge().base.faqs)
    }

    pub async fn refresh(&self) {
        let now = self.dialogue.now();
        let filter = HandoffFilter { state: Some(HandoffState::Queued), skills: Vec::new() };
        match self.dialogue.store().handoffs(&filter, None, u32::MAX).await {
            Ok(queued) => {
                let known = self.known_skills();
                // A skill no hand-off is routed to by configuration (typed in a transfer) is shown as "other".
                let mut queues: BTreeMap<String, SkillQueue> = BTreeMap::new();
                for (skill, queue) in crate::stats::queue::by_skill(&queued, &known, now) {
                    let label = if known.contains(&skill) { skill } else { "other".into() };
                    let merged = queues.entry(label).or_default();
                    merged.waiting += queue.waiting;
                    merged.oldest_wait_millis = merged.oldest_wait_millis.max(queue.oldest_wait_millis);
                }
                for (skill, queue) in queues {
                    metrics::gauge!(QUEUE_LENGTH, "skill" => skill.clone()).set(queue.waiting as f64);
                    metrics::gauge!(QUEUE_OLDEST_WAIT, "skill" => skill)
                        .set(queue.oldest_wait_millis.max(0) as f64 / 1000.0);
                }
            }
            Err(error) => warn!(%error, "queue gauges not refreshed"),
        }
        self.refresh_outbox().await;
        let knowledge = self.dialogue.knowledge();
        metrics::gauge!(KNOWLEDGE_ENTRIES).set(knowledge.base.faqs.len() as f64);
        metrics::gauge!(INDEX_EXAMPLES).set(knowledge.index.len() as f64);
        self.refresh_model().await;
    }

    /// Deliveries per configured webhook and state (0 where none): one grouped count, only with webhooks.
    async fn refresh_outbox(&self) {
        let webhooks = self.dialogue.webhooks();
        let mut depth: BTreeMap<(String, &str), u64> = BTreeMap::new();
        for name in webhooks.names() {
            for state in ["pending", "failed"] {
                depth.insert((name.to_owned(), state), 0);
            }
        }
        if depth.is_empty() {
            return;
        }
        match webhooks.store().outbox_depth().await {
            Ok(rows) => {
                for row in rows {
                    // Rows of a webhook no longer configured are not a label of their own.
                    if let Some(count) =
                        depth.get_mut(&(row.webhook, if row.state == "failed" { "failed" } else { "pending" }))
                    {
                        *count += row.count;
                    }
                }
                for ((webhook, state), count) in depth {
                    metrics::gauge!(WEBHOOK_OUTBOX, "webhook" => webhook, "state" => state).set(count as f64);
                }
            }
            Err(error) => warn!(%error, "webhook outbox gauge not refreshed"),
        }
    }

    async fn refresh_model(&self) {
        let current = self.dialogue.model().current();
        let key = current.as_ref().map_or(0, |model| Arc::as_ptr(model) as usize);
        let known = self.model.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(k, _)| *k);
        if known != Some(key) {
            // The directory the model in use came from: the shipped one, or a background retrain's.
            let dir = self.dialogue.model().dir();
            // Hashing a few MB: off the async workers.
            let version = match current {
                Some(_) => tokio::task::spawn_blocking(move || ModelVersion::of_dir(&dir)).await.ok().flatten(),
                None => None,
            };
            if let Some((_, Some(old))) = &*self.model.lock().unwrap_or_else(|e| e.into_inner()) {
                metrics::gauge!(MODEL_INFO, "version" => old.version.clone()).set(0.0);
            }
            *self.model.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, version));
        }
        if let Some((_, Some(model))) = &*self.model.lock().unwrap_or_else(|e| e.into_inner()) {
            metrics::gauge!(MODEL_INFO, "version" => model.version.clone()).set(1.0);
            let written = model.written_at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            metrics::gauge!(MODEL_WRITTEN).set(written.map_or(0.0, |d| d.as_secs_f64()));
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    gauges: Arc<Gauges>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = install();
    let metrics = axum::routing::get(move || {
        let gauges = Arc::clone(&gauges);
        async move {
            gauges.refresh().await;
            handle.run_upkeep();
            ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
        }
    });
    let app = axum::Router::new().route("/metrics", metrics);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
