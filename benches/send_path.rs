//! Criterion: the parts of one `SendMessage`, to see where its time goes. The store alone (read the conversation
//! header, append one turn in a transaction), the domain call without gRPC (`Dialogue::send`: lock, read, policy,
//! commit, publish), protobuf encoding and decoding of a real request and response, and one gRPC round trip on
//! loopback at concurrency 1. The policy alone is in `benches/search.rs`.
//!
//! `cargo bench --bench send_path`

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/phrasings.rs"]
mod phrasings;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loket::App;
use loket::config::Config;
use loket::conversation::{
    Author, Channel, Conversation, DialogueMemory, Event, EventBody, Message, State, Tier, Turn,
};
use loket::dialogue::{Dialogue, Policy, StartConversation, TurnInput};
use loket::knowledge::Knowledge;
use loket::server::pb;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::store::{Commit, ConversationStore, SqliteStore};
use prost::Message as _;
use tokio::runtime::Runtime;

/// Conversations the benches rotate over, as under 64-way load.
const CONVERSATIONS: usize = 64;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

fn config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.knowledge.dir = phrasings::manifest_dir().join("knowledge-base");
    config.storage.data_dir = data_dir.to_owned();
    config
}

/// The Dutch held-out messages (every conversation here is in Dutch).
fn texts() -> Vec<String> {
    phrasings::texts_in(&phrasings::load(&phrasings::manifest_dir().join("tests/data/heldout.tsv")), "nl")
}

fn configured<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    group
}

fn message_event(conversation: &mut Conversation, author: Author, text: &str, client_id: Option<String>) -> Event {
    conversation.last_seq += 1;
    Event {
        conversation_id: conversation.id.clone(),
        seq: conversation.last_seq,
        created_at: conversation.updated_at,
        body: EventBody::Message(Message {
            id: uuid_like(conversation.last_seq),
            author,
            text: text.to_owned(),
            language: "nl".into(),
            client_message_id: client_id,
            faq_id: None,
            author_name: None,
        }),
    }
}

fn uuid_like(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// `Store::commit` with the events of one realistic turn (customer message, bot answer, decision with five
/// matches), each into the next of 64 conversations; and `Store::conversation`, the read every send starts with.
fn store(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(rt.block_on(SqliteStore::open(dir.path())).expect("store opens"));
    let manifest = phrasings::manifest_dir();
    let defaults = Config::default();
    let knowledge = Knowledge::load(&manifest.join("knowledge-base"), &defaults.languages.supported).expect("kb");
    let policy = Policy::new(defaults.policy.clone(), defaults.channels.clone());
    let texts = texts();
    let memory = DialogueMemory::default();
    let outcomes: Vec<_> = texts
        .iter()
        .map(|text| {
            let input =
                TurnInput { text, language: "nl", tier: Tier::Standard, channel: Channel::Chat, memory: &memory };
            (text.clone(), policy.decide(&knowledge, None, &input))
        })
        .collect();
    let conversations: Vec<Conversation> = (0..CONVERSATIONS)
        .map(|n| {
            let mut conversation = Conversation {
                id: uuid_like(1_000_000 + n as u64),
                customer_id: format!("bench-customer-{n}"),
                tier: Tier::Standard,
                channel: Channel::Chat,
                language: "nl".into(),
                language_fixed: true,
                metadata: [("page".to_owned(), "https://huiswaren.example/klantenservice".to_owned())].into(),
                state: State::Bot,
                created_at: 1_790_000_000_000,
                updated_at: 1_790_000_000_000,
                last_seq: 0,
                memory: DialogueMemory::default(),
                owner: None,
            };
            let greeting = message_event(&mut conversation, Author::Bot, "Hallo! Waarmee kan ik je helpen?", None);
            rt.block_on(store.commit(Commit::new(&conversation, &[greeting]))).expect("create");
            conversation
        })
        .collect();
    let conversations = Arc::new(std::sync::Mutex::new(conversations));
    let outcomes = Arc::new(outcomes);
    let counter = Arc::new(AtomicU64::new(0));

    let mut group = configured(c, "store");
    group.bench_function("commit_turn", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (store, conversations, outcomes, counter) =
                (Arc::clone(&store), Arc::clone(&conversations), Arc::clone(&outcomes), Arc::clone(&counter));
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let n = counter.fetch_add(1, Ordering::Relaxed) as usize;
                    let (text, outcome) = &outcomes[n % outcomes.len()];
                    // Building the events is the dialogue's work, not the store's: keep it out of the timing.
                    let (conversation, events, turn) = {
                        let mut all = conversations.lock().expect("lock");
                        let conversation = &mut all[n % CONVERSATIONS];
                        conversation.updated_at += 1;
                        let customer = message_event(conversation, Author::Customer, text, Some(format!("m{n}")));
                        let mut events = vec![customer.clone()];
                        let mut replies = Vec::new();
                        for reply in &outcome.replies {
                            replies.push(message_event(conversation, Author::Bot, &reply.text, None));
                        }
                        events.extend(replies.iter().cloned());
                        let turn =
                            Turn { message: customer, replies, decision: outcome.decision.clone(), state: State::Bot };
                        (conversation.clone(), events, turn)
                    };
                    let started = Instant::now();
                    let commit = Commit { turn: Some(&turn), ..Commit::new(&conversation, &events) };
                    store.commit(commit).await.expect("commit");
                    total += started.elapsed();
                }
                total
            }
        })
    });
    let ids: Vec<String> = (0..CONVERSATIONS).map(|n| uuid_like(1_000_000 + n as u64)).collect();
    let mut next = 0;
    group.bench_function("read_conversation", |b| {
        b.to_async(&rt).iter(|| {
            next = (next + 1) % ids.len();
            let (store, id) = (Arc::clone(&store), ids[next].clone());
            async move { black_box(store.conversation(&id).await.expect("read")) }
        })
    });
    group.finish();
}

/// Starts 64 conversations on `dialogue` and returns their ids.
fn start_conversations(rt: &Runtime, dialogue: &Dialogue) -> Vec<String> {
    (0..CONVERSATIONS)
        .map(|n| {
            let start = StartConversation {
                customer_id: format!("bench-customer-{n}"),
                language: Some("nl".into()),
                ..Default::default()
            };
            rt.block_on(dialogue.start(start)).expect("start").0.id
        })
        .collect()
}

/// `Dialogue::send`: everything one SendMessage does except gRPC, on a SQLite file in a temp directory.
fn dialogue(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let app = rt.block_on(App::build(config(dir.path()))).expect("app builds");
    let ids = start_conversations(&rt, &app.dialogue);
    let texts = texts();
    let mut group = configured(c, "dialogue");
    let mut next = 0usize;
    group.bench_function("send", |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let dialogue = Arc::clone(&app.dialogue);
            let (id, text, client_id) = (ids[next % ids.len()].clone(), texts[next % texts.len()].clone(), next);
            async move { black_box(dialogue.send(&id, &text, Some(&format!("m{client_id}")), None).await.expect("send")) }
        })
    });
    group.finish();
}

/// Protobuf work on a real request and response, and one SendMessage round trip over loopback gRPC.
fn transport(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, stop) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = App::build(config(dir.path())).await.expect("app builds");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve(listener, async move {
            let _ = stopped.await;
        }));
        (url, stop)
    });
    let mut chat = rt.block_on(ChatServiceClient::connect(url)).expect("connect");
    let conversation_id = rt
        .block_on(chat.start_conversation(pb::StartConversationRequest {
            customer_id: "bench-customer".into(),
            language: "nl".into(),
            ..Default::default()
        }))
        .expect("start")
        .into_inner()
        .conversation
        .expect("conversation")
        .conversation_id;
    let request = pb::SendMessageRequest {
        conversation_id: conversation_id.clone(),
        text: "hoe lang duurt de levering van mijn bestelling".into(),
        client_message_id: "bench-codec".into(),
    };
    let response = rt.block_on(chat.send_message(request.clone())).expect("send").into_inner();
    let (request_bytes, response_bytes) = (request.encode_to_vec(), response.encode_to_vec());
    eprintln!("codec: request {} B, response {} B", request_bytes.len(), response_bytes.len());

    let mut group = configured(c, "codec");
    group.bench_function("encode_request", |b| b.iter(|| black_box(request.encode_to_vec())));
    group.bench_function("decode_request", |b| {
        b.iter(|| black_box(pb::SendMessageRequest::decode(&request_bytes[..]).expect("decode")))
    });
    group.bench_function("encode_response", |b| b.iter(|| black_box(response.encode_to_vec())));
    group.bench_function("decode_response", |b| {
        b.iter(|| black_box(pb::SendMessageResponse::decode(&response_bytes[..]).expect("decode")))
    });
    group.finish();

    let texts = texts();
    let mut group = configured(c, "grpc");
    let mut next = 0usize;
    group.bench_function("send_message_round_trip", |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let mut chat = chat.clone();
            let request = pb::SendMessageRequest {
                conversation_id: conversation_id.clone(),
                text: texts[next % texts.len()].clone(),
                client_message_id: format!("rt{next}"),
            };
            async move { black_box(chat.send_message(request).await.expect("send")) }
        })
    });
    group.finish();
    let _ = stop.send(());
}

criterion_group!(benches, store, dialogue, transport);
criterion_main!(benches);
