//! Calibration and scoring: temperature fit, out-of-scope threshold choice, ECE, and the `evaluate` report.
//!
//! All choices here are made on validation data only; `evaluate` merely measures.

use super::infer::softmax_t;
use super::{Example, IntentModel};
use serde::{Deserialize, Serialize};

/// Mean negative log-likelihood of gold classes at inverse temperature `beta`.
fn nll(logits: &[Vec<f32>], gold: &[usize], beta: f64) -> f64 {
    let mut total = 0.0f64;
    for (z, &g) in logits.iter().zip(gold) {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse: f64 = z.iter().map(|&v| (beta * (v as f64 - max)).exp()).sum::<f64>().ln();
        total += lse - beta * (z[g] as f64 - max);
    }
    total / logits.len().max(1) as f64
}

/// Temperature minimising validation NLL. NLL is convex in beta = 1/T, so a golden-section search on a bracket
/// is exact enough and needs ~60 passes instead of a fine grid.
pub(crate) fn fit_temperature(logits: &[Vec<f32>], gold: &[usize]) -> f32 {
    if logits.is_empty() {
        return 1.0;
    }
    let (mut a, mut b) = (0.02f64, 20.0f64);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let m1 = b - phi * (b - a);
        let m2 = a + phi * (b - a);
        if nll(logits, gold, m1) <= nll(logits, gold, m2) {
            b = m2;
        } else {
            a = m1;
        }
    }
    (2.0 / (a + b)) as f32
}

/// Expected calibration error with equal-width confidence bins.
pub(crate) fn ece(conf_correct: &[(f32, bool)], bins: usize) -> f32 {
    let mut sum_conf = vec![0.0f64; bins];
    let mut sum_acc = vec![0.0f64; bins];
    let mut count = vec![0usize; bins];
    for &(c, ok) in conf_correct {
        let b = ((c.clamp(0.0, 1.0) * bins as f32) as usize).min(bins - 1);
        sum_conf[b] += c as f64;
        sum_acc[b] += ok as u8 as f64;
        count[b] += 1;
    }
    let n = conf_correct.len().max(1) as f64;
    (0..bins).filter(|&b| count[b] > 0).map(|b| (sum_conf[b] - sum_acc[b]).abs() / n).sum::<f64>() as f32
}

/// One validation item for the threshold search: best in-scope probability, whether the in-scope argmax is
/// right, whether the explicit oos class wins, and whether the gold label is out-of-scope.
pub(crate) struct ThresholdItem {
    pub score: f32,
    pub in_correct: bool,
    pub oos_argmax: bool,
    pub gold_oos: bool,
}

/// Picks the out-of-scope threshold on validation.
///
/// With `min_oos_recall = Some(r)`: the highest-in-scope-accuracy threshold whose validation oos recall is at
/// least `r` (the product requirement stated directly); if none reaches `r`, the one with the best recall.
/// Otherwise: maximise in-scope accuracy + `oos_weight` × oos recall. Both are rates, so the 30:1 imbalance of
/// CLINC150 validation does not let the in-scope side drown out-of-scope detection.
///
/// Without out-of-scope examples (the normal case for a FAQ: nobody labels what it is *not* about) the threshold
/// keeps `keep_in_scope` of the held-out in-scope examples: see [`keep_share_threshold`].
/// Returns 0 (never reject by score) when validation has no in-scope examples.
pub(crate) fn choose_threshold(
    items: &[ThresholdItem],
    oos_weight: f32,
    min_oos_recall: Option<f32>,
    keep_in_scope: f32,
) -> f32 {
    let n_in = items.iter().filter(|i| !i.gold_oos).count();
    let n_oos = items.len() - n_in;
    if n_in == 0 {
        return 0.0;
    }
    if n_oos == 0 {
        let scores: Vec<f32> = items.iter().map(|i| i.score).collect();
        return keep_share_threshold(&scores, keep_in_scope);
    }
    let mut cands: Vec<f32> = items.iter().map(|i| i.score).filter(|s| s.is_finite()).collect();
    cands.sort_by(f32::total_cmp);
    // Room below the lowest score (reject none by score) and above the highest (reject all).
    let (low, high) = (cands.first().copied().unwrap_or(0.0), cands.last().copied().unwrap_or(1.0));
    cands.insert(0, low.min(0.0) - 1.0);
    cands.push(high.max(1.0) + 1.0);
    cands.dedup();
    let rates = |t: f32| {
        let (mut acc, mut rec) = (0usize, 0usize);
        for i in items {
            let rejected = i.oos_argmax || i.score < t;
            if i.gold_oos {
                rec += rejected as usize;
            } else {
                acc += (!rejected && i.in_correct) as usize;
            }
        }
        (acc as f32 / n_in as f32, rec as f32 / n_oos as f32)
    };
    let objective = |(acc, rec): (f32, f32)| match min_oos_recall {
        // Lexicographic: meeting the recall floor first, then accuracy (recall breaks ties below the floor).
        Some(r) if rec + 1e-6 >= r => 2.0 + acc,
        Some(_) => rec,
        None => acc + oos_weight * rec,
    };
    // Midpoints between neighbouring scores generalise better than thresholds sitting on a validation score.
    let mut best = (f32::NEG_INFINITY, 0.0f32);
    for w in cands.windows(2) {
        let t = 0.5 * (w[0] + w[1]);
        let v = objective(rates(t));
        if v > best.0 {
            best = (v, t);
        }
    }
    best.1
}

/// The threshold that keeps the share `keep` of held-out in-scope `scores` (1.0 keeps all, 0.95 rejects the
/// least confident 5%): the midpoint between the last score rejected and the first kept. The rule needs only
/// in-scope data, so it transfers to any data set, unlike a threshold tuned to some set's out-of-scope examples.
pub(crate) fn keep_share_threshold(scores: &[f32], keep: f32) -> f32 {
    let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let rejected = ((1.0 - keep.clamp(0.0, 1.0)) * sorted.len() as f32).round() as usize;
    if sorted.is_empty() {
        return 0.0;
    }
    if rejected == 0 {
        // Below every score (which need not be a probability: see `Novelty`), so nothing is rejected.
        return sorted[0] - 1.0;
    }
    let rejected = rejected.min(sorted.len());
    match sorted.get(rejected) {
        Some(&kept) => 0.5 * (sorted[rejected - 1] + kept),
        None => sorted[rejected - 1] + f32::EPSILON,
    }
}

/// Test-set figures; oos fields are `None` when no oos label is in play.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    pub n: usize,
    /// Right over all test rows: an in-scope row answered with its intent, an out-of-scope row rejected. The
    /// figure a customer feels, and the one the team compares across data sets.
    #[serde(default)]
    pub overall_accuracy: f32,
    pub in_scope_accuracy: f32,
    /// In-scope accuracy if nothing were ever rejected (best in-scope class only): the classifier's own ceiling.
    pub in_scope_accuracy_no_reject: f32,
    pub oos_recall: Option<f32>,
    pub oos_precision: Option<f32>,
    pub macro_f1: f32,
    /// ECE (15 bins) of the argmax over all classes with temperature 1.
    pub ece_before: f32,
    /// Same with the validation-fitted temperature.
    pub ece_after: f32,
}

/// Scores `model` on `test`. In-scope queries rejected as oos count as wrong.
pub fn evaluate(model: &IntentModel, test: &[Example], oos_label: Option<&str>) -> EvalReport {
    let labels = model.labels();
    let mut preds: Vec<(String, String)> = Vec::with_capacity(test.len());
    let mut raw_correct = 0usize;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for ex in test {
        let logits = model.logits(&ex.text);
        let decided = model.decide(&logits);
        let best_in = model.best_in_scope(&softmax_t(&logits, 1.0)).0;
        raw_correct += labels.get(best_in).is_some_and(|l| *l == ex.label) as usize;
        let predicted = if decided.out_of_scope {
            oos_label.map(str::to_string).unwrap_or_else(|| "<oos>".into())
        } else {
            decided.ranking.first().map(|r| r.0.clone()).unwrap_or_default()
        };
        for (t, store) in [(1.0f32, &mut before), (model.temperature(), &mut after)] {
            let p = softmax_t(&logits, t);
            let (arg, conf) = p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            let ok = labels.get(arg).is_some_and(|l| *l == ex.label);
            store.push((conf, ok));
        }
        preds.push((ex.label.clone(), predicted));
    }
    let is_oos = |l: &str| oos_label == Some(l);
    let in_items: Vec<_> = preds.iter().filter(|(g, _)| !is_oos(g)).collect();
    let in_acc = in_items.iter().filter(|(g, p)| g == p).count() as f32 / in_items.len().max(1) as f32;
    let (oos_recall, oos_precision) = match oos_label {
        Some(o) => {
            let gold = preds.iter().filter(|(g, _)| g == o).count();
            let pred = preds.iter().filter(|(_, p)| p == o).count();
            let both = preds.iter().filter(|(g, p)| g == o && p == o).count();
            (Some(both as f32 / gold.max(1) as f32), Some(both as f32 / pred.max(1) as f32))
        }
        None => (None, None),
    };
    EvalReport {
        n: test.len(),
        overall_accuracy: preds.iter().filter(|(g, p)| g == p).count() as f32 / preds.len().max(1) as f32,
        in_scope_accuracy: in_acc,
        in_scope_accuracy_no_reject: raw_correct as f32 / in_items.len().max(1) as f32,
        oos_recall,
        oos_precision,
        macro_f1: macro_f1(&preds),
        ece_before: ece(&before, 15),
        ece_after: ece(&after, 15),
    }
}

/// Macro-F1 over every label seen as gold (a label only ever predicted still costs precision elsewhere).
fn macro_f1(preds: &[(String, String)]) -> f32 {
    use std::collections::BTreeMap;
    let mut tp: BTreeMap<&str, usize> = BTreeMap::new();
    let mut gold: BTreeMap<&str, usize> = BTreeMap::new();
    let mut pred: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, p) in preds {
        *gold.entry(g).or_default() += 1;
        *pred.entry(p).or_default() += 1;
        if g == p {
            *tp.entry(g).or_default() += 1;
        }
    }
    let f1s: Vec<f32> = gold
        .iter()
        .map(|(l, &ng)| {
            let t = *tp.get(l).unwrap_or(&0) as f32;
            let np = *pred.get(l).unwrap_or(&0) as f32;
            if t == 0.0 { 0.0 } else { 2.0 * t / (ng as f32 + np) }
        })
        .collect();
    f1s.iter().sum::<f32>() / f1s.len().max(1) as f32
}
