//! Criterion: `StatsService.GetKpiSeries` over 90 days of 100,000 conversations (target: at most 500 ms), through a
//! real loket on a loopback port and a tonic client, and `GetKpis` over the same range beside it.
//!
//! The conversations are committed into a real SQLite store as loket commits them (one commit per customer
//! message, with its turn and its hand-off), their decisions made by the shipped policy and intent model from the
//! held-out phrasings: answers, clarifying questions, off-topic declines, requests for a person and questions
//! nobody answers; a hand-off is claimed after 10 s to 15 min (the last two hours' partly not yet), most are
//! resolved, half of those rated. Seeding takes a minute or two and is kept in `target/bench-kpi-series-<n>/` for
//! the next run.
//!
//! `cargo bench --bench kpi_series` (`LOKET_BENCH_CONVERSATIONS=10000` for another size)

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/phrasings.rs"]
mod phrasings;
#[path = "support/rng.rs"]
mod rng;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use loket::App;
use loket::clock::ManualClock;
use loket::config::Config;
use loket::conversation::{
    Author, Channel, Conversation, DecisionKind, DialogueMemory, Event, EventBody, Handoff, HandoffState, Message,
    Rating, State, Tier, Turn,
};
use loket::dialogue::{Outcome, Policy, TurnInput};
use loket::server::pb;
use loket::server::pb::stats_service_client::StatsServiceClient;
use loket::store::{Commit, Store};
use prost_types::Timestamp;
use rng::Rng;
use tokio::runtime::Runtime;

const DAY: i64 = 24 * 3_600_000;
/// The end of the seeded range (2026-11-25 09:00 UTC); the conversations start in the 90 days before it.
const END: i64 = 1_795_597_200_000;
const RANGE_DAYS: i64 = 90;
/// Conversations committed at once (the writer's group commit batches them, as under load).
const WRITERS: usize = 64;

fn conversations() -> usize {
    std::env::var("LOKET_BENCH_CONVERSATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000)
}

fn config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.knowledge.dir = phrasings::manifest_dir().join("knowledge-base");
    config.storage.data_dir = data_dir.to_owned();
    // Loopback only: no keys to make.
    config.auth.mode = "open".into();
    config
}

/// The policy's outcome for every held-out phrasing and for a request for a person, per language.
fn outcomes(app: &App) -> Vec<(String, String, Outcome)> {
    let defaults = Config::default();
    let policy = Policy::new(defaults.policy.clone(), defaults.channels.clone());
    let knowledge = app.context().knowledge.current();
    let model = app.context().model.current();
    let memory = DialogueMemory::default();
    let phrasings = phrasings::load(&phrasings::manifest_dir().join("tests/data/heldout.tsv"));
    let mut outcomes = Vec::new();
    for (language, person) in [("nl", "ik wil een medewerker spreken"), ("en", "let me talk to a human")] {
        let mut texts = phrasings::texts_in(&phrasings, language);
        // About one customer in six asks for a person.
        texts.extend(std::iter::repeat_n(person.to_owned(), texts.len() / 5));
        for text in texts {
            let input =
                TurnInput { text: &text, language, tier: Tier::Standard, channel: Channel::Chat, memory: &memory };
            let outcome = policy.decide(&knowledge, model.as_deref(), &input);
            outcomes.push((language.to_owned(), text, outcome));
        }
    }
    outcomes
}

fn message(conversation: &mut Conversation, author: Author, text: &str, faq_id: Option<String>) -> Event {
    conversation.last_seq += 1;
    conversation.updated_at += 1000;
    Event {
        conversation_id: conversation.id.clone(),
        seq: conversation.last_seq,
        created_at: conversation.updated_at,
        body: EventBody::Message(Message {
            id: format!("{}-{}", conversation.id, conversation.last_seq),
            author,
            text: text.to_owned(),
            language: conversation.language.clone(),
            client_message_id: (author == Author::Customer).then(|| format!("m{}", conversation.last_seq)),
            faq_id,
            author_name: None,
        }),
    }
}

/// One conversation: a greeting, one to three customer messages, and a hand-off if one of them asked for it.
async fn seed_one(store: &dyn Store, n: usize, outcomes: &[(String, String, Outcome)], rng: &mut Rng) {
    let (language, _, _) = &outcomes[rng.below(outcomes.len())];
    let created_at = END - RANGE_DAYS * DAY + (n as i64 * RANGE_DAYS * DAY) / conversations() as i64;
    let channels = [Channel::Chat, Channel::Chat, Channel::Chat, Channel::Email, Channel::Messaging];
    let tiers = [Tier::Basic, Tier::Standard, Tier::Standard, Tier::Advanced];
    let mut conversation = Conversation {
        id: format!("bench-{n:07}"),
        customer_id: format!("customer-{}", rng.below(40_000)),
        tier: tiers[rng.below(tiers.len())],
        channel: channels[rng.below(channels.len())],
        language: language.clone(),
        language_fixed: false,
        metadata: Default::default(),
        state: State::Bot,
        created_at,
        updated_at: created_at,
        last_seq: 0,
        memory: DialogueMemory::default(),
        owner: None,
    };
    let greeting = message(&mut conversation, Author::Bot, "Hallo, hoe kan ik u helpen?", None);
    store.commit(Commit::new(&conversation, &[greeting])).await.expect("greeting");
    // A tenth only greet; the others ask one to three questions in their language, until one is handed off.
    let asked = if rng.chance(0.1) { 0 } else { 1 + rng.below(3) };
    let in_language: Vec<&(String, String, Outcome)> =
        outcomes.iter().filter(|(l, _, _)| *l == conversation.language).collect();
    for _ in 0..asked {
        let (_, text, outcome) = in_language[rng.below(in_language.len())];
        let customer = message(&mut conversation, Author::Customer, text, None);
        let replies: Vec<Event> = outcome
            .replies
            .iter()
            .map(|r| message(&mut conversation, Author::Bot, &r.text, r.faq_id.clone()))
            .collect();
        let handoff = outcome.decision.handoff_reason.map(|reason| {
            let at = conversation.updated_at;
            let claimed =
                (at < END - 2 * 3_600_000 || rng.chance(0.5)).then(|| at + 10_000 + rng.below(890_000) as i64);
            let resolved = claimed.filter(|_| rng.chance(0.85)).map(|c| c + 60_000 + rng.below(1_140_000) as i64);
            let rating = resolved.filter(|_| rng.chance(0.5)).map(|r| Rating {
                score: [1, 2, 3, 4, 4, 5, 5, 5][rng.below(8)],
                comment: String::new(),
                created_at: r + 30_000,
            });
            Handoff {
                id: format!("{}-h", conversation.id),
                conversation_id: conversation.id.clone(),
                state: match (claimed, resolved) {
                    (_, Some(_)) => HandoffState::Resolved,
                    (Some(_), None) => HandoffState::Claimed,
                    _ => HandoffState::Queued,
                },
                reason,
                reason_detail: outcome.decision.explanation.clone(),
                skill: ["general", "returns", "delivery", "payment"][rng.below(4)].into(),
                priority: 0,
                language: conversation.language.clone(),
                channel: conversation.channel,
                customer_id: conversation.customer_id.clone(),
                tier: conversation.tier,
                first_ask: text.clone(),
                last_message: text.clone(),
                intents: outcome.decision.intents.clone(),
                faq_candidates: outcome.decision.faq_matches.clone(),
                callback: false,
                expected_pickup_at: at,
                agent_id: claimed.map(|_| "anna".into()),
                notes: Vec::new(),
                created_at: at,
                claimed_at: claimed,
                resolved_at: resolved,
                rating,
            }
        });
        conversation.state = match &handoff {
            Some(h) if h.state == HandoffState::Queued => State::Queued,
            Some(h) if h.state == HandoffState::Claimed => State::Agent,
            _ => State::Bot,
        };
        let mut events = vec![customer.clone()];
        events.extend(replies.iter().cloned());
        let turn = Turn { message: customer, replies, decision: outcome.decision.clone(), state: conversation.state };
        let commit = Commit {
            turn: Some(&turn),
            handoff: handoff.as_ref().map(|h| (h, None)),
            ..Commit::new(&conversation, &events)
        };
        store.commit(commit).await.expect("turn");
        if handoff.is_some() || outcome.decision.kind == DecisionKind::Handoff {
            break;
        }
    }
}

/// Seeds `count` conversations into the app's store unless an earlier run did.
fn seed(rt: &Runtime, app: &App, store: &Arc<dyn Store>, dir: &std::path::Path, count: usize) {
    let marker = dir.join("seeded");
    if marker.exists() {
        eprintln!("kpi_series: reusing {count} seeded conversations in {}", dir.display());
        return;
    }
    let outcomes = Arc::new(outcomes(app));
    let started = Instant::now();
    rt.block_on(async {
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let (store, outcomes) = (Arc::clone(store), Arc::clone(&outcomes));
            writers.push(tokio::spawn(async move {
                let mut rng = Rng::new(42 + writer as u64);
                for n in (writer..count).step_by(WRITERS) {
                    seed_one(store.as_ref(), n, &outcomes, &mut rng).await;
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
    });
    std::fs::write(&marker, b"").expect("marker");
    eprintln!("kpi_series: seeded {count} conversations in {:.1} s", started.elapsed().as_secs_f64());
}

fn time(millis: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds: millis.div_euclid(1000), nanos: 0 })
}

fn series(c: &mut Criterion) {
    let count = conversations();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = phrasings::manifest_dir().join(format!("target/bench-kpi-series-{count}"));
    std::fs::create_dir_all(&dir).expect("bench directory");
    let clock = Arc::new(ManualClock::new(END + 3_600_000));
    let config = config(&dir);
    let store = rt.block_on(loket::store::open(&config.storage)).expect("store opens");
    let app = rt.block_on(App::build_with(config, Arc::clone(&store), clock)).expect("app builds");
    seed(&rt, &app, &store, &dir, count);
    let (url, stop) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve(listener, async move {
            let _ = stopped.await;
        }));
        (url, stop)
    });
    let client = rt.block_on(StatsServiceClient::connect(url)).expect("connect");
    let client = client.max_decoding_message_size(64 << 20);
    let range = |granularity: pb::Granularity, days: i64| pb::GetKpiSeriesRequest {
        start_time: time(END - days * DAY),
        end_time: time(END),
        granularity: granularity.into(),
        time_zone: "Europe/Amsterdam".into(),
        ..Default::default()
    };
    let first = rt.block_on(client.clone().get_kpi_series(range(pb::Granularity::Day, RANGE_DAYS))).expect("series");
    let first = first.into_inner();
    let total: i64 = first.buckets.iter().map(|b| b.kpis.as_ref().map_or(0, |k| k.conversations)).sum();
    let handoffs: i64 = first.buckets.iter().map(|b| b.kpis.as_ref().map_or(0, |k| k.handoffs)).sum();
    eprintln!("kpi_series: {} daily buckets, {total} conversations, {handoffs} hand-offs", first.buckets.len());

    let mut group = c.benchmark_group("kpi_series");
    group.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(20));
    for (name, granularity, days) in [
        ("day_90d", pb::Granularity::Day, RANGE_DAYS),
        ("hour_90d", pb::Granularity::Hour, RANGE_DAYS),
        ("hour_7d", pb::Granularity::Hour, 7),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let (mut client, request) = (client.clone(), range(granularity, days));
                async move { black_box(client.get_kpi_series(request).await.expect("series")) }
            })
        });
    }
    group.bench_function("get_kpis_90d", |b| {
        b.to_async(&rt).iter(|| {
            let mut client = client.clone();
            let request = pb::GetKpisRequest {
                start_time: time(END - RANGE_DAYS * DAY),
                end_time: time(END),
                ..Default::default()
            };
            async move { black_box(client.get_kpis(request).await.expect("kpis")) }
        })
    });
    group.finish();
    let _ = stop.send(());
}

criterion_group!(benches, series);
criterion_main!(benches);
