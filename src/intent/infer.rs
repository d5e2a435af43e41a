//! Hand-written sparse forward pass over stored weights, used for every prediction (also during calibration).
//!
//! Inference touches only the embedding rows a message actually has (~100 of ~70k), so a plain loop beats
//! building candle tensors per query by orders of magnitude. Weights are rounded to f16 on creation, which is
//! exactly what gets saved, so a model behaves identically before `save` and after `load`.

use super::IntentError;
use super::features::{Feat, GROUPS};
use half::f16;

/// One ensemble member's weights, row-major, already f16-rounded.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub d: usize,
    pub h: usize,
    pub c: usize,
    /// Dimensions of the dense lexicon vector appended to the pooled groups (0: no lexicon).
    pub lex: usize,
    pub emb: Vec<f32>, // rows × d
    pub w1: Vec<f32>,  // (GROUPS·d + lex) × h
    pub b1: Vec<f32>,  // h
    pub w2: Vec<f32>,  // h × c
    pub b2: Vec<f32>,  // c
}

fn round_f16(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| f16::from_f32(x).to_f32()).collect()
}

impl Member {
    #[allow(clippy::too_many_arguments)]
    pub fn from_f32(
        d: usize,
        h: usize,
        c: usize,
        lex: usize,
        emb: Vec<f32>,
        w1: Vec<f32>,
        b1: Vec<f32>,
        w2: Vec<f32>,
        b2: Vec<f32>,
    ) -> Result<Self, IntentError> {
        if d == 0
            || h == 0
            || c == 0
            || !emb.len().is_multiple_of(d)
            || w1.len() != (GROUPS * d + lex) * h
            || b1.len() != h
            || w2.len() != h * c
            || b2.len() != c
        {
            return Err(IntentError::Corrupt("member weight shapes do not match".into()));
        }
        let all_finite = [&emb, &w1, &b1, &w2, &b2].iter().all(|v| v.iter().all(|x| x.is_finite()));
        if !all_finite {
            return Err(IntentError::Corrupt("non-finite weight".into()));
        }
        Ok(Self {
            d,
            h,
            c,
            lex,
            emb: round_f16(emb),
            w1: round_f16(w1),
            b1: round_f16(b1),
            w2: round_f16(w2),
            b2: round_f16(b2),
        })
    }

    pub fn rows(&self) -> usize {
        self.emb.len() / self.d
    }

    /// Adds this member's logits to `out` (length c). Ids beyond the table are skipped, never indexed;
    /// `dense` is the lexicon vector (missing or short entries count as zero).
    pub fn add_logits(&self, feats: &[Feat], dense: &[f32], out: &mut [f32]) {
        let (d, h, c) = (self.d, self.h, self.c);
        let mut pooled = vec![0.0f32; GROUPS * d + self.lex];
        pooled[GROUPS * d..].iter_mut().zip(dense).for_each(|(p, &x)| *p = x);
        for f in feats {
            let start = f.id as usize * d;
            let slot = (f.group as usize).min(GROUPS - 1) * d;
            if let Some(row) = self.emb.get(start..start + d) {
                pooled[slot..slot + d].iter_mut().zip(row).for_each(|(p, &e)| *p += f.weight * e);
            }
        }
        let mut hidden = self.b1.clone();
        for (k, &x) in pooled.iter().enumerate() {
            let row = &self.w1[k * h..(k + 1) * h];
            hidden.iter_mut().zip(row).for_each(|(a, &wt)| *a += x * wt);
        }
        for (j, &x) in hidden.iter().enumerate() {
            if x <= 0.0 {
                continue; // ReLU: inactive units contribute nothing
            }
            let row = &self.w2[j * c..(j + 1) * c];
            out.iter_mut().zip(row).for_each(|(a, &wt)| *a += x * wt);
        }
        out.iter_mut().zip(&self.b2).for_each(|(a, &b)| *a += b);
    }
}

/// Mean of member logits: averaging logits (not probabilities) keeps one temperature meaningful.
pub(crate) fn ensemble_logits(members: &[Member], feats: &[Feat], dense: &[f32], c: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; c];
    for m in members {
        m.add_logits(feats, dense, &mut out);
    }
    if !members.is_empty() {
        let inv = 1.0 / members.len() as f32;
        out.iter_mut().for_each(|x| *x *= inv);
    }
    out
}

/// Softmax of `logits / temperature`, numerically stable.
pub(crate) fn softmax_t(logits: &[f32], temperature: f32) -> Vec<f32> {
    let t = if temperature.is_finite() && temperature > 0.0 { temperature } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<f32> = logits.iter().map(|&z| ((z - max) / t).exp()).collect();
    let s: f32 = p.iter().sum();
    if s > 0.0 && s.is_finite() {
        p.iter_mut().for_each(|x| *x /= s);
    }
    p
}
