//! Starts a loket server on a pre-bound loopback listener with its own data directory and hands out clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use loket::App;
use loket::access::Role;
use loket::clock::ManualClock;
use loket::config::Config;
use loket::server::pb::admin_service_client::AdminServiceClient;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::knowledge_service_client::KnowledgeServiceClient;
use loket::server::pb::stats_service_client::StatsServiceClient;
use loket::server::pb::{self, SendMessageResponse, StartConversationResponse};
use loket::store::{SqliteStore, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub fn knowledge_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge-base")
}

pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.knowledge.dir = knowledge_dir();
    config.storage.data_dir = data_dir.to_owned();
    config.intent.model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/intent");
    // Background retrains take seconds of CPU: only the tests about them turn them on.
    config.knowledge.retrain = false;
    // Rate limits have their own test; elsewhere tests send as fast as they can.
    config.limits.requests_per_second_per_key = 0.0;
    config.limits.messages_per_minute_per_conversation = 0.0;
    config.web.widget_starts_per_minute_per_address = 0.0;
    config
}

/// Wednesday 2026-11-25 10:00 in Amsterdam: inside the default office hours.
pub const WEDNESDAY_10AM: i64 = 1_795_597_200_000;
/// Sunday 2026-11-29 12:00 in Amsterdam: closed.
pub const SUNDAY_NOON: i64 = 1_795_950_000_000;

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, when the test asked for metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// The server's clock; tests advance it to make time pass.
    pub clock: Arc<ManualClock>,
    /// One API key per role, made at start.
    pub keys: Keys,
    /// Agent keys made on demand by `agent_as`, by agent name.
    agent_keys: Mutex<HashMap<String, String>>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl TestServer {
    /// Serves `config` on 127.0.0.1 with an OS-chosen port.
    pub async fn start(config: Config) -> TestServer {
        Self::start_at(config, WEDNESDAY_10AM).await
    }

    /// Serves with the clock standing at `millis` (it moves only when the test advances it).
    pub async fn start_at(config: Config, millis: i64) -> TestServer {
        Self::launch(config, millis, false).await
    }

    /// Also serves Prometheus metrics on another OS-chosen loopback port (off in every other test).
    pub async fn start_with_metrics(config: Config) -> TestServer {
        Self::launch(config, WEDNESDAY_10AM, true).await
    }

    /// Serves `config` on a store of the test's choosing (another backend).
    pub async fn start_on(config: Config, store: Arc<dyn Store>) -> TestServer {
        Self::launch_on(config, WEDNESDAY_10AM, false, Some(store)).await
    }

    async fn launch(config: Config, millis: i64, with_metrics: bool) -> TestServer {
        Self::launch_on(config, millis, with_metrics, None).await
    }

    async fn launch_on(config: Config, millis: i64, with_metrics: bool, store: Option<Arc<dyn Store>>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let metrics = match with_metrics {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback")),
            false => None,
        };
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr().unwrap());
        let clock = Arc::new(ManualClock::new(millis));
        let data_dir = config.storage.data_dir.clone();
        let store = match store {
            Some(store) => store,
            None => Arc::new(SqliteStore::open(&config.storage.data_dir).await.expect("open store")),
        };
        let app = App::build_with(config, store, clock.clone()).await.expect("app builds");
        let key = |role, name: &str, skills: &[&str]| {
            let access = Arc::clone(&app.access);
            let (name, skills) = (name.to_owned(), skills.iter().map(|s| s.to_string()).collect());
            async move { access.create_key(&name, role, skills, "", "test").await.expect("create key").token }
        };
        // A restart on the same data directory keeps the keys (and so the conversations' owners): the tokens
        // are kept beside the database, as an operator would keep them.
        let saved = data_dir.join("test-keys.txt");
        let keys = match std::fs::read_to_string(&saved) {
            Ok(text) => {
                let t: Vec<String> = text.lines().map(str::to_owned).collect();
                Keys {
                    client: t[0].clone(),
                    other_client: t[1].clone(),
                    agent: t[2].clone(),
                    editor: t[3].clone(),
                    admin: t[4].clone(),
                }
            }
            Err(_) => {
                let keys = Keys {
                    client: key(Role::Client, "widget", &[]).await,
                    other_client: key(Role::Client, "other widget", &[]).await,
                    agent: key(Role::Agent, DEFAULT_AGENT, &[]).await,
                    editor: key(Role::Editor, "editor", &[]).await,
                    admin: key(Role::Admin, "admin", &[]).await,
                };
                let lines = [&keys.client, &keys.other_client, &keys.agent, &keys.editor, &keys.admin];
                std::fs::write(&saved, lines.map(String::as_str).join("\n")).expect("save test keys");
                keys
            }
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.serve_with_metrics(listener, metrics, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestServer { addr, metrics_addr, clock, keys, agent_keys: Mutex::default(), shutdown: Some(tx), handle }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.expect("connect")
    }

    /// A channel whose requests carry `token` as their bearer credential.
    pub async fn authed(&self, token: &str) -> Authed {
        InterceptedService::new(self.channel().await, Bearer::new(token))
    }

    /// A front-end's client (CLIENT key).
    pub async fn chat(&self) -> ChatServiceClient<Authed> {
        ChatServiceClient::new(self.authed(&self.keys.client).await)
    }

    /// An agent console's client (AGENT key of agent [`DEFAULT_AGENT`], all skills).
    pub async fn agent(&self) -> AgentServiceClient<Authed> {
        AgentServiceClient::new(self.authed(&self.keys.agent).await)
    }

    /// The console of agent `name` (AGENT key named `name`, all skills): what it does is attributed to `name`.
    /// The key is made on first use and reused after.
    pub async fn agent_as(&self, name: &str) -> AgentServiceClient<Authed> {
        let known = self.agent_keys.lock().unwrap().get(name).cloned();
        let token = match known {
            Some(token) => token,
            None => {
                let token = self.agent_key(name, &[]).await;
                self.agent_keys.lock().unwrap().insert(name.to_owned(), token.clone());
                token
            }
        };
        AgentServiceClient::new(self.authed(&token).await)
    }

    /// A new AGENT key of agent `name` for `skills` (empty: all), made through `CreateApiKey` as an operator would.
    pub async fn agent_key(&self, name: &str, skills: &[&str]) -> String {
        let request = pb::CreateApiKeyRequest {
            name: name.to_owned(),
            role: pb::Role::Agent.into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            display_name: String::new(),
        };
        self.admin().await.create_api_key(request).await.expect("create agent key").into_inner().token
    }

    /// AgentService with the ADMIN key, which must name the agent it acts for.
    pub async fn agent_admin(&self) -> AgentServiceClient<Authed> {
        AgentServiceClient::new(self.authed(&self.keys.admin).await)
    }

    /// A knowledge editor's client (EDITOR key).
    pub async fn knowledge(&self) -> KnowledgeServiceClient<Authed> {
        KnowledgeServiceClient::new(self.authed(&self.keys.editor).await)
    }

    /// KPIs, as an editor.
    pub async fn stats(&self) -> StatsServiceClient<Authed> {
        StatsServiceClient::new(self.authed(&self.keys.editor).await)
    }

    /// The administrators' client (ADMIN key).
    pub async fn admin(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::new(self.authed(&self.keys.admin).await)
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await.expect("server task");
    }
}

/// The agent whose key `TestServer::agent` uses.
pub const DEFAULT_AGENT: &str = "agent";

/// The bearer tokens the test server made, one per role (and a second client).
pub struct Keys {
    pub client: String,
    pub other_client: String,
    pub agent: String,
    pub editor: String,
    pub admin: String,
}

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: &str) -> Bearer {
        Bearer(Some(format!("Bearer {token}").parse().expect("ascii token")))
    }

    /// No credential at all.
    pub fn none() -> Bearer {
        Bearer(None)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// Connects to `url` with `token` as the bearer credential.
pub async fn connect_authed(url: &str, token: &str) -> Authed {
    let channel = Channel::from_shared(url.to_owned()).unwrap().connect().await.expect("connect");
    InterceptedService::new(channel, Bearer::new(token))
}

/// `loket keys create` against a data directory (as an operator would), returning the printed key.
pub fn create_key_with_cli(data_dir: &Path, role: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["keys", "create", "--role", role, "--name", "test", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run loket keys create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Logs go to stderr: stdout is the key alone, ready for a script to capture.
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.trim().starts_with("lk_") && stdout.trim().lines().count() == 1, "stdout: {stdout:?}");
    stdout.trim().to_owned()
}

/// A server on a fresh temporary data directory (kept alive by the returned guard).
pub async fn fresh_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    (server, dir)
}

pub async fn start_conversation(chat: &mut ChatServiceClient<Authed>, language: &str) -> StartConversationResponse {
    chat.start_conversation(pb::StartConversationRequest {
        customer_id: "customer-1".into(),
        tier: pb::SupportTier::Standard.into(),
        channel: pb::Channel::Chat.into(),
        language: language.into(),
        metadata: Default::default(),
        customer_id_signature: String::new(),
    })
    .await
    .expect("start conversation")
    .into_inner()
}

pub fn conversation_id(started: &StartConversationResponse) -> String {
    started.conversation.as_ref().unwrap().conversation_id.clone()
}

pub async fn send(chat: &mut ChatServiceClient<Authed>, conversation_id: &str, text: &str) -> SendMessageResponse {
    chat.send_message(pb::SendMessageRequest {
        conversation_id: conversation_id.into(),
        text: text.into(),
        client_message_id: String::new(),
    })
    .await
    .unwrap_or_else(|status| panic!("send {text:?}: {status}"))
    .into_inner()
}

pub fn kind(response: &SendMessageResponse) -> pb::DecisionKind {
    response.decision.as_ref().unwrap().kind()
}

/// The entry answered, else search's best match.
pub fn top_faq(response: &SendMessageResponse) -> String {
    let decision = response.decision.as_ref().unwrap();
    if !decision.answer_faq_id.is_empty() {
        return decision.answer_faq_id.clone();
    }
    decision.faq_matches.first().map(|m| m.faq_id.clone()).unwrap_or_default()
}

/// Agents "alice" and "bob" (clients with their keys: `agent_as("alice")`, `agent_as("bob")`) claim the same
/// hand-off at once: exactly one wins, the other gets FAILED_PRECONDITION. Returns the winner's name.
pub async fn race_to_claim(
    alice: &AgentServiceClient<Authed>,
    bob: &AgentServiceClient<Authed>,
    handoff_id: &str,
) -> &'static str {
    let claim = |agent: &AgentServiceClient<Authed>, name: &str| {
        let mut agent = agent.clone();
        let request = pb::ClaimHandoffRequest { handoff_id: handoff_id.to_owned(), agent_id: name.into() };
        async move { agent.claim_handoff(request).await }
    };
    let (by_alice, by_bob) = tokio::join!(claim(alice, "alice"), claim(bob, "bob"));
    let (winner, loser) = match (&by_alice, &by_bob) {
        (Ok(_), Err(status)) => ("alice", status),
        (Err(status), Ok(_)) => ("bob", status),
        _ => panic!("exactly one claim must win: {by_alice:?} {by_bob:?}"),
    };
    assert_eq!(loser.code(), tonic::Code::FailedPrecondition);
    winner
}

/// The hand-off as stored, with its transcript (read with the admin key, which may read any).
pub async fn stored_handoff(server: &TestServer, handoff_id: &str) -> pb::Handoff {
    let request = pb::GetHandoffRequest { handoff_id: handoff_id.into() };
    server.agent_admin().await.get_handoff(request).await.unwrap().into_inner()
}

pub fn message_of(event: &pb::ConversationEvent) -> Option<&pb::Message> {
    match &event.event {
        Some(pb::conversation_event::Event::Message(m)) => Some(m),
        _ => None,
    }
}

/// Starts a Dutch conversation, asks a returns question (answered), then asks for a person (handed off, the
/// conversation queued). Returns the conversation id, the seq of its last event and the hand-off response.
pub async fn ask_for_a_person(
    chat: &mut ChatServiceClient<Authed>,
    customer: &str,
) -> (String, u64, pb::SendMessageResponse) {
    let started = chat
        .start_conversation(pb::StartConversationRequest {
            customer_id: customer.into(),
            language: "nl".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = conversation_id(&started);
    let answered = send(chat, &id, "hoe stuur ik een artikel retour").await;
    assert_eq!(kind(&answered), pb::DecisionKind::Answer);
    let handed = send(chat, &id, "ik wil een medewerker spreken").await;
    assert_eq!(kind(&handed), pb::DecisionKind::Handoff);
    assert_eq!(handed.state(), pb::ConversationState::Queued);
    let last_seq = handed.replies.last().unwrap().seq + 1;
    (id, last_seq, handed)
}
