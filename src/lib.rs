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
pub mod gauges;
pub mod handoff;
pub mod identity;
pub mod intent;
pub mod knowledge;
pub mod ledger;
pub mod metrics;
pub mod paging;
pub mod privacy;
pub mod progress;
pub mod quantile;
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
use crate::dialogue::{Dialogue, DialogueParts};
use crate::editor::{Editor, EditorParts, RetrainSources, Retrainer, seed};
use crate::handoff::{Desk, QueueHub, Schedules};
use crate::intent::LiveModel;
use crate::knowledge::{Knowledge, LiveKnowledge};
use crate::ledger::Ledger;
use crate::stats::Stats;
use crate::store::Store;
use crate::webhooks::Webhooks;

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

/// The whole configuration check: its own keys (`Config::validate`) and the webhook targets, whose rules belong
/// to `webhooks`.
pub fn check_config(config: &Config) -> Result<(), config::ConfigError> {
    config.validate()?;
    webhooks::check_config(&config.webhooks, &config.webhook_delivery)
        .map_err(|(key, reason)| config::ConfigError::Invalid { key, reason })
}

/// The shared parts every service is built from. `App` makes one and hands each service only the parts it uses;
/// no service reaches another through it.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The knowledge base in force (an edit swaps in a rebuilt one).
    pub knowledge: Arc<LiveKnowledge>,
    /// The intent model in force (a retrain or a new file swaps in another).
    pub model: Arc<LiveModel>,
    /// Loading, holding, committing and streaming conversations: shared by the bot and the agents' desk.
    pub ledger: Arc<Ledger>,
    /// Hand-off queue changes, to the agents watching.
    pub queue: Arc<QueueHub>,
    pub webhooks: Arc<Webhooks>,
}

/// Everything a running loket needs, built from a [`Config`]; tests build one and serve it on their own listener.
pub struct App {
    pub config: Arc<Config>,
    pub dialogue: Arc<Dialogue>,
    pub desk: Arc<Desk>,
    pub editor: Arc<Editor>,
    pub stats: Arc<Stats>,
    pub access: Arc<Access>,
    context: Context,
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
        // Checked here too, not only by `loket config check`: a configuration built in code must be as valid.
        check_config(&config)?;
        let schedules = Schedules::from_config(&config.handoff)
            .map_err(|reason| config::ConfigError::Invalid { key: "handoff.office_hours".into(), reason })?;
        let config = Arc::new(config);
        let webhooks =
            Arc::new(Webhooks::new(Arc::clone(&store), Arc::clone(&clock), &config.webhooks, &config.webhook_delivery));
        let ledger = Ledger::new(Arc::clone(&store), Arc::clone(&clock), config.limits.bounds(), Arc::clone(&webhooks));
        let context = Context {
            config: Arc::clone(&config),
            store,
            clock,
            knowledge: Arc::new(LiveKnowledge::new(knowledge)),
            model: Arc::new(model),
            ledger: Arc::new(ledger),
            queue: Arc::new(QueueHub::default()),
            webhooks,
        };
        let c = &context;
        let dialogue = Arc::new(Dialogue::new(DialogueParts {
            ledger: Arc::clone(&c.ledger),
            store: Arc::clone(&c.store),
            knowledge: Arc::clone(&c.knowledge),
            model: Arc::clone(&c.model),
            config: Arc::clone(&c.config),
            schedules,
            queue: Arc::clone(&c.queue),
            webhooks: Arc::clone(&c.webhooks),
        }));
        let desk = Arc::new(Desk::new(
            Arc::clone(&c.ledger),
            Arc::clone(&c.store),
            Arc::clone(&c.knowledge),
            Arc::clone(&c.config),
            Arc::clone(&c.queue),
            Arc::clone(&c.webhooks),
        ));
        let editor_parts = EditorParts {
            store: Arc::clone(&c.store),
            clock: Arc::clone(&c.clock),
            knowledge: Arc::clone(&c.knowledge),
            model: Arc::clone(&c.model),
            config: Arc::clone(&c.config),
            webhooks: Arc::clone(&c.webhooks),
        };
        let editor = Arc::new(Editor::new(editor_parts, entries, locales, retrainer));
        let stats = Arc::new(Stats::new(
            Arc::clone(&c.store),
            Arc::clone(&c.clock),
            Arc::clone(&c.knowledge),
            Arc::clone(&c.config),
        ));
        Ok(App { config, dialogue, desk, editor, stats, access, context, retrained_dir })
    }

    /// The shared parts the services were built from.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The first five minutes: on a database without any API key, served on a loopback `address`, makes a
    /// widget key and an agent key and prints them once with the demo page's address, so a newcomer can chat and
    /// take the hand-off at once. On any other address it makes nothing and says how to make keys.
    pub async fn welcome(&self, address: std::net::SocketAddr) -> anyhow::Result<()> {
        match first_start(self.access.is_open(), self.context.store.api_keys().await?.len(), address) {
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
        // Every background task of the server; dropping the set at the end aborts whatever still runs.
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(metrics_listener) = metrics {
            // Installed before the first request, so every request is counted.
            metrics::install();
            let url = metrics_listener.local_addr().map(|a| format!("http://{a}/metrics")).unwrap_or_default();
            info!(%url, "serving metrics");
            let c = &self.context;
            let gauges = Arc::new(gauges::Gauges::new(
                Arc::clone(&self.stats),
                Arc::clone(&c.knowledge),
                Arc::clone(&c.model),
                Arc::clone(&c.config),
                Arc::clone(&c.webhooks),
            ));
            tasks.spawn(async move {
                if let Err(error) = gauges::serve(metrics_listener, gauges, std::future::pending()).await {
                    tracing::error!(%error, "metrics endpoint stopped");
                }
            });
        } else {
            info!("metrics off");
        }
        self.watch_model(&mut tasks);
        let sources = RetrainSources {
            store: Arc::clone(&self.context.store),
            knowledge: Arc::clone(&self.context.knowledge),
            model: Arc::clone(&self.context.model),
            config: Arc::clone(&self.context.config),
        };
        tasks.spawn(self.editor.retrainer_handle().run(sources, self.retrained_dir.clone()));
        self.reload_keys(&mut tasks);
        // Apart from every request: a slow or dead receiver holds up only its own deliveries. What it was posting
        // when the server stops stays leased and is posted again after a restart (at least once).
        if let Some(deliverer) = self.context.webhooks.run() {
            tasks.spawn(deliverer);
        }
        self.enforce_retention(&mut tasks);
        let tls = match self.config.server.tls() {
            true => Some(server::tls_config(&self.config.server.tls_cert, &self.config.server.tls_key)?),
            false => None,
        };
        // Before serving, so no change another replica commits from here on is missed.
        let c = &self.context;
        let follower = replica::Follower {
            store: Arc::clone(&c.store),
            ledger: Arc::clone(&c.ledger),
            queue: Arc::clone(&c.queue),
            editor: Arc::clone(&self.editor),
        };
        if let Some(following) = follower.start().await? {
            tasks.spawn(following);
        }
        let (store_reachable, probe) = store::watch_reachable(Arc::clone(&self.context.store), STORE_PROBE_INTERVAL);
        // On shutdown: stop a retrain under way (the next start redoes it) and end the open watch streams, since
        // the transport drains only once every stream is done; the transport turns health NOT_SERVING.
        let ledger = Arc::clone(&self.context.ledger);
        let retrainer = self.editor.retrainer_handle();
        let draining = Arc::new(tokio::sync::Notify::new());
        let drain_started = Arc::clone(&draining);
        let shutdown = async move {
            shutdown.await;
            info!("shutting down: health NOT_SERVING, ending watch streams, draining requests in flight");
            retrainer.cancel();
            ledger.close_streams();
            drain_started.notify_one();
        };
        let drain_timeout = Duration::from_millis(self.config.server.drain_timeout_ms);
        let services = server::Services {
            dialogue: self.dialogue,
            desk: self.desk,
            editor: self.editor,
            stats: self.stats,
            access: self.access,
            webhooks: Arc::clone(&self.context.webhooks),
            config: Arc::clone(&self.context.config),
            knowledge: Arc::clone(&self.context.knowledge),
        };
        let serving = server::serve(services, tls, listener, store_reachable, shutdown);
        // Requests that outlive the drain (a client's endless health watch, a stuck call) do not hold the exit.
        let served = tokio::select! {
            served = serving => served,
            () = async { draining.notified().await; tokio::time::sleep(drain_timeout).await } => {
                tracing::warn!(?drain_timeout, "requests still in flight after the drain timeout: stopping anyway");
                Ok(())
            }
        };
        probe.abort();
        tasks.shutdown().await;
        served?;
        Ok(())
    }

    /// Redacts personal data from transcripts older than `privacy.transcript_retention_days`, now and then every
    /// `privacy.retention_check_secs`.
    fn enforce_retention(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let days = self.config.privacy.transcript_retention_days;
        if days == 0 {
            return;
        }
        let (store, clock) = (Arc::clone(&self.context.store), Arc::clone(&self.context.clock));
        let every = Duration::from_secs(self.config.privacy.retention_check_secs.max(1));
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let before = clock.now_millis() - (days as i64) * 86_400_000;
                match store.redact_before(before, privacy::redact).await {
                    Ok(0) => {}
                    Ok(rows) => info!(rows, days, "expired transcripts redacted"),
                    Err(e) => tracing::error!(error = %e, "redacting expired transcripts failed; retrying later"),
                }
            }
        });
    }

    /// Picks up keys created or revoked from outside the process (`loket keys`) every `auth.reload_secs`.
    fn reload_keys(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let access = Arc::clone(&self.access);
        let every = Duration::from_secs(self.config.auth.reload_secs.max(1));
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = access.reload().await {
                    tracing::error!(error = %e, "reloading API keys failed: keeping the ones loaded");
                }
            }
        });
    }

    /// Polls the model directory and swaps in a newly trained model (a broken one is rejected, the old stays).
    fn watch_model(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let every = self.config.intent.reload_check_secs;
        if every == 0 {
            return;
        }
        let model = Arc::clone(&self.context.model);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
            tick.tick().await;
            loop {
                tick.tick().await;
                let model = Arc::clone(&model);
                // Loading parses a few MB: off the async workers.
                let _ = tokio::task::spawn_blocking(move || model.reload_if_changed()).await;
            }
        });
    }
}
