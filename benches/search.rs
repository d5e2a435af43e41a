//! Criterion: FAQ search latency at 100 to 100,000 entries (synthetic, see `support/synthetic.rs`) with the
//! held-out Dutch messages as queries; the whole decision policy on the shipped knowledge base, with search alone
//! and with the shipped intent model; and the model's `classify`.
//!
//! `cargo bench --bench search` (build time and memory per size: `cargo bench --bench scaling`).

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/phrasings.rs"]
mod phrasings;
#[path = "support/rng.rs"]
mod rng;
#[path = "support/synthetic.rs"]
mod synthetic;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loket::config::Config;
use loket::conversation::{Channel, DialogueMemory, Tier};
use loket::dialogue::{Policy, TurnInput};
use loket::intent::LiveModel;
use loket::knowledge::{FaqIndex, Knowledge};

const SIZES: [usize; 4] = [100, 1_000, 10_000, 100_000];

fn faq_search(c: &mut Criterion) {
    let manifest = phrasings::manifest_dir();
    let queries = phrasings::texts_in(&phrasings::load(&manifest.join("tests/data/heldout.tsv")), "nl");
    let shipped = synthetic::shipped(&manifest);
    let mut group = c.benchmark_group("faq_search_nl");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    for entries in SIZES {
        let kb = synthetic::knowledge_base(&shipped, entries, 42);
        let examples = synthetic::example_count(&kb);
        let index = FaqIndex::build(&kb).expect("index builds");
        drop(kb);
        eprintln!("faq_search_nl/{entries}: {examples} examples indexed");
        // Each iteration is the next held-out message, so the figure is the mean over the whole mix.
        let mut next = 0;
        group.bench_with_input(BenchmarkId::from_parameter(entries), &index, |b, index| {
            b.iter(|| {
                next = (next + 1) % queries.len();
                black_box(index.search(&queries[next], "nl", 5))
            })
        });
    }
    group.finish();
}

fn policy(c: &mut Criterion) {
    let manifest = phrasings::manifest_dir();
    let messages = phrasings::load(&manifest.join("tests/data/heldout.tsv"));
    let config = Config::default();
    let knowledge =
        Knowledge::load(&manifest.join("knowledge-base"), &config.languages.supported).expect("knowledge loads");
    let policy = Policy::new(config.policy.clone(), config.channels.clone());
    let memory = DialogueMemory::default();
    let mut group = c.benchmark_group("policy");
    group.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));

    // Search alone, then with the shipped intent model: what `serve` does for every message.
    let model = LiveModel::open(&manifest.join("models/intent")).current().expect("the shipped model loads");
    for (name, model) in [("decide_heldout_mix", None), ("decide_heldout_mix_with_model", Some(&*model))] {
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % messages.len();
                let message = &messages[next];
                let input = TurnInput {
                    text: &message.text,
                    language: &message.language,
                    tier: Tier::Standard,
                    channel: Channel::Chat,
                    memory: &memory,
                };
                black_box(policy.decide(&knowledge, model, &input))
            })
        });
    }
    let mut next = 0;
    group.bench_function("classify_heldout_mix", |b| {
        b.iter(|| {
            next = (next + 1) % messages.len();
            black_box(model.classify(&messages[next].text, 5))
        })
    });
    let twenty = "ik heb vorige week een stofzuiger besteld maar hij is nog steeds niet bezorgd kunnen jullie kijken waar mijn pakket nu is";
    assert_eq!(twenty.split_whitespace().count(), 22);
    group.bench_function("classify_22_words", |b| b.iter(|| black_box(model.classify(black_box(twenty), 5))));
    group.bench_function("decide_human_request", |b| {
        let input = TurnInput {
            text: "ik wil een medewerker spreken",
            language: "nl",
            tier: Tier::Standard,
            channel: Channel::Chat,
            memory: &memory,
        };
        b.iter(|| black_box(policy.decide(&knowledge, None, &input)))
    });
    let mut next = 0;
    group.bench_function("search_only_heldout_mix", |b| {
        b.iter(|| {
            next = (next + 1) % messages.len();
            let message = &messages[next];
            black_box(knowledge.index.search(&message.text, &message.language, 5))
        })
    });
    let mut next = 0;
    group.bench_function("detect_language_heldout_mix", |b| {
        b.iter(|| {
            next = (next + 1) % messages.len();
            black_box(knowledge.index.detect_language(&messages[next].text))
        })
    });
    group.finish();
}

criterion_group!(benches, policy, faq_search);
criterion_main!(benches);
