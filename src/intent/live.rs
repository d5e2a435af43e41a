//! The model the service uses right now, swappable while it serves: requests hold an `Arc` to the model they
//! started with, so a swap never disturbs one in flight; a model that fails to load leaves the old one in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tracing::{error, info};

use super::{IntentError, IntentModel};

pub struct LiveModel {
    /// Where the model in use came from, watched for a newer one.
    dir: RwLock<PathBuf>,
    current: RwLock<Option<Arc<IntentModel>>>,
    /// Modification time of the files last loaded, to notice a new model on disk.
    loaded_stamp: RwLock<Option<SystemTime>>,
}

/// The newest modification time among the model's files.
fn stamp(dir: &Path) -> Option<SystemTime> {
    ["model.safetensors", "config.json", "labels.json", "tokenizer.json"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).and_then(|m| m.modified()).ok())
        .max()
}

impl LiveModel {
    /// Loads the model in `dir`; without one (or with a broken one) the service runs on retrieval alone.
    pub fn open(dir: &Path) -> LiveModel {
        let live =
            LiveModel { dir: RwLock::new(dir.to_owned()), current: RwLock::new(None), loaded_stamp: RwLock::new(None) };
        match live.reload() {
            Ok(()) => {}
            Err(e) => error!(dir = %dir.display(), error = %e, "no intent model loaded: answering from search alone"),
        }
        live
    }

    /// A model already in memory (tests, `loket eval`).
    pub fn fixed(model: IntentModel) -> LiveModel {
        LiveModel {
            dir: RwLock::new(PathBuf::new()),
            current: RwLock::new(Some(Arc::new(model))),
            loaded_stamp: RwLock::new(None),
        }
    }

    pub fn current(&self) -> Option<Arc<IntentModel>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Where the model in use was loaded from (or saved to, after a retrain).
    pub fn dir(&self) -> PathBuf {
        self.dir.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Loads the model from disk and swaps it in; on error the previous model stays.
    pub fn reload(&self) -> Result<(), IntentError> {
        let dir = self.dir();
        let stamp = stamp(&dir);
        let model = IntentModel::load(&dir)?;
        info!(dir = %dir.display(), labels = model.labels().len(), "intent model loaded");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        *self.loaded_stamp.write().unwrap_or_else(|e| e.into_inner()) = stamp;
        Ok(())
    }

    /// Swaps in a model trained in this process and saved in `dir`, which is watched from now on.
    pub fn swap(&self, model: IntentModel, dir: &Path) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        *self.dir.write().unwrap_or_else(|e| e.into_inner()) = dir.to_owned();
        *self.loaded_stamp.write().unwrap_or_else(|e| e.into_inner()) = stamp(dir);
    }

    /// Reloads when the files on disk changed since the last load attempt; logs a rejected model once.
    pub fn reload_if_changed(&self) {
        let dir = self.dir();
        let on_disk = stamp(&dir);
        let loaded = *self.loaded_stamp.read().unwrap_or_else(|e| e.into_inner());
        if on_disk.is_none() || on_disk == loaded {
            return;
        }
        if let Err(e) = self.reload() {
            error!(dir = %dir.display(), error = %e, "new intent model rejected: keeping the current one");
            // Remember the stamp so a broken file is reported once, not on every poll.
            *self.loaded_stamp.write().unwrap_or_else(|e| e.into_inner()) = on_disk;
        }
    }
}
