//! loket: a support chatbot service. A front-end sends a customer's message over gRPC; loket searches the FAQ
//! knowledge base, decides to answer, clarify or hand off, stores everything, and replies.
//! See ARCHITECTURE.md for the map.

#![forbid(unsafe_code)]

pub mod access;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod dialogue;
pub mod editor;
pub mod error;
pub mod handoff;
pub mod identity;
pub mod intent;
pub mod knowledge;
pub mod metrics;
pub mod paging;
pub mod privacy;
pub mod progress;
pub mod replica;
pub mod server;
pub mod stats;
pub mod store;
pub mod text;
pub mod web;
pub mod webhooks;
pub mod widget;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;

use crate::access::{Access, RateLimiter};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::dialogue::Dialogue;
use crate::editor::{Editor, Retrainer, seed};
use crate::intent::LiveModel;
use crate::knowledge::{Knowledge, LiveKnowledge};
use crate::store::Store;

/// How often the database is checked for health reporting (and how long each check may take).
const STORE_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// What a start does about keys for a newcomer.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstStart {
    /// Keys exist, or none are needed (open mode).
    Nothing,
    /// No key, on an address others can reach: make none, say how.
    Explain,
    /// No key, on loopback: make a widget key and an agent key and show them.
    DemoKeys,
}

/// The rule of [`App::welcome`]: only a database that never had a key, served on loopback, gets demo keys.
pub fn first_start(open: bool, keys_ever: usize, address: std::net::SocketAddr) -> FirstStart {
    match (open, keys_ever, address.ip().is_loopback()) {
        (true, _, _) | (false, 1.., _) => FirstStart::Nothing,
        (false, 0, true) => FirstStart::DemoKeys,
        (false, 0, false) => FirstStart::Explain,
    }
}

/// Everything a running loket needs, built from a [`Config`]; tests build one and serve it on their own listener.
pub struct App {
    pub config: Arc<Config>,
    pub dialogue: Arc<Dialogue>,
    pub editor: Arc<Editor>,
    pub access: Arc<Access>,
    /// Watched for reachability: health follows it.
    store: Arc<dyn Store>,
    /// Where background retrains save the model they swap in.
    retrained_dir: PathBuf,
}

impl App {
    /// Opens the configured database (PostgreSQL, or the embedded one in the data directory) and loads the
    /// knowledge base.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = store::open(&config.storage).await?;
        Self::build_with(config, store, Arc::new(SystemClock)).await
    }

    /// Like [`App::build`] with the store and clock given.
    pub async fn build_with(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let languages = config.languages.supported.clone();
        // The database is the source of truth; the files seed it on first start.
        let (entries, base) = seed::load(&*store, &config.knowledge.dir, &languages, clock.now_millis()).await?;
        let locales = base.locales.clone();
        // Indexing is CPU work: keep it off the async workers.
        let knowledge = tokio::task::spawn_blocking(move || Knowledge::build(base)).await??;
        info!(
            entries = knowledge.base.faqs.len(),
            examples = knowledge.index.len(),
            languages = ?config.languages.supported,
            dictionary_words = ?knowledge.base.dictionary_words(),
            "knowledge base loaded"
        );

        // The shipped model fits the shipped knowledge. Once editors changed it, the model retrained here (stamped
        // with the knowledge version it learned) is used, and a retrain is due when it is missing or behind.
        let retrained_dir = config.storage.data_dir.join("intent-model");
        let edited = seed::edited_since_seed(&*store).await?;
        let knowledge_version = store.knowledge_version().await?;
        let trained = editor::trained_version(&retrained_dir);
        let model_dir =
            if edited && trained.is_some() { retrained_dir.clone() } else { config.intent.model_dir.clone() };
        let retrain_due = edited && trained != Some(knowledge_version);
        let shown_dir = model_dir.clone();
        let (model, version) = tokio::task::spawn_blocking(move || {
            (LiveModel::open(&model_dir), metrics::ModelVersion::of_dir(&model_dir))
        })
        .await?;
        match (model.current(), version) {
            (Some(loaded), Some(version)) => {
                let written_at = version.written_at.map(|t| jiff::Timestamp::try_from(t).map(|t| t.to_string()));
                let written_at = written_at.and_then(Result::ok).unwrap_or_default();
                info!(version = %version.version, %written_at, labels = loaded.labels().len(), dir = %shown_dir.display(), "intent model ready");
            }
            _ => info!(dir = %shown_dir.display(), "no intent model: answering from search alone"),
        }

        let retrainer = Retrainer::new(
            config.knowledge.retrain,
            Duration::from_millis(config.knowledge.retrain_delay_ms),
            config.knowledge.retrain_epochs,
        );
        if retrain_due {
            info!(knowledge_version, trained = ?trained, "the knowledge base changed since the model was trained: retraining");
            retrainer.request();
        }
        let limiter = RateLimiter::new(config.limits.requests_per_second_per_key, config.limits.request_burst_per_key);
        let access = Access::new(Arc::clone(&store), Arc::clone(&clock), config.auth.open(), limiter).await?;
        let access = Arc::new(access.with_widget_settings(access::WidgetSettings::from_config(&config.web)));
        if access.is_open() {
            tracing::warn!(
                "auth.mode = \"open\": NO CREDENTIALS ARE CHECKED and every caller is an administrator. A demo mode: \
                 use API keys (`loket keys create`) for anything else"
            );
        } else {
            info!(keys = access.live_keys(), "access control: API keys required");
        }
        let config = Arc::new(config);
        let live = Arc::new(LiveKnowledge::new(knowledge));
        let dialogue = Arc::new(Dialogue::new(Arc::clone(&store), live, Arc::new(model), Arc::clone(&config), clock)?);
        let editor = Arc::new(Editor::new(Arc::clone(&dialogue), entries, locales, retrainer));
        Ok(App { config, dialogue, editor, access, store, retrained_dir })
    }

    /// The first five minutes: on a database without any API key, served on a loopback `address`, makes a
    /// widget key and an agent key and prints them once with the demo page's address, so a newcomer can chat and
    /// take the hand-off at once. On any other address it makes nothing and says how to make keys.
    pub async fn welcome(&self, address: std::net::SocketAddr) -> anyhow::Result<()> {
        match first_start(self.access.is_open(), self.store.api_keys().await?.len(), address) {
            FirstStart::Nothing => {}
            FirstStart::Explain => tracing::warn!(
                %address,
                "no API keys yet, and none are made on a non-loopback address: create them with `loket keys create \
                 --role admin|client|agent|editor|widget --name NAME`"
            ),
            FirstStart::DemoKeys => {
                let widget = self.access.create_key("demo widget", access::Role::Widget, Vec::new(), "", "first-start");
                let widget = widget.await?;
                let agent =
                    self.access.create_key("demo-agent", access::Role::Agent, Vec::new(), "Demo", "first-start");
                let agent = agent.await?;
                println!(
                    "\nloket's first start: two keys for trying it out on this machine (shown once, stored hashed)\n\
                     \x20 chat as a customer:  http://{address}/demo#key={}\n\
                     \x20 answer as an agent:  http://{address}/agent  (sign in with the agent key below)\n\
                     \x20 agent key (agent \"demo-agent\", shown to customers as \"Demo\"): {}\n\
                     \x20 revoke them with `loket keys revoke ID` before going live\n",
                    widget.token, agent.token
                );
            }
        }
        Ok(())
    }

    /// Serves the gRPC API on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.serve_with_metrics(listener, None, shutdown).await
    }

    /// Serves the gRPC API on `listener` and, when given, Prometheus metrics on `metrics` (`GET /metrics`),
    /// until `shutdown` completes.
    pub async fn serve_with_metrics(
        self,
        listener: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let watcher = self.watch_model();
        let exporter = match metrics {
            Some(metrics_listener) => {
                // Installed before the first request, so every request is counted.
                metrics::install();
                let url = metrics_listener.local_addr().map(|a| format!("http://{a}/metrics")).unwrap_or_default();
                info!(%url, "serving metrics");
                let gauges = Arc::new(metrics::Gauges::new(Arc::clone(&self.dialogue)));
                Some(tokio::spawn(metrics::serve(metrics_listener, gauges, std::future::pending())))
            }
            None => {
                info!("metrics off");
                None
            }
        };
        let retrain = self.editor.retrainer_handle().spawn(Arc::clone(&self.dialogue), self.retrained_dir.clone());
        let keys = self.reload_keys();
        // Apart from every request: a slow or dead receiver holds up only its own deliveries.
        let deliverer = self.dialogue.webhooks().spawn();
        let retention = self.enforce_retention();
        let tls = match self.config.server.tls() {
            true => Some(server::tls_config(&self.config.server.tls_cert, &self.config.server.tls_key)?),
            false => None,
        };
        // Before serving, so no change another replica commits from here on is missed.
        let follower = replica::follow(Arc::clone(&self.dialogue), Arc::clone(&self.editor)).await?;
        let (store_reachable, probe) = store::watch_reachable(Arc::clone(&self.store), STORE_PROBE_INTERVAL);
        // On shutdown: stop a retrain under way (the next start redoes it) and end the open watch streams, since
        // the transport drains only once every stream is done; the transport turns health NOT_SERVING.
        let dialogue = Arc::clone(&self.dialogue);
        let retrainer = self.editor.retrainer_handle();
        let draining = Arc::new(tokio::sync::Notify::new());
        let drain_started = Arc::clone(&draining);
        let shutdown = async move {
            shutdown.await;
            info!("shutting down: health NOT_SERVING, ending watch streams, draining requests in flight");
            retrainer.cancel();
            dialogue.close_streams();
            drain_started.notify_one();
        };
        let drain_timeout = Duration::from_millis(self.config.server.drain_timeout_ms);
        let serving = server::serve(self.dialogue, self.editor, self.access, tls, listener, store_reachable, shutdown);
        // Requests that outlive the drain (a client's endless health watch, a stuck call) do not hold the exit.
        let served = tokio::select! {
            served = serving => served,
            () = async { draining.notified().await; tokio::time::sleep(drain_timeout).await } => {
                tracing::warn!(?drain_timeout, "requests still in flight after the drain timeout: stopping anyway");
                Ok(())
            }
        };
        probe.abort();
        keys.abort();
        // What it was posting stays leased and is posted again after a restart (at least once).
        if let Some(deliverer) = deliverer {
            deliverer.abort();
        }
        if let Some(follower) = follower {
            follower.abort();
        }
        if let Some(retention) = retention {
            retention.abort();
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        retrain.abort();
        if let Some(exporter) = exporter {
            exporter.abort();
        }
        served?;
        Ok(())
    }

    /// Redacts personal data from transcripts older than `privacy.transcript_retention_days`, now and then every
    /// `privacy.retention_check_secs`.
    fn enforce_retention(&self) -> Option<tokio::task::JoinHandle<()>> {
        let days = self.config.privacy.transcript_retention_days;
        if days == 0 {
            return None;
        }
        let dialogue = Arc::clone(&self.dialogue);
        let every = Duration::from_secs(self.config.privacy.retention_check_secs.max(1));
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let before = dialogue.now() - (days as i64) * 86_400_000;
                match dialogue.store().redact_before(before, privacy::redact).await {
                    Ok(0) => {}
                    Ok(rows) => info!(rows, days, "expired transcripts redacted"),
                    Err(e) => tracing::error!(error = %e, "redacting expired transcripts failed; retrying later"),
                }
            }
        }))
    }

    /// Picks up keys created or revoked from outside the process (`loket keys`) every `auth.reload_secs`.
    fn reload_keys(&self) -> tokio::task::JoinHandle<()> {
        let access = Arc::clone(&self.access);
        let every = Duration::from_secs(self.config.auth.reload_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = access.reload().await {
                    tracing::error!(error = %e, "reloading API keys failed: keeping the ones loaded");
                }
            }
        })
    }

    /// Polls the model directory and swaps in a newly trained model (a broken one is rejected, the old stays).
    fn watch_model(&self) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.config.intent.reload_check_secs;
        if every == 0 {
            return None;
        }
        let dialogue = Arc::clone(&self.dialogue);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
            tick.tick().await;
            loop {
                tick.tick().await;
                let dialogue = Arc::clone(&dialogue);
                // Loading parses a few MB: off the async workers.
                let _ = tokio::task::spawn_blocking(move || dialogue.model().reload_if_changed()).await;
            }
        }))
    }
}
