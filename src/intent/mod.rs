//! Intent classification for loket: public API, training orchestration and the out-of-scope decision.
//!
//! Model: an ensemble of fastText-style networks (mean of sub-word / word / char-n-gram embeddings, plus the
//! message's vector from the built-in pretrained lexicon → ReLU layer → softmax) trained with candle,
//! temperature-calibrated and given an out-of-scope threshold on validation data. Inference is a hand-written
//! sparse forward pass (see `infer`).

#![forbid(unsafe_code)]

mod calibrate;
mod control;
pub mod data;
mod features;
mod infer;
mod lexicon;
mod live;
pub mod measure;
mod net;
mod persist;
pub mod service;
#[cfg(test)]
mod tests;
mod train_config;
mod wordpiece;

pub use calibrate::{EvalReport, evaluate};
pub use control::{Cancel, Progress};
pub use live::LiveModel;
pub use train_config::{Novelty, TrainConfig};

use calibrate::ThresholdItem;
use features::Featurizer;
use infer::{Member, ensemble_logits, softmax_t};
use lexicon::Lexicon;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Instant;

/// Everything that can go wrong training, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("invalid training input: {0}")]
    InvalidInput(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("io on {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("corrupt or incompatible model: {0}")]
    Corrupt(String),
    #[error("training cancelled")]
    Cancelled,
}

/// One labelled utterance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: String,
}

/// Validation-side figures of a training run (test is never looked at here).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub n_train: usize,
    pub n_labels: usize,
    pub temperature: f32,
    pub threshold: f32,
    pub val_in_scope_accuracy: f32,
    pub val_oos_recall: Option<f32>,
    pub val_ece_before: f32,
    pub val_ece_after: f32,
    pub final_train_loss: Vec<f32>,
    /// Labels the model gets wrong on too many of their own training examples (see
    /// [`IntentModel::mark_weak_labels`]): the policy lets retrieval alone decide about them.
    #[serde(default)]
    pub weak_labels: Vec<String>,
    /// Wall time; kept out of config.json so saved bytes stay deterministic.
    #[serde(skip)]
    pub train_seconds: f64,
}

/// Result of `classify`: best labels with calibrated probabilities, and the out-of-scope verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub ranking: Vec<(String, f32)>,
    pub out_of_scope: bool,
}

/// A trained classifier; cheap to share across threads (`&self` only).
pub struct IntentModel {
    featurizer: Featurizer,
    lexicon: Option<&'static Lexicon>,
    members: Vec<Member>,
    labels: Vec<String>,
    oos_label: Option<String>,
    /// Index of the explicit oos class, when the training data had one.
    oos_index: Option<usize>,
    temperature: f32,
    threshold: f32,
    cfg: TrainConfig,
    report: TrainReport,
}

impl IntentModel {
    /// Trains tokenizer/features and the network on `train`; then calibrates temperature and chooses the
    /// out-of-scope threshold on `validation` (never on test).
    pub fn train(
        train: &[Example],
        validation: &[Example],
        oos_label: Option<&str>,
        cfg: &TrainConfig,
    ) -> Result<(Self, TrainReport), IntentError> {
        let start = Instant::now();
        let (mut model, losses) = Self::fit(train, oos_label, cfg)?;
        let mut report = model.calibrate(validation);
        report.n_train = train.len();
        report.final_train_loss = losses;
        report.train_seconds = start.elapsed().as_secs_f64();
        model.report = report.clone();
        Ok((model, report))
    }

    /// For data that comes without a validation set (a FAQ, a CSV file): holds out every 5th example per label
    /// (`data::split`), trains and calibrates on that split, then trains again on *all* examples and keeps the
    /// temperature and threshold chosen on the hold-out. The hold-out so costs no training data, which matters
    /// most on small sets (10 examples per intent lose 2 of them otherwise). A model trained on a fifth more
    /// data is at least as confident on in-scope text, so the threshold errs on the side of answering.
    pub fn train_holdout(
        examples: &[Example],
        oos_label: Option<&str>,
        cfg: &TrainConfig,
    ) -> Result<(Self, TrainReport), IntentError> {
        let start = Instant::now();
        let (train, validation) = data::split(examples);
        // Two trainings: the first half of the progress calibrates, the second refits.
        let first = TrainConfig { progress: cfg.progress.stage(0.0, 0.5), ..cfg.clone() };
        let (mut calibrated, _) = Self::train(&train, &validation, oos_label, &first)?;
        calibrated.cfg.progress = cfg.progress.stage(0.5, 0.5);
        let (model, mut report) = calibrated.refit(examples)?;
        report.train_seconds = start.elapsed().as_secs_f64();
        Ok((model, report))
    }

    /// Trains a model like this one on `examples` (typically its training data plus the validation data it was
    /// calibrated on) and gives it this model's temperature and threshold.
    pub fn refit(&self, examples: &[Example]) -> Result<(Self, TrainReport), IntentError> {
        let (mut model, losses) = Self::fit(examples, self.oos_label.as_deref(), &self.cfg)?;
        model.temperature = self.temperature;
        model.threshold = self.threshold;
        model.report = TrainReport { n_train: examples.len(), final_train_loss: losses, ..self.report.clone() };
        let report = model.report.clone();
        Ok((model, report))
    }

    /// Trains features and members on `train`; temperature 1, no threshold yet. Returns each member's last loss.
    fn fit(train: &[Example], oos_label: Option<&str>, cfg: &TrainConfig) -> Result<(Self, Vec<f32>), IntentError> {
        net::check_config(cfg)?;
        // Synthetic out-of-scope negatives (spliced halves of two different intents) extend the 100 real oos
        // examples; they are only ever training data, never used for calibration.
        let synth = match oos_label {
            Some(o) if cfg.synthetic_oos > 0.0 => net::synthetic_negatives(train, o, cfg.synthetic_oos, cfg.seed),
            _ => Vec::new(),
        };
        let all: Vec<&Example> = train.iter().chain(&synth).collect();
        let labels: Vec<String> = all.iter().map(|e| e.label.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        if labels.len() < 2 {
            return Err(IntentError::InvalidInput("need at least two distinct labels".into()));
        }
        let index_of = |l: &str| labels.binary_search_by(|x| x.as_str().cmp(l)).ok();
        let oos_index = oos_label.and_then(index_of);
        let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
        let mut featurizer = Featurizer::train(&texts, cfg.wordpiece_vocab, cfg.hash_buckets, cfg.max_chars)?;
        let data: Vec<(Vec<u32>, u32)> =
            all.iter().map(|e| (featurizer.feature_ids(&e.text), index_of(&e.label).unwrap_or(0) as u32)).collect();
        featurizer.fit_idf(&data[..train.len()].iter().map(|d| &d.0).collect::<Vec<_>>());
        let lexicon = if cfg.lexicon { Some(Lexicon::shipped()?) } else { None };
        let dense: Vec<Vec<f32>> = match lexicon {
            Some(lex) => all.iter().map(|e| lex.embed(&featurizer.words_of(&e.text), cfg.lexicon_scale)).collect(),
            None => Vec::new(),
        };
        let members = net::train_members(&data, &dense, &featurizer, labels.len(), cfg)?;
        let model = IntentModel {
            featurizer,
            lexicon,
            members: members.iter().map(|m| m.0.clone()).collect(),
            labels,
            oos_label: oos_label.map(str::to_string),
            oos_index,
            temperature: 1.0,
            threshold: 0.0,
            cfg: cfg.clone(),
            report: TrainReport::default(),
        };
        Ok((model, members.iter().map(|m| m.1).collect()))
    }

    /// Fits the temperature, then the threshold, on validation; returns validation figures.
    fn calibrate(&mut self, validation: &[Example]) -> TrainReport {
        let index_of = |l: &str| self.labels.binary_search_by(|x| x.as_str().cmp(l)).ok();
        let logits: Vec<Vec<f32>> = validation.iter().map(|e| self.logits(&e.text)).collect();
        let (mut fit_z, mut fit_gold) = (Vec::new(), Vec::new());
        for (z, e) in logits.iter().zip(validation) {
            if let Some(g) = index_of(&e.label) {
                fit_z.push(z.clone());
                fit_gold.push(g);
            }
        }
        self.temperature = calibrate::fit_temperature(&fit_z, &fit_gold);
        let conf = |t: f32| -> Vec<(f32, bool)> {
            fit_z
                .iter()
                .zip(&fit_gold)
                .map(|(z, &g)| {
                    let p = softmax_t(z, t);
                    let arg = argmax(&p);
                    (p[arg], arg == g)
                })
                .collect()
        };
        let (ece_before, ece_after) = (calibrate::ece(&conf(1.0), 15), calibrate::ece(&conf(self.temperature), 15));
        let items = self.threshold_items(&logits, validation);
        self.threshold =
            calibrate::choose_threshold(&items, self.cfg.oos_weight, self.cfg.min_oos_recall, self.cfg.keep_in_scope);
        let rejected = |i: &ThresholdItem| i.oos_argmax || i.score < self.threshold;
        let n_in = items.iter().filter(|i| !i.gold_oos).count().max(1) as f32;
        let n_oos = items.iter().filter(|i| i.gold_oos).count();
        TrainReport {
            n_labels: self.labels.len(),
            temperature: self.temperature,
            threshold: self.threshold,
            val_in_scope_accuracy: items.iter().filter(|i| !i.gold_oos && i.in_correct && !rejected(i)).count() as f32
                / n_in,
            val_oos_recall: (n_oos > 0)
                .then(|| items.iter().filter(|i| i.gold_oos && rejected(i)).count() as f32 / n_oos as f32),
            val_ece_before: ece_before,
            val_ece_after: ece_after,
            ..TrainReport::default()
        }
    }

    /// Per-example inputs of the threshold search, at the current temperature.
    fn threshold_items(&self, logits: &[Vec<f32>], validation: &[Example]) -> Vec<ThresholdItem> {
        let index_of = |l: &str| self.labels.binary_search_by(|x| x.as_str().cmp(l)).ok();
        logits
            .iter()
            .zip(validation)
            .map(|(z, e)| {
                let p = softmax_t(z, self.temperature);
                let (best_in, _) = self.best_in_scope(&p);
                let score = self.in_scope_score(z, &p);
                ThresholdItem {
                    score,
                    in_correct: index_of(&e.label) == Some(best_in),
                    oos_argmax: self.oos_index == Some(argmax(&p)),
                    gold_oos: self.oos_label.as_deref() == Some(e.label.as_str()),
                }
            })
            .collect()
    }

    /// Re-chooses only the out-of-scope threshold on `validation` with another objective (see
    /// `TrainConfig::oos_weight` / `min_oos_recall`), e.g. to move the operating point without retraining.
    pub fn rechoose_threshold(&mut self, validation: &[Example], oos_weight: f32, min_oos_recall: Option<f32>) -> f32 {
        let logits: Vec<Vec<f32>> = validation.iter().map(|e| self.logits(&e.text)).collect();
        let items = self.threshold_items(&logits, validation);
        self.threshold = calibrate::choose_threshold(&items, oos_weight, min_oos_recall, self.cfg.keep_in_scope);
        self.cfg.oos_weight = oos_weight;
        self.cfg.min_oos_recall = min_oos_recall;
        self.report.threshold = self.threshold;
        self.threshold
    }

    /// How much `logits` look like something the model was trained on (higher: more in scope); the threshold
    /// is on this score. See [`Novelty`].
    pub(crate) fn in_scope_score(&self, logits: &[f32], p: &[f32]) -> f32 {
        match self.cfg.novelty {
            Novelty::Probability => self.best_in_scope(p).1,
            Novelty::LogProbability => {
                let t = self.temperature as f64;
                let t = if t.is_finite() && t > 0.0 { t } else { 1.0 };
                let (best, _) = self.best_in_scope(p);
                let Some(&top) = logits.get(best) else { return f32::MIN };
                let others: f64 = logits
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != best)
                    .map(|(_, &z)| ((z as f64 - top as f64) / t).exp())
                    .sum();
                let score = -others.ln_1p();
                if score.is_finite() { score as f32 } else { f32::MIN }
            }
        }
    }

    /// Best in-scope class and its probability (the explicit oos class, if any, is skipped).
    pub(crate) fn best_in_scope(&self, p: &[f32]) -> (usize, f32) {
        p.iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.oos_index)
            .fold((0, 0.0f32), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
    }

    /// Uncalibrated ensemble logits over `labels()`.
    pub(crate) fn logits(&self, text: &str) -> Vec<f32> {
        let dense = match self.lexicon {
            Some(lex) => lex.embed(&self.featurizer.words_of(text), self.cfg.lexicon_scale),
            None => Vec::new(),
        };
        ensemble_logits(&self.members, &self.featurizer.features(text), &dense, self.labels.len())
    }

    /// Full ranking plus the out-of-scope verdict for given logits.
    pub(crate) fn decide(&self, logits: &[f32]) -> Prediction {
        let p = softmax_t(logits, self.temperature);
        let score = self.in_scope_score(logits, &p);
        // Rejected when the explicit oos class wins or no in-scope intent is confident enough.
        let out_of_scope = self.oos_index == Some(argmax(&p)) || score < self.threshold;
        let mut ranking: Vec<(String, f32)> = self.labels.iter().cloned().zip(p).collect();
        ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Prediction { ranking, out_of_scope }
    }

    /// Top `top_k` labels with calibrated probabilities; never panics on any input.
    pub fn classify(&self, text: &str, top_k: usize) -> Prediction {
        let mut pred = self.decide(&self.logits(text));
        pred.ranking.truncate(top_k);
        pred
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Whether the model learned `label` well enough to be trusted with it: trained on it, and not weak.
    pub fn knows(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label) && !self.report.weak_labels.iter().any(|l| l == label)
    }

    /// Labels the model was trained on but does not know (see [`Self::mark_weak_labels`]).
    pub fn weak_labels(&self) -> &[String] {
        &self.report.weak_labels
    }

    /// Classifies every example back and marks as weak each of `labels` whose own examples come out on top for
    /// fewer than `min_share` of them. A retrain can crowd out a small new entry (two phrasings against an
    /// established neighbour's twenty); a weak label is then left to retrieval, which found it before the
    /// retrain, instead of letting the model pull its questions to the neighbour. Returns the weak labels.
    pub fn mark_weak_labels(&mut self, examples: &[Example], labels: &BTreeSet<&str>, min_share: f32) -> &[String] {
        let mut tally: std::collections::BTreeMap<&str, (usize, usize)> = std::collections::BTreeMap::new();
        for e in examples.iter().filter(|e| labels.contains(e.label.as_str())) {
            let top = self.classify(&e.text, 1).ranking.into_iter().next().map(|r| r.0);
            let entry = tally.entry(e.label.as_str()).or_default();
            entry.0 += (top.as_deref() == Some(e.label.as_str())) as usize;
            entry.1 += 1;
        }
        self.report.weak_labels = tally
            .into_iter()
            .filter(|(_, (right, total))| (*right as f32) < min_share * *total as f32)
            .map(|(label, _)| label.to_owned())
            .collect();
        &self.report.weak_labels
    }

    /// SHA-256 of the built-in lexicon the model reads, if it reads one.
    pub fn lexicon_digest(&self) -> Option<&str> {
        self.lexicon.map(Lexicon::digest)
    }

    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The validation report stored with the model (wall time is zero after `load`).
    pub fn report(&self) -> &TrainReport {
        &self.report
    }
}

fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}
