//! Scaling table: for 100 to 100,000 FAQ entries, the time to generate and index the knowledge base, the process
//! memory (VmRSS and peak VmHWM) with knowledge base and index held as the service holds them, and the
//! distribution of per-query search latency (p50/p95/p99/max) over the held-out messages in nl and en.
//! Each size runs in a fresh child process so memory figures do not carry over.
//!
//! `cargo bench --bench scaling -- [--sizes 100,1000,10000,100000] [--rounds 5] [--dump DIR]`
//!
//! `--dump DIR` also writes, per size, every query's hits and corrections (the held-out messages and, for sizes up
//! to the shipped base, every example of it) to `DIR/search-<entries>.txt`, to compare two versions of search.

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/measure.rs"]
mod measure;
#[path = "support/phrasings.rs"]
mod phrasings;
#[path = "support/rng.rs"]
mod rng;
#[path = "support/synthetic.rs"]
mod synthetic;

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::measure::{mib, percentile, status_kib};
use loket::knowledge::FaqIndex;

/// Per-query latencies over `rounds` passes of `queries`, after one unmeasured pass.
fn latencies(index: &FaqIndex, queries: &[String], language: &str, rounds: usize) -> Vec<Duration> {
    for query in queries {
        black_box(index.search(query, language, 5));
    }
    let mut out = Vec::with_capacity(queries.len() * rounds);
    for _ in 0..rounds {
        for query in queries {
            let started = Instant::now();
            black_box(index.search(query, language, 5));
            out.push(started.elapsed());
        }
    }
    out.sort_unstable();
    out
}

/// Writes what search returns for every query, one line each, to compare two versions.
fn dump(index: &FaqIndex, kb: &loket::knowledge::KnowledgeBase, queries: &[(&str, String)], path: &std::path::Path) {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (language, query) in queries {
        let found = index.search(query, language, 5);
        let hits: Vec<String> = found.hits.iter().map(|h| format!("{}={:.4}", kb.faqs[h.faq].id, h.score)).collect();
        let fixed: Vec<String> = found.corrections.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        let _ = writeln!(out, "{language}\t{query}\t{}\t{}", hits.join(" "), fixed.join(" "));
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Measures one size and prints one table row.
fn child(entries: usize, rounds: usize, dump_dir: Option<&std::path::Path>) {
    let manifest = phrasings::manifest_dir();
    let heldout = phrasings::load(&manifest.join("tests/data/heldout.tsv"));
    let (nl, en) = (phrasings::texts_in(&heldout, "nl"), phrasings::texts_in(&heldout, "en"));
    let shipped = synthetic::shipped(&manifest);
    let baseline = status_kib("VmRSS:");
    let started = Instant::now();
    let kb = synthetic::knowledge_base(&shipped, entries, 42);
    let generated = started.elapsed();
    let started = Instant::now();
    let index = FaqIndex::build(&kb).expect("index builds");
    let built = started.elapsed();
    let (rss, peak) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    if let Some(dir) = dump_dir {
        let mut queries: Vec<(&str, String)> = nl.iter().map(|q| ("nl", q.clone())).collect();
        queries.extend(en.iter().map(|q| ("en", q.clone())));
        if entries <= shipped.faqs.len() {
            for faq in &kb.faqs {
                for (language, translation) in &faq.translations {
                    for example in translation.examples() {
                        queries.push((language.as_str(), example.to_owned()));
                        // The same with a typo: the middle letter of its longest word left out.
                        let longest = example.split_whitespace().max_by_key(|w| w.chars().count()).unwrap_or("");
                        if longest.chars().count() >= 5 {
                            let middle = longest.chars().count() / 2;
                            let typo: String =
                                longest.chars().enumerate().filter(|&(i, _)| i != middle).map(|(_, c)| c).collect();
                            queries.push((language.as_str(), example.replacen(longest, &typo, 1)));
                        }
                    }
                }
            }
        }
        dump(&index, &kb, &queries, &dir.join(format!("search-{entries}.txt")));
    }
    let nl_latencies = latencies(&index, &nl, "nl", rounds);
    let en_latencies = latencies(&index, &en, "en", rounds);
    let row = |l: &[Duration]| {
        format!(
            "{:.3} | {:.3} | {:.3} | {:.3}",
            percentile(l, 0.5),
            percentile(l, 0.95),
            percentile(l, 0.99),
            percentile(l, 1.0)
        )
    };
    println!(
        "| {entries:>7} | {:>9} | {:>6.2} | {:>7.2} | {:>7.1} | {:>7.1} | {:>7.1} | {} | {} | {} |",
        synthetic::example_count(&kb),
        generated.as_secs_f64(),
        built.as_secs_f64(),
        mib(rss),
        mib(rss.saturating_sub(baseline)),
        mib(peak),
        row(&nl_latencies),
        row(&en_latencies),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?"),
    );
    black_box((kb, index));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut sizes = vec![100, 1_000, 10_000, 100_000];
    let mut rounds = 5;
    let mut only = None;
    let mut dump_dir: Option<std::path::PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = args.next().expect("--sizes 100,1000");
                sizes = list.split(',').map(|s| s.trim().parse().expect("--sizes takes numbers")).collect();
            }
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).expect("--rounds takes a number"),
            "--child" => only = args.next().and_then(|n| n.parse().ok()),
            "--dump" => dump_dir = Some(args.next().expect("--dump DIR").into()),
            // `cargo bench` passes --bench; criterion-style filters are not used here.
            _ => {}
        }
    }
    if let Some(entries) = only {
        child(entries, rounds, dump_dir.as_deref());
        return;
    }
    println!(
        "| entries | examples | gen s | build s | RSS MiB | KB+index MiB | peak MiB | nl search ms p50 | p95 | p99 | max | en search ms p50 | p95 | p99 | max | load 1 min |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let exe = std::env::current_exe().expect("own path");
    for entries in sizes {
        let mut command = Command::new(&exe);
        command.args(["--child", &entries.to_string(), "--rounds", &rounds.to_string()]);
        if let Some(dir) = &dump_dir {
            command.arg("--dump").arg(dir);
        }
        let status = command.status().expect("child runs");
        assert!(status.success(), "size {entries} failed: {status}");
    }
}
