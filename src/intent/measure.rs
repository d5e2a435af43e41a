//! Measuring a classifier on a labelled benchmark the way `loket eval` reports it: train on the training split,
//! calibrate and choose the threshold on validation, then score the test split, the latency of single queries
//! and the size on disk.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use super::{EvalReport, Example, IntentError, IntentModel, TrainConfig, TrainReport, evaluate};

pub struct Measurement {
    pub train: TrainReport,
    pub test: EvalReport,
    /// Single-query `classify` latency over the test texts, microseconds.
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    /// The same for 20-word messages.
    pub latency20_p50_us: f64,
    pub latency20_p99_us: f64,
    pub size_bytes: u64,
}

/// Median and 99th percentile (nearest rank); zero without samples.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| crate::quantile::nearest_rank(&samples, q).unwrap_or(0.0);
    (at(0.5), at(0.99))
}

fn latencies<'a>(model: &IntentModel, texts: impl Iterator<Item = &'a str>) -> (f64, f64) {
    let samples = texts
        .map(|text| {
            let started = Instant::now();
            std::hint::black_box(model.classify(std::hint::black_box(text), 5));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(samples)
}

/// Trains on `train`, calibrates on `validation` (without one: on a hold-out of `train`, then refits on all of
/// it, see [`IntentModel::train_holdout`]), measures on `test`; the model is saved in `scratch`.
pub fn measure(
    train: &[Example],
    validation: Option<&[Example]>,
    test: &[Example],
    oos_label: Option<&str>,
    config: &TrainConfig,
    scratch: &Path,
) -> Result<Measurement, IntentError> {
    let (model, report) = match validation {
        Some(validation) => IntentModel::train(train, validation, oos_label, config)?,
        None => IntentModel::train_holdout(train, oos_label, config)?,
    };
    let scored = evaluate(&model, test, oos_label);
    let (latency_p50_us, latency_p99_us) = latencies(&model, test.iter().map(|e| e.text.as_str()));
    let words: Vec<&str> = test.iter().flat_map(|e| e.text.split_whitespace()).collect();
    let twenty: Vec<String> = words.chunks_exact(20).map(|w| w.join(" ")).collect();
    let (latency20_p50_us, latency20_p99_us) = latencies(&model, twenty.iter().map(String::as_str));
    model.save(scratch)?;
    let size_bytes = std::fs::read_dir(scratch)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    Ok(Measurement {
        train: report,
        test: scored,
        latency_p50_us,
        latency_p99_us,
        latency20_p50_us,
        latency20_p99_us,
        size_bytes,
    })
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: Option<f32>| v.map_or("n/a".to_string(), |v| format!("{:.2}%", 100.0 * v));
        let t = &self.test;
        writeln!(f, "training examples:        {} ({} labels)", self.train.n_train, self.train.n_labels)?;
        writeln!(f, "training wall time:       {:.1} s", self.train.train_seconds)?;
        writeln!(
            f,
            "threshold (validation):   {:.3}, temperature {:.3}",
            self.train.threshold, self.train.temperature
        )?;
        writeln!(
            f,
            "overall accuracy:         {:.2}% (in-scope right or out-of-scope rejected)",
            100.0 * t.overall_accuracy
        )?;
        writeln!(f, "in-scope accuracy:        {:.2}%", 100.0 * t.in_scope_accuracy)?;
        writeln!(f, "  without rejection:      {:.2}%", 100.0 * t.in_scope_accuracy_no_reject)?;
        writeln!(f, "out-of-scope recall:      {}", pct(t.oos_recall))?;
        writeln!(f, "out-of-scope precision:   {}", pct(t.oos_precision))?;
        writeln!(f, "macro-F1:                 {:.4}", t.macro_f1)?;
        writeln!(f, "ECE (15 bins):            {:.4} before, {:.4} after temperature", t.ece_before, t.ece_after)?;
        writeln!(f, "classify latency:         p50 {:.0} µs, p99 {:.0} µs", self.latency_p50_us, self.latency_p99_us)?;
        writeln!(
            f,
            "  20-word messages:       p50 {:.0} µs, p99 {:.0} µs",
            self.latency20_p50_us, self.latency20_p99_us
        )?;
        write!(f, "model size on disk:       {:.2} MB", self.size_bytes as f64 / 1e6)
    }
}
