//! Edit → answered: how long after an editor's CreateFaq the very next SendMessage is answered from the new entry
//! (search path), and how long until the background retrain has swapped in a model that knows it (model path).
//! Knowledge bases of several sizes (the shipped one, then synthetic ones seeded from generated files), an
//! in-process server on loopback, real tonic clients.
//!
//! `cargo bench --bench knowledge_edit [-- --sizes 45,1000,10000 --edits 10]`

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[allow(dead_code)]
#[path = "support/phrasings.rs"]
mod phrasings;
#[allow(dead_code)]
#[path = "support/rng.rs"]
mod rng;
#[allow(dead_code)]
#[path = "support/synthetic.rs"]
mod synthetic;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loket::App;
use loket::clock::SystemClock;
use loket::config::Config;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::knowledge_service_client::KnowledgeServiceClient;
use loket::server::pb::{self, DecisionKind};
use loket::store::SqliteStore;
use tonic::transport::Channel;

/// A made-up topic word per edit, so only the new entry can match it.
fn topic(n: usize) -> String {
    let letters: String = format!("{n:04}").chars().map(|d| (b'a' + d.to_digit(10).unwrap() as u8) as char).collect();
    format!("florbix{letters}")
}

fn entry(n: usize) -> pb::Faq {
    let word = topic(n);
    let translation = |question: String, phrasings: [String; 3], answer: &str| pb::FaqTranslation {
        question,
        phrasings: phrasings.into(),
        answer: answer.into(),
    };
    pb::Faq {
        id: format!("bench-{word}"),
        category: "bench".into(),
        skill: "general".into(),
        translations: HashMap::from([
            (
                "nl".to_string(),
                translation(
                    format!("Kan ik een {word} huren?"),
                    [format!("{word} huren"), format!("verhuur van een {word}"), format!("hoeveel kost een {word}")],
                    "Ja.",
                ),
            ),
            (
                "en".to_string(),
                translation(
                    format!("Can I rent a {word}?"),
                    [format!("rent a {word}"), format!("{word} rental"), format!("how much is a {word}")],
                    "Yes.",
                ),
            ),
        ]),
        ..Default::default()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    loket::quantile::nearest_rank(sorted, p).unwrap_or(f64::NAN)
}

/// A knowledge directory with `entries` synthetic entries (the shipped locales and intents alongside).
fn synthetic_dir(manifest: &Path, entries: usize, into: &Path) {
    let shipped = synthetic::shipped(manifest);
    let kb = synthetic::knowledge_base(&shipped, entries, 42);
    // Recombination can give two entries one phrasing, which the service refuses: keep the first.
    let mut taken = std::collections::HashSet::new();
    let mut faqs = Vec::new();
    for mut faq in kb.faqs {
        for (language, t) in faq.translations.iter_mut() {
            t.phrasings.retain(|p| taken.insert((language.clone(), loket::text::normalize(p))));
        }
        let distinct_questions =
            faq.translations.iter().all(|(l, t)| taken.insert((l.clone(), loket::text::normalize(&t.question))));
        if distinct_questions && faq.translations.values().all(|t| t.phrasings.len() >= loket::knowledge::MIN_PHRASINGS)
        {
            faqs.push(faq);
        }
    }
    std::fs::create_dir_all(into.join("faq")).unwrap();
    for (name, text) in loket::knowledge::export(&faqs.iter().collect::<Vec<_>>()) {
        std::fs::write(into.join("faq").join(name), text).unwrap();
    }
    for sub in ["locales", "intents"] {
        std::fs::create_dir_all(into.join(sub)).unwrap();
        for file in std::fs::read_dir(manifest.join("knowledge-base").join(sub)).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, into.join(sub).join(file.file_name().unwrap())).unwrap();
        }
    }
}

async fn run(size: Option<usize>, edits: usize) {
    let manifest = phrasings::manifest_dir();
    let scratch = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.knowledge.dir = match size {
        None => manifest.join("knowledge-base"),
        Some(entries) => {
            synthetic_dir(&manifest, entries, &scratch.path().join("kb"));
            scratch.path().join("kb")
        }
    };
    config.storage.data_dir = scratch.path().join("data");
    config.intent.model_dir = manifest.join("models/intent");
    // Retraining on a synthetic base would train on hundreds of thousands of examples: the shipped base only.
    config.knowledge.retrain = size.is_none();
    config.intent.reload_check_secs = 0;
    config.auth.mode = "open".into();
    let started = Instant::now();
    let store = SqliteStore::open(&config.storage.data_dir).await.unwrap();
    let app = App::build_with(config, Arc::new(store), Arc::new(SystemClock)).await.unwrap();
    let startup = started.elapsed();
    let entries = app.context().knowledge.current().base.faqs.len();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener, std::future::pending()));
    let channel = Channel::from_shared(address).unwrap().connect().await.unwrap();
    let (mut knowledge, mut chat) = (KnowledgeServiceClient::new(channel.clone()), ChatServiceClient::new(channel));

    let (mut create_ms, mut answered_ms) = (Vec::new(), Vec::new());
    let mut last_edit = Instant::now();
    for n in 0..edits {
        let faq = entry(n);
        let id = faq.id.clone();
        let started = Instant::now();
        knowledge.create_faq(pb::CreateFaqRequest { faq: Some(faq), author: "bench".into() }).await.unwrap();
        create_ms.push(started.elapsed().as_secs_f64() * 1e3);
        last_edit = Instant::now();
        let conversation = chat
            .start_conversation(pb::StartConversationRequest {
                customer_id: "bench".into(),
                language: "en".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .conversation
            .unwrap()
            .conversation_id;
        let text = format!("i would like to rent a {} for the weekend", topic(n));
        let response = chat
            .send_message(pb::SendMessageRequest {
                conversation_id: conversation,
                text,
                client_message_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let decision = response.decision.unwrap();
        assert_eq!(decision.kind(), DecisionKind::Answer, "{decision:?}");
        assert_eq!(response.replies[0].faq_id, id);
        answered_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    create_ms.sort_by(f64::total_cmp);
    answered_ms.sort_by(f64::total_cmp);
    let retrain = if size.is_none() {
        loop {
            let status = knowledge.get_retrain_status(pb::GetRetrainStatusRequest {}).await.unwrap().into_inner();
            if status.completed >= 1 {
                break format!(
                    "{:.1} s training, {:.1} s after the last edit",
                    status.last_seconds,
                    last_edit.elapsed().as_secs_f64()
                );
            }
            assert!(status.last_error.is_empty(), "{}", status.last_error);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        "off".to_string()
    };
    println!(
        "| {entries:>6} | {:>6.2} | {:>6.1} | {:>6.1} | {:>6.1} | {:>6.1} | {retrain} | {} |",
        startup.as_secs_f64(),
        percentile(&create_ms, 0.5),
        percentile(&create_ms, 1.0),
        percentile(&answered_ms, 0.5),
        percentile(&answered_ms, 1.0),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?"),
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut sizes, mut edits) = (vec![0, 1_000, 10_000], 10);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => sizes = args.next().unwrap().split(',').map(|s| s.parse().unwrap()).collect(),
            "--edits" => edits = args.next().unwrap().parse().unwrap(),
            _ => {}
        }
    }
    println!("| entries | start s | CreateFaq ms p50 | max | edit → answered ms p50 | max | model retrained | load |");
    println!("|--:|--:|--:|--:|--:|--:|--|--:|");
    for size in sizes {
        // 0 stands for the shipped knowledge base (with the background retrain on).
        run((size > 0).then_some(size), edits).await;
    }
}
