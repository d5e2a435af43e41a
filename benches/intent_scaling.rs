//! Intent-model curves (issue 7): for synthetic knowledge bases of about 1,000 to 50,000 training examples, the
//! time `loket train` takes (`intent::service::train_for`: FAQ entries plus the conversational intents, the
//! service's own split and preset), the process memory while training (peak VmHWM) and after loading the saved
//! model in a fresh process, and the per-message `classify` latency over the held-out messages, against the
//! number of intents. Each size trains in a child process and loads in another, so memory does not carry over.
//!
//! `cargo bench --bench intent_scaling -- [--examples 1000,10000,50000] [--epochs 30] [--rounds 5]`
//!
//! Not run by `cargo test`; 50,000 examples take several minutes on two cores.

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/measure.rs"]
mod measure;
#[allow(dead_code)]
#[path = "support/phrasings.rs"]
mod phrasings;
#[path = "support/rng.rs"]
mod rng;
#[allow(dead_code)]
#[path = "support/synthetic.rs"]
mod synthetic;

use std::collections::HashSet;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::measure::{mib, percentile, status_kib};
use loket::intent::IntentModel;
use loket::knowledge::KnowledgeBase;

/// Examples per synthetic entry (11 per language).
const EXAMPLES_PER_ENTRY: usize = 22;

/// A synthetic base of about `examples` examples in which no example text (normalised) belongs to two entries,
/// as training requires; entries left with fewer than two examples in a language are dropped.
fn knowledge_base(manifest: &Path, examples: usize) -> KnowledgeBase {
    let shipped = synthetic::shipped(manifest);
    let kb = synthetic::knowledge_base(&shipped, (examples / EXAMPLES_PER_ENTRY).max(2), 42);
    let mut taken = HashSet::new();
    let mut faqs = Vec::new();
    for mut faq in kb.faqs {
        for translation in faq.translations.values_mut() {
            translation.phrasings.retain(|p| !taken.contains(&loket::text::normalize(p)));
        }
        let question_free = faq.translations.values().all(|t| !taken.contains(&loket::text::normalize(&t.question)));
        if !question_free || faq.translations.values().any(|t| t.phrasings.is_empty()) {
            continue;
        }
        for translation in faq.translations.values() {
            taken.extend(translation.examples().map(loket::text::normalize));
        }
        faqs.push(faq);
    }
    KnowledgeBase::new(faqs, kb.locales)
}

/// Trains one size, saves the model to `dir` and prints the training half of the row.
fn train(examples: usize, epochs: usize, dir: &Path) {
    let manifest = phrasings::manifest_dir();
    let kb = knowledge_base(&manifest, examples);
    let languages = ["nl".to_owned(), "en".to_owned()];
    let conversational = manifest.join("knowledge-base/intents/conversational.yaml");
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let training = loket::intent::service::train_for(
        &kb,
        &conversational,
        &languages,
        7,
        epochs,
        Default::default(),
        Default::default(),
    )
    .expect("trains");
    let took = started.elapsed();
    training.model.save(dir).expect("model saves");
    print!(
        "| {:>6} | {:>6} | {:>6} | {:>8.1} | {:>7.1} | {:>7.1} | ",
        training.train_examples,
        training.report.n_labels,
        kb.faqs.len(),
        took.as_secs_f64(),
        mib(before),
        mib(status_kib("VmHWM:")),
    );
    std::io::Write::flush(&mut std::io::stdout()).expect("stdout");
}

/// Loads the model from `dir` in a fresh process and prints the serving half of the row.
fn serve(dir: &Path, rounds: usize) {
    let manifest = phrasings::manifest_dir();
    let heldout = phrasings::load(&manifest.join("tests/data/heldout.tsv"));
    let texts: Vec<String> = heldout.into_iter().map(|p| p.text).collect();
    let before = status_kib("VmRSS:");
    let model = IntentModel::load(dir).expect("model loads");
    let loaded = status_kib("VmRSS:");
    for text in &texts {
        black_box(model.classify(text, 5));
    }
    let mut latencies = Vec::with_capacity(texts.len() * rounds);
    for _ in 0..rounds {
        for text in &texts {
            let started = Instant::now();
            black_box(model.classify(text, 5));
            latencies.push(started.elapsed());
        }
    }
    latencies.sort_unstable();
    let size: u64 = std::fs::read_dir(dir)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    println!(
        "{:>6.1} | {:>7.1} | {:.3} | {:.3} | {:.3} | {} |",
        size as f64 / 1e6,
        mib(loaded.saturating_sub(before)),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?"),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut sizes = vec![1_000, 10_000, 50_000];
    let (mut epochs, mut rounds) = (loket::intent::service::EPOCHS, 5);
    let (mut train_child, mut serve_child): (Option<usize>, Option<PathBuf>) = (None, None);
    let mut dir: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--examples" => {
                let list = args.next().expect("--examples 1000,10000");
                sizes = list.split(',').map(|s| s.trim().parse().expect("--examples takes numbers")).collect();
            }
            "--epochs" => epochs = args.next().and_then(|n| n.parse().ok()).expect("--epochs takes a number"),
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).expect("--rounds takes a number"),
            "--train-child" => train_child = args.next().and_then(|n| n.parse().ok()),
            "--serve-child" => serve_child = args.next().map(PathBuf::from),
            "--dir" => dir = args.next().map(PathBuf::from),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    if let (Some(examples), Some(dir)) = (train_child, &dir) {
        return train(examples, epochs, dir);
    }
    if let Some(dir) = serve_child {
        return serve(&dir, rounds);
    }
    println!(
        "| examples | intents | entries | train s | RSS before MiB | peak RSS training MiB | model MB | RSS of loaded model MiB | classify ms p50 | p99 | max | load 1 min |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let exe = std::env::current_exe().expect("own path");
    for examples in sizes {
        let dir = std::env::temp_dir().join(format!("loket-intent-scaling-{}-{examples}", std::process::id()));
        let status = Command::new(&exe)
            .args(["--train-child", &examples.to_string(), "--epochs", &epochs.to_string()])
            .arg("--dir")
            .arg(&dir)
            .status()
            .expect("child runs");
        assert!(status.success(), "training {examples} failed: {status}");
        let status = Command::new(&exe)
            .args(["--rounds", &rounds.to_string()])
            .arg("--serve-child")
            .arg(&dir)
            .status()
            .expect("child runs");
        assert!(status.success(), "serving {examples} failed: {status}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
