//! How fast queued webhook deliveries drain to a local receiver (BENCHMARKS.md; the target is 10,000 in at most
//! 10 s). Fills the outbox of a fresh database with `--events` deliveries spread over `--conversations`
//! conversations, committed as loket commits them, before any deliverer runs; then starts the deliverer and
//! times until the receiver in this process has accepted every event, and until the outbox is empty.
//!
//! `cargo bench --bench webhook_drain -- [--events 10000] [--conversations 1000] [--concurrency 16]
//! [--database-url postgres://...]`

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/receiver.rs"]
mod receiver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use loket::clock::SystemClock;
use loket::config::{StorageConfig, WebhookConfig, WebhookDeliveryConfig};
use loket::conversation::{Channel, Conversation, DialogueMemory, State, Tier};
use loket::store::Commit;
use loket::webhooks::{EventType, Webhooks};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "drain time of queued webhook deliveries to a local receiver")]
struct Args {
    /// Deliveries queued before the deliverer starts.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Conversations they are spread over (one conversation's events are delivered one after the other).
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// `webhook_delivery.concurrency`.
    #[arg(long, default_value_t = WebhookDeliveryConfig::default().concurrency)]
    concurrency: usize,
    /// A PostgreSQL database to queue in instead of the embedded SQLite (it must be empty of deliveries).
    #[arg(long, default_value = "")]
    database_url: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn conversation(n: usize) -> Conversation {
    Conversation {
        id: format!("bench-{n}-{}", uuid::Uuid::new_v4().simple()),
        customer_id: format!("customer-{n}"),
        tier: Tier::Standard,
        channel: Channel::Chat,
        language: "nl".into(),
        language_fixed: false,
        metadata: Default::default(),
        state: State::Bot,
        created_at: 0,
        updated_at: 0,
        last_seq: 0,
        memory: DialogueMemory::default(),
        owner: None,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.conversations > 0 && args.events >= args.conversations, "events >= conversations > 0");
    let dir = tempfile::tempdir()?;
    let storage = StorageConfig {
        data_dir: dir.path().to_owned(),
        database_url: args.database_url.clone(),
        ..StorageConfig::default()
    };
    let store = loket::store::open(&storage).await?;
    let receiver = receiver::Receiver::start().await?;
    let webhook = WebhookConfig {
        name: "bench".into(),
        url: receiver.url(),
        secret: "a-benchmark-webhook-secret-of-32-bytes".into(),
        events: vec![EventType::HandoffClaimed.as_str().into()],
        timeout_ms: 5000,
    };
    let settings =
        WebhookDeliveryConfig { allow_private_addresses: true, concurrency: args.concurrency, ..Default::default() };
    let webhooks = Arc::new(Webhooks::new(Arc::clone(&store), Arc::new(SystemClock), &[webhook], &settings));

    let filling = Instant::now();
    let per_conversation = args.events / args.conversations;
    let mut queued = 0;
    for n in 0..args.conversations {
        let conversation = conversation(n);
        let count = if n + 1 == args.conversations { args.events - queued } else { per_conversation };
        let mut deliveries = Vec::with_capacity(count);
        for seq in 0..count {
            let id = conversation.id.as_str();
            let data =
                || serde_json::json!({ "conversation_id": id, "handoff_id": format!("h-{seq}"), "agent_id": "anna" });
            webhooks.record(&mut deliveries, EventType::HandoffClaimed, Some(id), id, 0, data);
        }
        queued += deliveries.len();
        store.commit(Commit { deliveries: &deliveries, ..Commit::new(&conversation, &[]) }).await?;
    }
    println!(
        "queued {queued} deliveries over {} conversations in {:.2} s ({}, concurrency {})",
        args.conversations,
        filling.elapsed().as_secs_f64(),
        if args.database_url.is_empty() { "SQLite" } else { "PostgreSQL" },
        args.concurrency
    );

    let started = Instant::now();
    let deliverer = tokio::spawn(webhooks.run().expect("a webhook is configured"));
    loop {
        let (_, events) = receiver.counts();
        if events >= queued {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "only {events} of {queued} after 120 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let received = started.elapsed();
    while store.outbox_depth().await?.iter().any(|d| d.count > 0) {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "the outbox did not empty");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let empty = started.elapsed();
    deliverer.abort();
    let (requests, events) = receiver.counts();
    println!(
        "received all {events} events in {:.2} s ({:.0}/s; {requests} requests); outbox empty after {:.2} s",
        received.as_secs_f64(),
        events as f64 / received.as_secs_f64(),
        empty.as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(args))
}
