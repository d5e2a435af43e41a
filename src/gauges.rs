//! The gauges Prometheus scrapes (queue length and oldest wait per skill, knowledge size, webhook outbox, model
//! version), read from the running service just before each scrape, and the `/metrics` HTTP endpoint. Beside
//! `App`, which builds it from the same context as the services: the queues come from `Stats` (the function
//! `GetQueueSnapshot` uses), the rest from the knowledge, model and webhooks directly.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tracing::warn;

use crate::config::Config;
use crate::intent::LiveModel;
use crate::knowledge::LiveKnowledge;
use crate::metrics::{
    INDEX_EXAMPLES, KNOWLEDGE_ENTRIES, MODEL_INFO, MODEL_WRITTEN, ModelVersion, QUEUE_LENGTH, QUEUE_OLDEST_WAIT,
    WEBHOOK_OUTBOX, install,
};
use crate::stats::Stats;
use crate::stats::queue::SkillQueue;
use crate::webhooks::Webhooks;

/// Reads what the gauges show from the running service, just before each scrape.
pub struct Gauges {
    /// The queues per skill, read as `GetQueueSnapshot` reads them.
    stats: Arc<Stats>,
    knowledge: Arc<LiveKnowledge>,
    live_model: Arc<LiveModel>,
    config: Arc<Config>,
    webhooks: Arc<Webhooks>,
    /// The model version, recomputed only when a different model is in use.
    model: Mutex<Option<(usize, Option<ModelVersion>)>>,
}

impl Gauges {
    pub fn new(
        stats: Arc<Stats>,
        knowledge: Arc<LiveKnowledge>,
        live_model: Arc<LiveModel>,
        config: Arc<Config>,
        webhooks: Arc<Webhooks>,
    ) -> Self {
        Self { stats, knowledge, live_model, config, webhooks, model: Mutex::new(None) }
    }

    /// Skills that may appear as label values ([`crate::handoff::known_skills`]). A transfer to any other skill
    /// (typed by an agent) is shown as "other".
    fn known_skills(&self) -> BTreeSet<String> {
        crate::handoff::known_skills(&self.config.handoff, &self.knowledge.current().base.faqs)
    }

    pub async fn refresh(&self) {
        match self.stats.queues().await {
            Ok((_, by_skill)) => {
                let known = self.known_skills();
                // A skill no hand-off is routed to by configuration (typed in a transfer) is shown as "other".
                let mut queues: BTreeMap<String, SkillQueue> = BTreeMap::new();
                for (skill, queue) in by_skill {
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
        let knowledge = self.knowledge.current();
        metrics::gauge!(KNOWLEDGE_ENTRIES).set(knowledge.base.faqs.len() as f64);
        metrics::gauge!(INDEX_EXAMPLES).set(knowledge.index.len() as f64);
        self.refresh_model().await;
    }

    /// Deliveries per configured webhook and state (0 where none): one grouped count, only with webhooks.
    async fn refresh_outbox(&self) {
        let webhooks = &self.webhooks;
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
        let current = self.live_model.current();
        let key = current.as_ref().map_or(0, |model| Arc::as_ptr(model) as usize);
        let known = self.model.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(k, _)| *k);
        if known != Some(key) {
            // The directory the model in use came from: the shipped one, or a background retrain's.
            let dir = self.live_model.dir();
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
