//! Training with candle: fastText-style members (EmbeddingBag of group means → ReLU layer → logits), the ensemble.
//!
//! Everything random (init, shuffling, feature dropout, hidden dropout) comes from one seeded ChaCha stream,
//! never from candle's unseeded CPU RNG, so a seed fixes the trained bytes.

use super::features::{Featurizer, GROUPS, bag_weights};
use super::infer::Member;
use super::{Example, IntentError, TrainConfig};
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// Uniform float in [0, 1) from the top 24 bits: exact in f32, identical on every platform.
fn unit(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

fn uniform_vec(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| (unit(rng) * 2.0 - 1.0) * bound).collect()
}

fn shuffle<T>(rng: &mut ChaCha8Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The trainable tensors of one member.
struct Params {
    emb: Var,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

impl Params {
    fn init(
        rng: &mut ChaCha8Rng,
        rows: usize,
        d: usize,
        h: usize,
        c: usize,
        lex: usize,
        dev: &Device,
    ) -> candle_core::Result<Self> {
        let var = |v: Vec<f32>, shape: &[usize]| Var::from_tensor(&Tensor::from_vec(v, shape, dev)?);
        // Small embedding init as in fastText; Glorot-uniform for the dense layers.
        let emb = var(uniform_vec(rng, rows * d, 1.0 / d as f32), &[rows, d])?;
        let gd = GROUPS * d + lex;
        let w1 = var(uniform_vec(rng, gd * h, (6.0 / (gd + h) as f32).sqrt()), &[gd, h])?;
        let b1 = var(vec![0.0; h], &[h])?;
        let w2 = var(uniform_vec(rng, h * c, (6.0 / (h + c) as f32).sqrt()), &[h, c])?;
        let b2 = var(vec![0.0; c], &[c])?;
        Ok(Self { emb, w1, b1, w2, b2 })
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.emb.clone(), self.w1.clone(), self.b1.clone(), self.w2.clone(), self.b2.clone()]
    }
}

/// One mini-batch in EmbeddingBag form: flat ids/weights and the row (bag) each belongs to.
struct Batch {
    ids: Vec<u32>,
    wts: Vec<f32>,
    bag: Vec<u32>,
    rows: usize,
}

fn make_batch(rng: &mut ChaCha8Rng, fz: &Featurizer, examples: &[&Vec<u32>], feat_drop: f32) -> Batch {
    let mut b = Batch { ids: Vec::new(), wts: Vec::new(), bag: Vec::new(), rows: examples.len() };
    for (row, raw) in examples.iter().enumerate() {
        // Feature dropout: the bag must still predict with a random part of its n-grams missing, which
        // stops the net from leaning on one rare n-gram; keep at least one feature.
        let mut kept: Vec<u32> = raw.iter().copied().filter(|_| unit(rng) >= feat_drop).collect();
        if kept.is_empty() && !raw.is_empty() {
            kept.push(raw[(rng.next_u32() as usize) % raw.len()]);
        }
        for f in bag_weights(kept, fz) {
            b.ids.push(f.id);
            b.wts.push(f.weight);
            b.bag.push((row * GROUPS + f.group as usize) as u32);
        }
    }
    b
}

/// Trains one member. `data` holds raw feature ids and class index per example; `dense` the lexicon vector of
/// each example (empty: no lexicon), which is appended to the pooled groups.
pub(crate) fn train_member(
    data: &[(Vec<u32>, u32)],
    dense: &[Vec<f32>],
    fz: &Featurizer,
    n_classes: usize,
    cfg: &TrainConfig,
    seed: u64,
    steps: &Steps<'_>,
) -> Result<(Member, f32), IntentError> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (d, h, c, rows) = (cfg.embed_dim, cfg.hidden_dim, n_classes, fz.n_rows());
    let lex = dense.first().map_or(0, Vec::len);
    if dense.iter().any(|v| v.len() != lex) || (lex > 0 && dense.len() != data.len()) {
        return Err(IntentError::InvalidInput("lexicon vectors do not match the examples".into()));
    }
    let p = Params::init(&mut rng, rows, d, h, c, lex, &dev)?;
    let mut opt =
        AdamW::new(p.vars(), ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() })?;
    let bs = cfg.batch_size.max(1);
    let (steps_per_epoch, epochs) = schedule(data.len(), cfg);
    let total_steps = (epochs * steps_per_epoch) as f64;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let (eps, keep) = (cfg.label_smoothing as f64, 1.0 - cfg.dropout);
    let mut step = 0usize;
    let mut last_loss = f32::NAN;
    for _epoch in 0..epochs {
        shuffle(&mut rng, &mut order);
        let mut epoch_loss = 0.0f64;
        for chunk in order.chunks(bs) {
            if cfg.cancel.is_cancelled() {
                return Err(IntentError::Cancelled);
            }
            steps.step();
            // Linear decay to zero: a cheap schedule that reliably beats a constant rate for bag models.
            opt.set_learning_rate(cfg.lr * (1.0 - step as f64 / total_steps));
            step += 1;
            let exs: Vec<&Vec<u32>> = chunk.iter().map(|&i| &data[i].0).collect();
            let batch = make_batch(&mut rng, fz, &exs, cfg.feature_dropout);
            let n = batch.ids.len();
            let ids = Tensor::from_vec(batch.ids, n, &dev)?;
            let wts = Tensor::from_vec(batch.wts, (n, 1), &dev)?;
            let bag = Tensor::from_vec(batch.bag, n, &dev)?;
            let gathered = p.emb.as_tensor().index_select(&ids, 0)?.broadcast_mul(&wts)?;
            // One pooled slot per (row, group); reshaping concatenates the group means of a row.
            let mut pooled = Tensor::zeros((batch.rows * GROUPS, d), DType::F32, &dev)?
                .index_add(&bag, &gathered, 0)?
                .reshape((batch.rows, GROUPS * d))?;
            if lex > 0 {
                let rows: Vec<f32> = chunk.iter().flat_map(|&i| dense[i].iter().copied()).collect();
                pooled = Tensor::cat(&[&pooled, &Tensor::from_vec(rows, (batch.rows, lex), &dev)?], 1)?;
            }
            let mut hidden = pooled.matmul(p.w1.as_tensor())?.broadcast_add(p.b1.as_tensor())?.relu()?;
            if cfg.dropout > 0.0 {
                // Inverted dropout with a seeded mask (candle's own dropout draws from an unseeded RNG).
                let mask: Vec<f32> =
                    (0..batch.rows * h).map(|_| if unit(&mut rng) < keep { 1.0 / keep } else { 0.0 }).collect();
                hidden = hidden.mul(&Tensor::from_vec(mask, (batch.rows, h), &dev)?)?;
            }
            let logits = hidden.matmul(p.w2.as_tensor())?.broadcast_add(p.b2.as_tensor())?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            // Label smoothing as an explicit target distribution: keeps confidences saner for the OOS threshold.
            let off = (eps / c as f64) as f32;
            let mut target = vec![off; batch.rows * c];
            for (r, &i) in chunk.iter().enumerate() {
                target[r * c + data[i].1 as usize] += (1.0 - eps) as f32;
            }
            let target = Tensor::from_vec(target, (batch.rows, c), &dev)?;
            let loss = (logp.mul(&target)?.sum_all()? * (-1.0 / batch.rows as f64))?;
            opt.backward_step(&loss)?;
            epoch_loss += loss.to_scalar::<f32>()? as f64 * batch.rows as f64;
        }
        last_loss = (epoch_loss / data.len().max(1) as f64) as f32;
    }
    let flat = |v: &Var| -> candle_core::Result<Vec<f32>> { v.as_tensor().flatten_all()?.to_vec1::<f32>() };
    let member = Member::from_f32(d, h, c, lex, flat(&p.emb)?, flat(&p.w1)?, flat(&p.b1)?, flat(&p.w2)?, flat(&p.b2)?)?;
    Ok((member, last_loss))
}

/// Out-of-scope negatives made by splicing the start of one intent's message onto the end of another's.
/// Such chimeras share vocabulary with real intents but belong to none, like most real out-of-scope queries.
pub(crate) fn synthetic_negatives(train: &[Example], oos: &str, fraction: f32, seed: u64) -> Vec<Example> {
    let pool: Vec<&Example> = train.iter().filter(|e| e.label != oos).collect();
    let n = (train.len() as f32 * fraction.clamp(0.0, 1.0)) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0005);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n * 4 {
        if out.len() >= n || pool.len() < 2 {
            break;
        }
        let a = pool[(rng.next_u64() % pool.len() as u64) as usize];
        let b = pool[(rng.next_u64() % pool.len() as u64) as usize];
        if a.label == b.label {
            continue;
        }
        let (wa, wb): (Vec<&str>, Vec<&str>) =
            (a.text.split_whitespace().collect(), b.text.split_whitespace().collect());
        if wa.len() < 2 || wb.len() < 2 {
            continue;
        }
        // Cut both near the middle: a chimera that is mostly one message would teach "in-scope is oos".
        let (cut_a, cut_b) = (wa.len().div_ceil(2), wb.len() / 2);
        let text = wa[..cut_a].iter().chain(&wb[cut_b..]).copied().collect::<Vec<_>>().join(" ");
        out.push(Example { text, label: oos.to_string() });
    }
    out
}

pub(crate) fn check_config(cfg: &TrainConfig) -> Result<(), IntentError> {
    let bad = cfg.embed_dim == 0
        || cfg.hidden_dim == 0
        || cfg.hash_buckets < 64
        || cfg.members == 0
        || cfg.batch_size == 0
        || !cfg.lr.is_finite()
        || cfg.lr <= 0.0
        || !(0.0..1.0).contains(&cfg.dropout)
        || !(0.0..1.0).contains(&cfg.feature_dropout)
        || !(0.0..1.0).contains(&cfg.label_smoothing);
    if bad {
        return Err(IntentError::InvalidInput(format!("bad TrainConfig: {cfg:?}")));
    }
    Ok(())
}

/// Trains the members, two at a time. With CANDLE_NUM_THREADS=1 (see .cargo/config.toml: candle's spinning
/// thread pool is slower than one thread for tensors this small) each member fills one core, so two side by
/// side nearly halve wall time; each member's own RNG keeps the result independent of scheduling.
/// Optimiser steps per epoch and epochs of a member trained on `n` examples.
fn schedule(n: usize, cfg: &TrainConfig) -> (usize, usize) {
    let steps_per_epoch = n.div_ceil(cfg.batch_size.max(1)).max(1);
    // Small FAQ sets would otherwise get only a handful of optimiser steps.
    let epochs = cfg.epochs.max(cfg.min_steps.div_ceil(steps_per_epoch)).max(1);
    (steps_per_epoch, epochs)
}

/// Counts the optimiser steps of the members trained together and reports the share done to
/// `TrainConfig::progress`.
pub(crate) struct Steps<'a> {
    done: std::sync::atomic::AtomicUsize,
    total: usize,
    progress: &'a super::Progress,
}

impl Steps<'_> {
    fn step(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.progress.report(done as f64 / self.total.max(1) as f64);
    }
}

pub(crate) fn train_members(
    data: &[(Vec<u32>, u32)],
    dense: &[Vec<f32>],
    fz: &Featurizer,
    n_classes: usize,
    cfg: &TrainConfig,
) -> Result<Vec<(Member, f32)>, IntentError> {
    let seeds: Vec<u64> = (0..cfg.members as u64).map(|m| cfg.seed ^ m.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 2);
    let (steps_per_epoch, epochs) = schedule(data.len(), cfg);
    let steps =
        Steps { done: Default::default(), total: seeds.len() * epochs * steps_per_epoch, progress: &cfg.progress };
    let steps = &steps;
    let mut out = Vec::with_capacity(seeds.len());
    for group in seeds.chunks(threads) {
        let results: Vec<Result<(Member, f32), IntentError>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|&seed| s.spawn(move || train_member(data, dense, fz, n_classes, cfg, seed, steps)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(IntentError::InvalidInput("training thread panicked".into()))))
                .collect()
        });
        for r in results {
            out.push(r?);
        }
    }
    Ok(out)
}
