//! Load generator: N simulated customers hold real conversations with loket over gRPC (start in nl or en,
//! several messages from the held-out phrasing file, some asking for a person, end), then the same generator
//! drives a bare tonic echo service; prints throughput, latency percentiles, errors, CPU per message and the
//! loket/echo ratio. Loopback only, bounded in time.
//!
//! `cargo bench --bench loadgen -- [--concurrency 64] [--duration 20s] [--channels 4] [--target URL]... ...`
//! With `--webhook` the in-process loket posts every event to a receiver in this process, for what delivery
//! adds to `SendMessage`.

// A benchmark fails loudly on the first surprise and reads its knobs from the environment.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "support/phrasings.rs"]
mod phrasings;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/rng.rs"]
mod rng;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use loket::App;
use loket::config::Config;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::{self, DecisionKind};
use prost::Message as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};

use crate::rng::Rng;

// The server runs in this process: give it the allocator `loket serve` runs with (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Generated types and stubs of the bench-only `loket.bench.v1` echo service.
mod echo_pb {
    tonic::include_proto!("loket.bench.v1");
}

/// No single call may take longer; a stuck server cannot hang the run.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time the whole phase may take past warm-up + duration before the run is declared stuck.
const PHASE_GRACE: Duration = Duration::from_secs(30);
const HUMAN_REQUEST_NL: &str = "ik wil een medewerker spreken";
const HUMAN_REQUEST_EN: &str = "talk to a human";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Loket,
    Echo,
    Both,
}

#[derive(Debug, Parser)]
#[command(about = "loket gRPC load generator (loopback only)")]
struct Args {
    /// Simulated customers, each holding one conversation at a time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured time per target (after the warm-up): 20s, 500ms, 1m.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time per target before measuring.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Stop a target's measurement after this many SendMessage calls (else after --duration).
    #[arg(long)]
    messages: Option<u64>,
    /// HTTP/2 connections shared by the customers (each multiplexes concurrency/channels streams).
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// An already running loket (loopback address only), e.g. http://127.0.0.1:50051; default: start one here.
    /// Repeat it for several replicas of one database: the channels, and so the customers, are spread over them.
    #[arg(long)]
    target: Vec<String>,
    /// Which services to measure.
    #[arg(long, value_enum, default_value = "both")]
    run: Which,
    /// Share of conversations in which the customer asks for a person.
    #[arg(long, default_value_t = 0.15)]
    human_share: f64,
    /// Phrasing file (lang, expected, text), relative to the package root.
    #[arg(long, default_value = "tests/data/heldout.tsv")]
    phrasings: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Set TCP_NODELAY on the in-process servers' listening sockets (Linux hands it on to accepted
    /// connections). Off by default, as `loket serve` ships: `TcpIncoming::from(listener)` leaves Nagle on.
    #[arg(long)]
    nodelay: bool,
    /// Configure the in-process loket with a webhook for every event, posted to a receiver in this process
    /// (BENCHMARKS.md: what webhook delivery adds to SendMessage).
    #[arg(long)]
    webhook: bool,
    /// The events that webhook subscribes to (comma-separated); default all seven.
    #[arg(long, value_delimiter = ',')]
    webhook_events: Vec<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?}: expected a number and a unit (20s, 500ms)"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" | "" => number,
        "m" => number * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Refuses anything but a loopback address: load is only ever sent to this machine.
fn loopback_url(url: &str) -> anyhow::Result<String> {
    let uri: tonic::codegen::http::Uri = url.parse().with_context(|| format!("--target {url:?} is not a URL"))?;
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback || uri.scheme_str() != Some("http") {
        bail!("--target must be http:// on a loopback address (127.0.0.0/8, localhost, [::1]), not {url:?}");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

// ---------------------------------------------------------------------------------------------------------------
// Servers, started on their own runtime so their CPU time can be told apart from the generator's.

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// A loopback listener on an OS-chosen port, optionally with TCP_NODELAY for the connections it accepts.
async fn listen(nodelay: bool) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(nodelay)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(1024)
}

/// Starts loket in this process; with `webhook`, every event is also posted to that URL.
async fn start_loket(
    server: &Handle,
    data_dir: PathBuf,
    nodelay: bool,
    webhook: Option<(String, Vec<String>)>,
) -> anyhow::Result<Running> {
    let mut config = Config::default();
    if let Some((url, mut events)) = webhook {
        if events.is_empty() {
            events = loket::webhooks::EventType::ALL.iter().map(|e| e.as_str().to_owned()).collect();
        }
        config.webhooks = vec![loket::config::WebhookConfig {
            name: "bench".into(),
            url,
            secret: "a-benchmark-webhook-secret-of-32-bytes".into(),
            events,
            timeout_ms: 5000,
        }];
        config.webhook_delivery.allow_private_addresses = true;
    }
    config.knowledge.dir = phrasings::manifest_dir().join("knowledge-base");
    config.storage.data_dir = data_dir;
    // The generator measures the service, not the gate: no keys, no rate limits (loopback only).
    config.auth.mode = "open".into();
    config.limits.requests_per_second_per_key = 0.0;
    config.limits.messages_per_minute_per_conversation = 0.0;
    let (listener, app) = server
        .spawn(async move {
            let listener = listen(nodelay).await?;
            let app = App::build(config).await?;
            anyhow::Ok((listener, app))
        })
        .await??;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = server.spawn(app.serve(listener, async move {
        let _ = stopped.await;
    }));
    Ok(Running { url, stop, task })
}

struct EchoApi;

#[tonic::async_trait]
impl echo_pb::echo_service_server::EchoService for EchoApi {
    async fn echo(&self, request: Request<echo_pb::EchoRequest>) -> Result<Response<echo_pb::EchoResponse>, Status> {
        let echo_pb::EchoRequest { conversation_id, text, client_message_id, response_bytes } = request.into_inner();
        let padding = "x".repeat(response_bytes.min(1 << 20) as usize);
        Ok(Response::new(echo_pb::EchoResponse { conversation_id, text, client_message_id, padding }))
    }
}

async fn start_echo(server: &Handle, nodelay: bool) -> anyhow::Result<Running> {
    let listener = server.spawn(listen(nodelay)).await??;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = server.spawn(async move {
        Server::builder()
            .add_service(echo_pb::echo_service_server::EchoServiceServer::new(EchoApi))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(())
    });
    Ok(Running { url, stop, task })
}

// ---------------------------------------------------------------------------------------------------------------
// The simulated customer.

/// Mean encoded response sizes seen from loket, which the echo service then reproduces.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    start: u32,
    send: u32,
    end: u32,
}

enum Client {
    Loket(ChatServiceClient<Channel>),
    Echo { client: echo_pb::echo_service_client::EchoServiceClient<Channel>, sizes: Sizes },
}

struct Sent {
    kind: Option<DecisionKind>,
    request_bytes: usize,
    response_bytes: usize,
}

impl Client {
    /// Returns the conversation id and the response size.
    async fn start(
        &mut self,
        customer_id: &str,
        language: &str,
        tier: pb::SupportTier,
    ) -> Result<(String, usize), Status> {
        match self {
            Client::Loket(chat) => {
                let request = pb::StartConversationRequest {
                    customer_id: customer_id.to_owned(),
                    tier: tier.into(),
                    channel: pb::Channel::Chat.into(),
                    language: language.to_owned(),
                    metadata: [("page".to_owned(), "https://huiswaren.example/klantenservice".to_owned())].into(),
                    customer_id_signature: String::new(),
                };
                let response = chat.start_conversation(request).await?.into_inner();
                let id = response.conversation.as_ref().map(|c| c.conversation_id.clone()).unwrap_or_default();
                Ok((id, response.encoded_len()))
            }
            Client::Echo { client, sizes } => {
                let id = format!("{customer_id}-{:0>24}", language);
                let response = client.echo(echo(&id, customer_id, "", sizes.start)).await?.into_inner();
                Ok((id, response.encoded_len()))
            }
        }
    }

    async fn send(&mut self, conversation_id: &str, text: &str, client_message_id: &str) -> Result<Sent, Status> {
        match self {
            Client::Loket(chat) => {
                let request = pb::SendMessageRequest {
                    conversation_id: conversation_id.to_owned(),
                    text: text.to_owned(),
                    client_message_id: client_message_id.to_owned(),
                };
                let request_bytes = request.encoded_len();
                let response = chat.send_message(request).await?.into_inner();
                let kind = response.decision.as_ref().map(|d| d.kind());
                Ok(Sent { kind, request_bytes, response_bytes: response.encoded_len() })
            }
            Client::Echo { client, sizes } => {
                let request = echo(conversation_id, text, client_message_id, sizes.send);
                let request_bytes = request.encoded_len();
                let response = client.echo(request).await?.into_inner();
                Ok(Sent { kind: None, request_bytes, response_bytes: response.encoded_len() })
            }
        }
    }

    async fn end(&mut self, conversation_id: &str) -> Result<usize, Status> {
        match self {
            Client::Loket(chat) => {
                let request = pb::EndConversationRequest { conversation_id: conversation_id.to_owned() };
                Ok(chat.end_conversation(request).await?.into_inner().encoded_len())
            }
            Client::Echo { client, sizes } => {
                Ok(client.echo(echo(conversation_id, "", "", sizes.end)).await?.into_inner().encoded_len())
            }
        }
    }
}

fn echo(conversation_id: &str, text: &str, client_message_id: &str, response_bytes: u32) -> echo_pb::EchoRequest {
    echo_pb::EchoRequest {
        conversation_id: conversation_id.to_owned(),
        text: text.to_owned(),
        client_message_id: client_message_id.to_owned(),
        response_bytes,
    }
}

/// When to measure and when to stop, shared by all customers of one phase.
struct Plan {
    measure_from: Instant,
    deadline: Instant,
    message_limit: Option<u64>,
    counted: AtomicU64,
    human_share: f64,
    seed: u64,
    nl: Vec<String>,
    en: Vec<String>,
}

impl Plan {
    fn should_stop(&self) -> bool {
        Instant::now() >= self.deadline
            || self.message_limit.is_some_and(|limit| self.counted.load(Ordering::Relaxed) >= limit)
    }
}

/// What one customer saw.
#[derive(Default)]
struct Stats {
    /// SendMessage latencies in microseconds, measured window only.
    latencies_us: Vec<u32>,
    last_completion: Option<Instant>,
    /// (rpc, code) -> count, measured window only.
    errors: BTreeMap<(&'static str, String), u64>,
    kinds: BTreeMap<&'static str, u64>,
    conversations: u64,
    request_bytes: u64,
    response_bytes: u64,
    start_bytes: (u64, u64),
    end_bytes: (u64, u64),
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.last_completion = self.last_completion.max(other.last_completion);
        for (key, n) in other.errors {
            *self.errors.entry(key).or_default() += n;
        }
        for (key, n) in other.kinds {
            *self.kinds.entry(key).or_default() += n;
        }
        self.conversations += other.conversations;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.start_bytes = (self.start_bytes.0 + other.start_bytes.0, self.start_bytes.1 + other.start_bytes.1);
        self.end_bytes = (self.end_bytes.0 + other.end_bytes.0, self.end_bytes.1 + other.end_bytes.1);
    }

    fn error(&mut self, rpc: &'static str, code: Code) {
        *self.errors.entry((rpc, format!("{code:?}"))).or_default() += 1;
    }
}

fn kind_name(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Unspecified => "unspecified",
        DecisionKind::Answer => "answer",
        DecisionKind::Clarify => "clarify",
        DecisionKind::Handoff => "handoff",
        DecisionKind::SmallTalk => "small_talk",
        DecisionKind::Silent => "silent",
        DecisionKind::OffTopic => "off_topic",
        DecisionKind::Menu => "menu",
        DecisionKind::Rating => "rating",
    }
}

async fn within<T>(call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    tokio::time::timeout(RPC_TIMEOUT, call).await.unwrap_or_else(|_| Err(Status::deadline_exceeded("client timeout")))
}

/// One simulated customer: conversation after conversation until the plan says stop.
async fn customer(number: usize, mut client: Client, plan: Arc<Plan>) -> Stats {
    let mut rng = Rng::new(plan.seed.wrapping_mul(1_000_003).wrapping_add(number as u64));
    let mut stats = Stats::default();
    let customer_id = format!("bench-customer-{number}");
    let mut conversation_number = 0u64;
    while !plan.should_stop() {
        conversation_number += 1;
        let (language, texts, human) =
            if rng.chance(0.5) { ("nl", &plan.nl, HUMAN_REQUEST_NL) } else { ("en", &plan.en, HUMAN_REQUEST_EN) };
        let tier = match rng.below(10) {
            0 => pb::SupportTier::Basic,
            1 => pb::SupportTier::Advanced,
            _ => pb::SupportTier::Standard,
        };
        let conversation_id = match within(client.start(&customer_id, language, tier)).await {
            Ok((id, bytes)) => {
                stats.start_bytes = (stats.start_bytes.0 + bytes as u64, stats.start_bytes.1 + 1);
                id
            }
            Err(status) => {
                stats.error("StartConversation", status.code());
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let messages = 3 + rng.below(4);
        let ask_human_at = if rng.chance(plan.human_share) { Some(rng.below(messages)) } else { None };
        let mut last_kind = None;
        for turn in 0..messages {
            if plan.should_stop() {
                break;
            }
            // A customer asked to pick an option often answers with its number.
            let text = if ask_human_at == Some(turn) {
                human
            } else if last_kind == Some(DecisionKind::Clarify) && rng.chance(0.5) {
                "1"
            } else {
                texts[rng.below(texts.len())].as_str()
            };
            let client_message_id = format!("c{number}-{conversation_number}-{turn}");
            let began = Instant::now();
            let result = within(client.send(&conversation_id, text, &client_message_id)).await;
            let completed = Instant::now();
            let counted = began >= plan.measure_from && began < plan.deadline;
            if counted {
                plan.counted.fetch_add(1, Ordering::Relaxed);
                stats.latencies_us.push((completed - began).as_micros().min(u32::MAX as u128) as u32);
                stats.last_completion = stats.last_completion.max(Some(completed));
            }
            match result {
                Ok(sent) => {
                    last_kind = sent.kind;
                    if counted {
                        stats.request_bytes += sent.request_bytes as u64;
                        stats.response_bytes += sent.response_bytes as u64;
                        *stats.kinds.entry(sent.kind.map_or("echo", kind_name)).or_default() += 1;
                    }
                }
                Err(status) if counted => stats.error("SendMessage", status.code()),
                Err(_) => {}
            }
        }
        match within(client.end(&conversation_id)).await {
            Ok(bytes) => stats.end_bytes = (stats.end_bytes.0 + bytes as u64, stats.end_bytes.1 + 1),
            Err(status) => stats.error("EndConversation", status.code()),
        }
        stats.conversations += 1;
    }
    stats
}

// ---------------------------------------------------------------------------------------------------------------
// CPU time per thread group, from /proc (Linux clock ticks of 10 ms).

const TICK_SECONDS: f64 = 0.01;

fn thread_ticks() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the command: state is field 3, utime field 14 and stime field 15 of proc(5).
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        out.insert(tid, (comm, ticks(11) + ticks(12)));
    }
    out
}

fn group_of(comm: &str) -> &'static str {
    if comm.starts_with("server-rt") {
        "server runtime"
    } else if comm.starts_with("sqlx-sqlite") {
        "sqlite workers"
    } else if comm.starts_with("client-rt") {
        "load generator"
    } else {
        "other"
    }
}

fn cpu_by_group(
    before: &HashMap<u32, (String, u64)>,
    after: &HashMap<u32, (String, u64)>,
) -> BTreeMap<&'static str, f64> {
    let mut groups = BTreeMap::new();
    for (tid, (comm, ticks)) in after {
        let earlier = before.get(tid).map_or(0, |(_, t)| *t);
        *groups.entry(group_of(comm)).or_insert(0.0) += ticks.saturating_sub(earlier) as f64 * TICK_SECONDS;
    }
    groups
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------------------------------------------
// A phase: one target, the whole generator, and its report.

struct PhaseResult {
    name: String,
    throughput: f64,
    stats: Stats,
    cpu: BTreeMap<&'static str, f64>,
    window: Duration,
    load_before: String,
    load_after: String,
}

/// `count` channels (at least one per URL), to the `urls` in turn.
async fn channels(urls: &[String], count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for n in 0..count.max(urls.len()) {
        let url = &urls[n % urls.len()];
        let endpoint = Endpoint::from_shared(url.to_owned())?.connect_timeout(Duration::from_secs(5));
        out.push(endpoint.connect().await.with_context(|| format!("connect to {url}"))?);
    }
    Ok(out)
}

async fn run_phase(
    name: &str,
    args: &Args,
    clients: Vec<Client>,
    nl: &[String],
    en: &[String],
) -> anyhow::Result<PhaseResult> {
    let started = Instant::now();
    let plan = Arc::new(Plan {
        measure_from: started + args.warmup,
        deadline: started + args.warmup + args.duration,
        message_limit: args.messages,
        counted: AtomicU64::new(0),
        human_share: args.human_share,
        seed: args.seed,
        nl: nl.to_vec(),
        en: en.to_vec(),
    });
    let load_before = loadavg();
    let mut workers = Vec::new();
    for (number, client) in clients.into_iter().enumerate() {
        workers.push(tokio::spawn(customer(number, client, Arc::clone(&plan))));
    }
    // CPU is sampled over the measured window only.
    tokio::time::sleep_until(plan.measure_from.into()).await;
    let cpu_before = thread_ticks();
    let mut stats = Stats::default();
    let all = async {
        for worker in workers {
            stats.merge(worker.await?);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(args.warmup + args.duration + PHASE_GRACE, all)
        .await
        .map_err(|_| anyhow::anyhow!("{name}: customers did not stop within the grace period"))??;
    let cpu = cpu_by_group(&cpu_before, &thread_ticks());
    let window = stats.last_completion.map_or(Duration::ZERO, |end| end.saturating_duration_since(plan.measure_from));
    let throughput = stats.latencies_us.len() as f64 / window.as_secs_f64().max(1e-9);
    Ok(PhaseResult { name: name.to_owned(), throughput, stats, cpu, window, load_before, load_after: loadavg() })
}

/// The `p` quantile of sorted microseconds, in milliseconds (NaN without samples).
fn percentile(sorted: &[u32], p: f64) -> f64 {
    loket::quantile::nearest_rank(sorted, p).map_or(f64::NAN, |us| us as f64 / 1000.0)
}

fn report(result: &mut PhaseResult) {
    let stats = &mut result.stats;
    stats.latencies_us.sort_unstable();
    let sends = stats.latencies_us.len() as u64;
    let errors: u64 = stats.errors.values().sum();
    let l = &stats.latencies_us;
    println!(
        "| {:<22} | {:>9.0} | {:>6.2} | {:>6.2} | {:>6.2} | {:>7.2} | {:>8} | {:>6} | {:>13} | {} -> {} |",
        result.name,
        result.throughput,
        percentile(l, 0.50),
        percentile(l, 0.95),
        percentile(l, 0.99),
        percentile(l, 1.0),
        sends,
        errors,
        stats.conversations,
        result.load_before,
        result.load_after,
    );
}

fn details(result: &PhaseResult) {
    let stats = &result.stats;
    let sends = stats.latencies_us.len().max(1) as f64;
    println!("\n{} (measured window {:.2} s):", result.name, result.window.as_secs_f64());
    println!(
        "  mean SendMessage request {:.0} B, response {:.0} B; mean latency {:.2} ms",
        stats.request_bytes as f64 / sends,
        stats.response_bytes as f64 / sends,
        stats.latencies_us.iter().map(|&us| us as f64).sum::<f64>() / sends / 1000.0
    );
    if !stats.kinds.is_empty() && !stats.kinds.contains_key("echo") {
        let kinds: Vec<String> =
            stats.kinds.iter().map(|(k, n)| format!("{k} {:.1}%", 100.0 * *n as f64 / sends)).collect();
        println!("  decisions: {}", kinds.join(", "));
    }
    for ((rpc, code), n) in &stats.errors {
        println!("  errors: {rpc} {code}: {n}");
    }
    let total: f64 = result.cpu.values().sum();
    let window = result.window.as_secs_f64().max(1e-9);
    let groups: Vec<String> = result
        .cpu
        .iter()
        .map(|(group, seconds)| {
            format!("{group} {:.0}% ({:.0} µs/msg)", 100.0 * seconds / window, seconds * 1e6 / sends)
        })
        .collect();
    println!(
        "  CPU of this process: {:.0}% of one core = {:.0} µs per SendMessage; {}",
        100.0 * total / window,
        total * 1e6 / sends,
        groups.join(", ")
    );
}

fn mean(sum_count: (u64, u64), fallback: u32) -> u32 {
    sum_count.0.checked_div(sum_count.1).map_or(fallback, |mean| mean as u32)
}

async fn run(args: Args, server: Handle) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.channels == 0 {
        bail!("--concurrency and --channels must be positive");
    }
    let phrasings = phrasings::load(&phrasings::manifest_dir().join(&args.phrasings));
    let (nl, en) = (phrasings::texts_in(&phrasings, "nl"), phrasings::texts_in(&phrasings, "en"));
    if nl.is_empty() || en.is_empty() {
        bail!("{} needs nl and en phrasings", args.phrasings.display());
    }
    println!(
        "loket loadgen: {} concurrent customers on {} HTTP/2 channels, {:.1} s warm-up + {:.1} s measured{}, \
         {:.0}% ask for a person, seed {}; {} nl + {} en phrasings; TCP_NODELAY {}; {} cores; load {}",
        args.concurrency,
        args.channels,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64(),
        args.messages.map(|n| format!(" (or {n} messages)")).unwrap_or_default(),
        100.0 * args.human_share,
        args.seed,
        nl.len(),
        en.len(),
        if args.nodelay { "on" } else { "off (as shipped)" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
    );
    let mut results = Vec::new();
    let mut sizes = Sizes { start: 400, send: 1200, end: 4000 };

    if matches!(args.run, Which::Loket | Which::Both) {
        let data_dir = tempfile::tempdir()?;
        let mut webhooks = None;
        let (urls, running, name) = match &args.target[..] {
            [] => {
                let webhook = match args.webhook {
                    true => {
                        // On the customers' runtime: the server runtime's CPU stays loket's own, deliverer included.
                        let receiver = receiver::Receiver::start().await?;
                        let url = receiver.url();
                        webhooks = Some(receiver);
                        Some((url, args.webhook_events.clone()))
                    }
                    false => None,
                };
                let running = start_loket(&server, data_dir.path().to_owned(), args.nodelay, webhook).await?;
                (vec![running.url.clone()], Some(running), "loket (in-process)".to_owned())
            }
            [target] => (vec![loopback_url(target)?], None, format!("loket {target}")),
            targets => {
                let urls = targets.iter().map(|t| loopback_url(t)).collect::<anyhow::Result<Vec<_>>>()?;
                (urls, None, format!("loket, {} replicas", targets.len()))
            }
        };
        let shared = channels(&urls, args.channels).await?;
        let clients = (0..args.concurrency)
            .map(|i| Client::Loket(ChatServiceClient::new(shared[i % shared.len()].clone())))
            .collect();
        let result = run_phase(&name, &args, clients, &nl, &en).await?;
        let s = &result.stats;
        let sends = (s.response_bytes, s.latencies_us.len() as u64);
        sizes = Sizes { start: mean(s.start_bytes, 400), send: mean(sends, 1200), end: mean(s.end_bytes, 4000) };
        results.push(result);
        drop(shared);
        if let Some(running) = running {
            running.stop().await?;
        }
        if let Some(receiver) = webhooks {
            let (requests, events) = receiver.counts();
            let subscribed = if args.webhook_events.is_empty() { "all".into() } else { args.webhook_events.join(",") };
            println!("webhook receiver: {requests} requests, {events} distinct events (subscribed: {subscribed})");
        }
    }
    if matches!(args.run, Which::Echo | Which::Both) {
        let running = start_echo(&server, args.nodelay).await?;
        let shared = channels(std::slice::from_ref(&running.url), args.channels).await?;
        let clients = (0..args.concurrency)
            .map(|i| Client::Echo {
                client: echo_pb::echo_service_client::EchoServiceClient::new(shared[i % shared.len()].clone()),
                sizes,
            })
            .collect();
        results.push(run_phase("echo (in-process)", &args, clients, &nl, &en).await?);
        drop(shared);
        running.stop().await?;
    }

    println!(
        "\n| target                 | SendMsg/s | p50 ms | p95 ms | p99 ms |  max ms | messages | errors | conversations | load 1/5/15 min before -> after |"
    );
    println!(
        "|------------------------|----------:|-------:|-------:|-------:|--------:|---------:|-------:|--------------:|---|"
    );
    for result in &mut results {
        report(result);
    }
    for result in &results {
        details(result);
    }
    if let [loket, echo] = &results[..] {
        println!(
            "\nloket/echo throughput ratio: {:.1}% ({:.0} / {:.0} SendMessage/s; echo responses padded to {} B)",
            100.0 * loket.throughput / echo.throughput,
            loket.throughput,
            echo.throughput,
            sizes.send
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The servers run on their own runtime and the customers on another, both as wide as the machine, so that
    // /proc tells server CPU from generator CPU; they share the same cores, as a client on this host would.
    let server = tokio::runtime::Builder::new_multi_thread().thread_name("server-rt").enable_all().build()?;
    let client = tokio::runtime::Builder::new_multi_thread().thread_name("client-rt").enable_all().build()?;
    let result = client.block_on(run(args, server.handle().clone()));
    server.shutdown_timeout(Duration::from_secs(5));
    result
}
