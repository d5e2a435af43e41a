//! The background retrain: after knowledge edits (debounced), train a new intent model from the live knowledge
//! base, save it in the data directory stamped with the knowledge version it learned, and swap it in. Requests
//! in flight keep the model they started with; until the swap, retrieval alone decides about entries the old
//! model does not know (`dialogue::policy`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{error, info};

use crate::config::Config;
use crate::intent::LiveModel;
use crate::intent::{Cancel, service};
use crate::knowledge::LiveKnowledge;
use crate::store::Store;

/// File in a retrained model's directory naming the knowledge version it was trained on.
const VERSION_FILE: &str = "knowledge_version";
/// The same seed as `loket train`: a retrain of the same knowledge gives the same model.
const SEED: u64 = 42;

/// What the retrain task has done, for `GetRetrainStatus`-style reporting and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrainStatus {
    /// A retrain has been asked for and not started yet.
    pub pending: bool,
    pub running: bool,
    /// Retrains finished and swapped in since start.
    pub completed: u64,
    /// Knowledge version of the model in use when it was retrained here (0: the shipped or loaded model).
    pub trained_version: i64,
    pub last_seconds: Option<f64>,
    pub last_error: Option<String>,
    /// Entries the model in use learned too poorly (`IntentModel::weak_labels`): retrieval alone answers them.
    pub weak_entries: Vec<String>,
}

pub struct Retrainer {
    enabled: bool,
    delay: Duration,
    epochs: usize,
    wake: Notify,
    status: Mutex<RetrainStatus>,
    /// Raised at shutdown: a retrain under way stops within one training step and none starts after.
    cancel: Cancel,
}

impl Retrainer {
    pub fn new(enabled: bool, delay: Duration, epochs: usize) -> Arc<Retrainer> {
        Arc::new(Retrainer {
            enabled,
            delay,
            epochs,
            wake: Notify::new(),
            status: Mutex::default(),
            cancel: Cancel::new(),
        })
    }

    /// Asks for a retrain; several requests within the delay lead to one.
    pub fn request(&self) {
        if self.enabled {
            self.update(|s| s.pending = true);
            self.wake.notify_one();
        }
    }

    /// Stops the retrain under way, if any, and every later one: the server is shutting down. The knowledge
    /// version on disk stays behind, so the next start retrains.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn status(&self) -> RetrainStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut RetrainStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Runs retrains as they are requested until the task is aborted. Models are saved under `dir`.
    pub fn run(self: &Arc<Self>, sources: RetrainSources, dir: PathBuf) -> impl Future<Output = ()> + Send + 'static {
        let this = Arc::clone(self);
        async move {
            loop {
                this.wake.notified().await;
                // Debounce: start only after `delay` without a new request.
                while tokio::time::timeout(this.delay, this.wake.notified()).await.is_ok() {}
                if this.cancel.is_cancelled() {
                    return;
                }
                this.update(|s| {
                    s.pending = false;
                    s.running = true;
                });
                let started = std::time::Instant::now();
                let outcome = this.retrain(&sources, &dir).await;
                let seconds = started.elapsed().as_secs_f64();
                this.update(|s| {
                    s.running = false;
                    match outcome {
                        Ok(version) => {
                            s.completed += 1;
                            s.trained_version = version;
                            s.last_seconds = Some(seconds);
                            s.last_error = None;
                        }
                        Err(e) if this.cancel.is_cancelled() => {
                            info!(reason = %e, "background retrain stopped: shutting down");
                            s.last_error = Some(e);
                        }
                        Err(e) => {
                            error!(error = %e, "background retrain failed: keeping the current model");
                            s.last_error = Some(e);
                        }
                    }
                });
            }
        }
    }

    async fn retrain(&self, sources: &RetrainSources, dir: &Path) -> Result<i64, String> {
        let version = sources.store.knowledge_version().await.map_err(|e| e.to_string())?;
        let knowledge = sources.knowledge.current();
        let learned = knowledge.untrained_edits().into_values().max().unwrap_or(0);
        let config = &sources.config;
        let conversational = config.knowledge.dir.join("intents/conversational.yaml");
        let languages = config.languages.supported.clone();
        let epochs = self.epochs;
        let cancel = self.cancel.clone();
        let target = dir.to_owned();
        let started = std::time::Instant::now();
        // Training is seconds of CPU: a blocking thread, never an async worker.
        let model = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let training = service::train_for(
                &knowledge.base,
                &conversational,
                &languages,
                SEED,
                epochs,
                cancel,
                crate::progress::meter("retraining the intent model", crate::progress::Style::Log),
            )
            .map_err(|e| e.to_string())?;
            save(&training.model, &target, version)?;
            // Serve what was saved (weights are stored as f16), so a restart answers exactly the same.
            crate::intent::IntentModel::load(&target).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        sources.model.swap(model, dir);
        sources.knowledge.current().learned(learned);
        info!(version, seconds = started.elapsed().as_secs_f64(), dir = %dir.display(), "retrained intent model swapped in");
        Ok(version)
    }
}

/// What a retrain reads (the knowledge version and base, the configuration) and where it installs its model.
pub struct RetrainSources {
    pub store: Arc<dyn Store>,
    pub knowledge: Arc<LiveKnowledge>,
    pub model: Arc<LiveModel>,
    pub config: Arc<Config>,
}

/// Writes the model next to `dir` and renames it into place, so a crash never leaves half a model there.
fn save(model: &crate::intent::IntentModel, dir: &Path, version: i64) -> Result<(), String> {
    let fresh = dir.with_extension("new");
    let _ = std::fs::remove_dir_all(&fresh);
    model.save(&fresh).map_err(|e| e.to_string())?;
    std::fs::write(fresh.join(VERSION_FILE), version.to_string()).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&fresh, dir).map_err(|e| format!("installing {}: {e}", dir.display()))
}

/// The knowledge version a model saved by [`save`] was trained on.
pub fn trained_version(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(VERSION_FILE)).ok()?.trim().parse().ok()
}
