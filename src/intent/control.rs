//! How a caller steers a training run while it goes: hears its progress, and may stop it.

/// Hears how far a training run is, as a fraction in [0, 1], after every optimiser step: a progress bar, a log
/// line. Clones share the listener; the default has none. Never saved with a model.
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<dyn Fn(f64) + Send + Sync>>);

impl Progress {
    pub fn new(listener: impl Fn(f64) + Send + Sync + 'static) -> Self {
        Progress(Some(std::sync::Arc::new(listener)))
    }

    pub fn report(&self, fraction: f64) {
        if let Some(listener) = &self.0 {
            listener(fraction.clamp(0.0, 1.0));
        }
    }

    /// The part of this run from `start` on, `share` of it long: one stage of a run of several trainings.
    pub fn stage(&self, start: f64, share: f64) -> Progress {
        match &self.0 {
            None => Progress(None),
            Some(listener) => {
                let listener = std::sync::Arc::clone(listener);
                Progress::new(move |fraction| listener(start + share * fraction))
            }
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(listening)" } else { "Progress(none)" })
    }
}

/// A listener is not a hyper-parameter (like [`Cancel`]).
impl PartialEq for Progress {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Stops a training run between two optimiser steps: a server shutting down does not wait for a background
/// retrain. Clones share one flag; the default flag can never be raised.
#[derive(Clone, Default)]
pub struct Cancel(Option<std::sync::Arc<std::sync::atomic::AtomicBool>>);

impl Cancel {
    pub fn new() -> Self {
        Cancel(Some(std::sync::Arc::default()))
    }

    pub fn cancel(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|flag| flag.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cancel({})", self.is_cancelled())
    }
}

/// A flag is not a hyper-parameter: two configurations differing only in it are the same configuration.
impl PartialEq for Cancel {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
