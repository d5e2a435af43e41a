//! Outbound webhooks against a real HTTP receiver on a loopback port: every event signed with its documented
//! fields, a receiver down for 10 s, receivers that fail (500, hanging, redirecting) until the deliveries are
//! listed as failed and redelivered, configuration errors, `kill -9` of loket with deliveries outstanding, and two
//! replicas on one PostgreSQL delivering each event once.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use loket::config::{Config, WebhookConfig};
use loket::server::pb;
use loket::server::pb::chat_service_client::ChatServiceClient;
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::crash::spawn_loket;
use crate::harness::*;
use crate::postgres::TestPostgres;

const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes!";

/// What the receiver does with a request.
#[derive(Debug, Clone, PartialEq)]
enum Behaviour {
    Accept,
    Status(u16),
    /// Never answers.
    Hang,
    /// Answers 302 to this location.
    Redirect(String),
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    event: String,
    event_id: String,
    delivery: String,
    attempt: u32,
    signature: String,
    body: String,
    /// Whether it was answered 2xx.
    accepted: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Log {
    behaviour: Option<Behaviour>,
    received: Vec<Received>,
}

/// A webhook receiver: HTTP/1.1 on a loopback port, recording every request. Stopping it closes the listener and
/// every connection, so the port refuses connections until it starts again on the same port.
struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let log = Arc::new(Mutex::new(Log { behaviour: Some(behaviour), received: Vec::new() }));
        let addr = listener.local_addr().unwrap();
        let task = Some(tokio::spawn(serve(listener, Arc::clone(&log))));
        Receiver { addr, log, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/loket", self.addr)
    }

    fn set(&self, behaviour: Behaviour) {
        self.log.lock().unwrap().behaviour = Some(behaviour);
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restart(&mut self) {
        self.stop();
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("the receiver's port again");
        self.task = Some(tokio::spawn(serve(listener, Arc::clone(&self.log))));
    }

    /// Waits until `done` holds for what was accepted, or panics after `within`.
    async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(started.elapsed() < within, "{what}: not within {within:?}; received {:#?}", self.received());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves until aborted; the connections live in the task's own set, so aborting closes them too.
async fn serve(listener: tokio::net::TcpListener, log: Arc<Mutex<Log>>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let log = Arc::clone(&log);
        connections.spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let log = Arc::clone(&log);
                async move { Ok::<_, Infallible>(answer(request, &log).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: hyper::Request<hyper::body::Incoming>, log: &Mutex<Log>) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| request.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (event, event_id, delivery) = (header("loket-event"), header("loket-event-id"), header("loket-delivery"));
    let (attempt, signature) = (header("loket-attempt").parse().unwrap_or(0), header("loket-signature"));
    let body = String::from_utf8(request.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let behaviour = log.lock().unwrap().behaviour.clone().unwrap_or(Behaviour::Accept);
    let mut received = Received { event, event_id, delivery, attempt, signature, body, accepted: false };
    let response = match behaviour {
        Behaviour::Accept => {
            received.accepted = true;
            hyper::Response::new(Full::new(Bytes::from_static(b"ok")))
        }
        Behaviour::Status(status) => hyper::Response::builder().status(status).body(Full::new(Bytes::new())).unwrap(),
        Behaviour::Redirect(location) => {
            hyper::Response::builder().status(302).header("location", location).body(Full::new(Bytes::new())).unwrap()
        }
        Behaviour::Hang => {
            log.lock().unwrap().received.push(received);
            std::future::pending::<()>().await;
            unreachable!()
        }
    };
    log.lock().unwrap().received.push(received);
    response
}

/// Checks a `loket-signature` header as docs/webhooks.md tells receivers to: HMAC-SHA256 of "<t>.<body>" under
/// the secret, hex, with `t` within five minutes of now.
fn signature_verifies(secret: &str, header: &str, body: &str) -> bool {
    let parts: HashMap<&str, &str> = header.split(',').filter_map(|p| p.split_once('=')).collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - t.parse::<i64>().unwrap()).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == *v1
}

fn webhook(name: &str, url: &str, events: &[&str]) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url: url.into(),
        secret: SECRET.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        timeout_ms: 2000,
    }
}

const ALL_EVENTS: [&str; 7] = [
    "handoff.created",
    "handoff.claimed",
    "handoff.transferred",
    "handoff.resolved",
    "conversation.rated",
    "knowledge_gap.created",
    "faq.changed",
];

/// Quick retries for tests, and loopback receivers allowed.
fn config_with(dir: &std::path::Path, webhooks: Vec<WebhookConfig>) -> Config {
    let mut config = test_config(dir);
    config.webhooks = webhooks;
    config.webhook_delivery.allow_private_addresses = true;
    config.webhook_delivery.backoff_base_ms = 100;
    config.webhook_delivery.backoff_max_ms = 500;
    config.webhook_delivery.poll_ms = 50;
    config
}

/// The queued hand-off of conversation `id`.
async fn handoff_of(server: &TestServer, id: &str) -> String {
    let mut agent = server.agent().await;
    let request = pb::ListHandoffsRequest { state: pb::HandoffState::Queued.into(), ..Default::default() };
    let handoffs = agent.list_handoffs(request).await.unwrap().into_inner().handoffs;
    handoffs.into_iter().find(|h| h.conversation_id == id).expect("queued hand-off").handoff_id
}

#[tokio::test]
async fn every_event_is_delivered_signed_with_its_documented_fields_in_conversation_order() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_metrics(config_with(dir.path(), vec![webhook("crm", &receiver.url(), &ALL_EVENTS)]))
            .await;
    let mut chat = server.chat().await;

    // A hand-off through its whole life: created, claimed, transferred, claimed again, resolved, rated.
    let (id, _, _) = ask_for_a_person(&mut chat, "customer-42").await;
    let handoff_id = handoff_of(&server, &id).await;
    let mut agent = server.agent().await;
    let claim = pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: String::new() };
    agent.claim_handoff(claim.clone()).await.unwrap();
    let transfer = pb::TransferHandoffRequest {
        handoff_id: handoff_id.clone(),
        agent_id: String::new(),
        skill: "billing".into(),
        note: "dubbele afschrijving, bel 06-12345678".into(),
    };
    agent.transfer_handoff(transfer).await.unwrap();
    agent.claim_handoff(claim).await.unwrap();
    let resolve = pb::ResolveHandoffRequest {
        handoff_id: handoff_id.clone(),
        agent_id: String::new(),
        note: "terugbetaald".into(),
    };
    agent.resolve_handoff(resolve).await.unwrap();
    let rate = pb::RateConversationRequest { conversation_id: id.clone(), score: 4, comment: "snel geholpen".into() };
    chat.rate_conversation(rate).await.unwrap();
    // A question nobody can answer: a knowledge gap, redacted.
    let other = conversation_id(&start_conversation(&mut chat, "en").await);
    send(&mut chat, &other, "may I bring my parrot into your shop? mail me at jan@example.com").await;
    // An FAQ entry created by an editor.
    let mut knowledge = server.knowledge().await;
    let faq = crate::knowledge::gift_cards();
    knowledge.create_faq(pb::CreateFaqRequest { faq: Some(faq), author: "editor-anna".into() }).await.unwrap();

    let received = receiver
        .wait_for(Duration::from_secs(20), "every event type", |got| {
            ALL_EVENTS.iter().all(|e| got.iter().any(|r| r.event == *e))
                && got.iter().filter(|r| r.event == "handoff.claimed").count() == 2
        })
        .await;
    for request in &received {
        assert!(signature_verifies(SECRET, &request.signature, &request.body), "signature of {request:?}");
        assert!(!signature_verifies("another secret, also 32 bytes long!!", &request.signature, &request.body));
        let body = request.json();
        assert_eq!(body["version"], 1);
        assert_eq!(body["type"], request.event.as_str());
        assert_eq!(body["id"], request.event_id.as_str());
        assert!(body["created_at"].as_str().unwrap().ends_with('Z'), "{body}");
        assert_eq!(request.attempt, 1, "nothing failed, so every delivery took one attempt");
    }
    let of = |event: &str| received.iter().find(|r| r.event == event).unwrap().json()["data"].clone();
    let created = of("handoff.created");
    assert_eq!(created["handoff_id"], handoff_id.as_str());
    assert_eq!(created["conversation_id"], id.as_str());
    assert_eq!(created["customer_id"], "customer-42");
    assert_eq!(created["reason"], "customer_request");
    assert_eq!((created["tier"].as_str(), created["channel"].as_str()), (Some("standard"), Some("chat")));
    assert!(created["summary"].as_str().unwrap().contains("retour"), "{created}");
    for field in ["skill", "priority", "language", "callback", "expected_pickup_at"] {
        assert!(!created[field].is_null(), "handoff.created has {field}: {created}");
    }
    let claimed = of("handoff.claimed");
    assert_eq!(
        (claimed["handoff_id"].as_str(), claimed["agent_id"].as_str()),
        (Some(&*handoff_id), Some(DEFAULT_AGENT))
    );
    assert!(claimed["wait_seconds"].is_number() && claimed.get("customer_id").is_none(), "{claimed}");
    let transferred = of("handoff.transferred");
    assert_eq!(transferred["to_skill"], "billing");
    assert_eq!(transferred["note"], "dubbele afschrijving, bel [phone]", "redacted like the knowledge gaps");
    let resolved = of("handoff.resolved");
    assert_eq!((resolved["skill"].as_str(), resolved["note"].as_str()), (Some("billing"), Some("terugbetaald")));
    let rated = of("conversation.rated");
    assert_eq!((rated["score"].as_u64(), rated["comment"].as_str()), (Some(4), Some("snel geholpen")));
    assert_eq!(rated["handoff_id"], handoff_id.as_str());
    let gap = of("knowledge_gap.created");
    assert_eq!(gap["conversation_id"], other.as_str());
    let text = gap["text"].as_str().unwrap();
    assert!(text.contains("parrot") && text.contains("[email]") && !text.contains("jan@"), "{gap}");
    let faq = of("faq.changed");
    assert_eq!((faq["faq_id"].as_str(), faq["action"].as_str()), (Some("gift-cards"), Some("create")));
    assert_eq!((faq["revision"].as_i64(), faq["author"].as_str()), (Some(1), Some("editor-anna")));
    assert!(faq.get("translations").is_none(), "ids, not content: {faq}");

    // The hand-off's events arrived in the order they happened.
    let order: Vec<&str> = received
        .iter()
        .filter(|r| r.json()["data"]["conversation_id"] == id.as_str())
        .map(|r| r.event.as_str())
        .collect();
    let expected = [
        "handoff.created",
        "handoff.claimed",
        "handoff.transferred",
        "handoff.claimed",
        "handoff.resolved",
        "conversation.rated",
    ];
    assert_eq!(order, expected);

    let metrics = reqwest_metrics(server.metrics_addr.unwrap()).await;
    assert!(metrics.contains("loket_webhook_attempts_total{webhook=\"crm\",outcome=\"delivered\"}"), "{metrics}");
    assert!(metrics.contains("loket_webhook_outbox{webhook=\"crm\",state=\"pending\"} 0"), "{metrics}");
    server.stop().await;
}

/// `GET /metrics` over a plain TCP connection.
async fn reqwest_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET /metrics HTTP/1.0\r\nhost: loket\r\n\r\n").await.unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn a_receiver_down_for_ten_seconds_gets_everything_once_back_in_order_and_no_attempt_twice() {
    let mut receiver = Receiver::start(Behaviour::Accept).await;
    receiver.stop();
    let dir = tempfile::tempdir().unwrap();
    let events = ["handoff.created", "handoff.claimed", "handoff.resolved"];
    let mut config = config_with(dir.path(), vec![webhook("desk", &receiver.url(), &events)]);
    // Enough attempts at these short waits to outlast the outage (a failed one would let the next one pass).
    config.webhook_delivery.max_attempts = 100;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    let mut conversations = Vec::new();
    let started = Instant::now();
    for n in 0..6 {
        let (id, _, _) = ask_for_a_person(&mut chat, &format!("customer-{n}")).await;
        let handoff_id = handoff_of(&server, &id).await;
        agent
            .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: String::new() })
            .await
            .unwrap();
        let resolve = pb::ResolveHandoffRequest { handoff_id, agent_id: String::new(), note: String::new() };
        agent.resolve_handoff(resolve).await.unwrap();
        conversations.push(id);
    }
    // Conversations go on while nothing can be delivered.
    assert!(started.elapsed() < Duration::from_secs(5), "conversations were held up: {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(receiver.received().is_empty());
    receiver.restart().await;

    let accepted = receiver
        .wait_for(Duration::from_secs(15), "all 18 events", |got| {
            got.iter().map(|r| &r.event_id).collect::<HashSet<_>>().len() == 18
        })
        .await;
    let attempts: Vec<(String, u32)> = receiver.received().iter().map(|r| (r.delivery.clone(), r.attempt)).collect();
    let unique: HashSet<&(String, u32)> = attempts.iter().collect();
    assert_eq!(unique.len(), attempts.len(), "an attempt id came twice: {attempts:?}");
    assert!(accepted.iter().any(|r| r.attempt > 1), "they were retried after the receiver came back");
    for id in &conversations {
        let order: Vec<&str> = accepted
            .iter()
            .filter(|r| r.json()["data"]["conversation_id"] == id.as_str())
            .map(|r| r.event.as_str())
            .collect();
        assert_eq!(order, events, "conversation {id}");
    }
    server.stop().await;
}

#[tokio::test]
async fn failing_receivers_end_as_failed_deliveries_with_their_reason_which_are_listed_and_redelivered() {
    let broken = Receiver::start(Behaviour::Status(500)).await;
    let hanging = Receiver::start(Behaviour::Hang).await;
    let redirecting = Receiver::start(Behaviour::Redirect("http://10.0.0.1/internal".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut slow = webhook("slow", &hanging.url(), &["handoff.created"]);
    slow.timeout_ms = 300;
    let webhooks = vec![
        webhook("broken", &broken.url(), &["handoff.created"]),
        slow,
        webhook("moved", &redirecting.url(), &["handoff.created"]),
    ];
    let mut config = config_with(dir.path(), webhooks);
    config.webhook_delivery.max_attempts = 2;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let (id, _, _) = ask_for_a_person(&mut chat, "customer-1").await;
    // The conversation is not held up: the customer is answered while the receivers fail.
    let answered = send(&mut chat, &id, "hallo?").await;
    assert_eq!(kind(&answered), pb::DecisionKind::Silent);

    let mut admin = server.admin().await;
    let started = Instant::now();
    let failed = loop {
        let list = admin.list_failed_deliveries(pb::ListFailedDeliveriesRequest::default()).await.unwrap().into_inner();
        if list.deliveries.len() == 3 {
            break list.deliveries;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "3 failed deliveries: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = |webhook: &str| failed.iter().find(|d| d.webhook == webhook).unwrap().last_error.clone();
    assert_eq!(reason("broken"), "answered HTTP 500");
    assert!(reason("slow").contains("no answer within 300 ms"), "{}", reason("slow"));
    assert!(
        reason("moved").contains("redirect to http://10.0.0.1/internal") && reason("moved").contains("not followed")
    );
    for delivery in &failed {
        assert_eq!((delivery.attempts, delivery.event_type.as_str()), (2, "handoff.created"), "{delivery:?}");
        assert_eq!(delivery.conversation_id, id);
        assert!(delivery.fail_time.is_some() && delivery.create_time.is_some());
        assert_eq!(serde_json::from_str::<Value>(&delivery.payload).unwrap()["type"], "handoff.created");
    }
    assert_eq!(broken.received().len(), 2);
    assert!(redirecting.received().len() == 2, "the redirect was not followed");

    // Paged: one at a time, with a token bound to the filter.
    let first = pb::ListFailedDeliveriesRequest { page_size: 1, ..Default::default() };
    let page = admin.list_failed_deliveries(first).await.unwrap().into_inner();
    assert_eq!(page.deliveries.len(), 1);
    let next = pb::ListFailedDeliveriesRequest {
        page_size: 5,
        page_token: page.next_page_token.clone(),
        ..Default::default()
    };
    assert_eq!(admin.list_failed_deliveries(next).await.unwrap().into_inner().deliveries.len(), 2);
    let other = pb::ListFailedDeliveriesRequest {
        page_token: page.next_page_token,
        webhook: "broken".into(),
        ..Default::default()
    };
    assert_eq!(admin.list_failed_deliveries(other).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let only = pb::ListFailedDeliveriesRequest { webhook: "moved".into(), ..Default::default() };
    assert_eq!(admin.list_failed_deliveries(only).await.unwrap().into_inner().deliveries.len(), 1);

    // Fixed receivers get their deliveries again: one by id, the other by webhook.
    broken.set(Behaviour::Accept);
    hanging.set(Behaviour::Accept);
    let broken_id = failed.iter().find(|d| d.webhook == "broken").unwrap().delivery_id.clone();
    let one = pb::RedeliverWebhookRequest { delivery_id: broken_id.clone(), webhook: String::new() };
    assert_eq!(admin.redeliver_webhook(one.clone()).await.unwrap().into_inner().redelivered, 1);
    let all = pb::RedeliverWebhookRequest { delivery_id: String::new(), webhook: "slow".into() };
    assert_eq!(admin.redeliver_webhook(all).await.unwrap().into_inner().redelivered, 1);
    let got = broken.wait_for(Duration::from_secs(10), "the redelivery", |got| got.len() == 1).await;
    assert_eq!((got[0].delivery.as_str(), got[0].attempt), (broken_id.as_str(), 3), "attempt ids go on counting");
    hanging.wait_for(Duration::from_secs(10), "the redelivery", |got| got.len() == 1).await;
    let started = Instant::now();
    while admin
        .list_failed_deliveries(pb::ListFailedDeliveriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .deliveries
        .len()
        != 1
    {
        assert!(started.elapsed() < Duration::from_secs(10), "delivered ones leave the failed list");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A delivery that is no longer failed, both or neither target, and a client key are refused.
    assert_eq!(admin.redeliver_webhook(one).await.unwrap_err().code(), tonic::Code::NotFound);
    let both = pb::RedeliverWebhookRequest { delivery_id: broken_id, webhook: "broken".into() };
    assert_eq!(admin.redeliver_webhook(both).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mut client =
        loket::server::pb::admin_service_client::AdminServiceClient::new(server.authed(&server.keys.client).await);
    let denied = client.list_failed_deliveries(pb::ListFailedDeliveriesRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    // Erasing the customer erases what is kept about them for webhooks too.
    admin.erase_customer(pb::EraseCustomerRequest { customer_id: "customer-1".into() }).await.unwrap();
    let left = admin.list_failed_deliveries(pb::ListFailedDeliveriesRequest::default()).await.unwrap().into_inner();
    assert!(left.deliveries.is_empty(), "{left:?}");
    server.stop().await;
}

#[test]
fn bad_webhooks_are_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loket.toml");
    let good = format!(
        "name = \"crm\"\nurl = \"https://crm.example.com/hooks\"\nsecret = \"{SECRET}\"\nevents = [\"handoff.created\"]\n"
    );
    for (webhook, says) in [
        (good.replace("https://crm", "http://crm"), "webhooks[0] (crm).url"),
        (good.replace("crm.example.com", "10.0.0.7"), "private address"),
        (good.replace(SECRET, "short"), "webhooks[0] (crm).secret"),
        (good.replace("handoff.created", "handoff.opened"), "unknown event \"handoff.opened\""),
        (format!("{good}timeout_ms = 0\n"), "webhooks[0] (crm).timeout_ms"),
        (format!("{good}retries = 3\n"), "retries"),
    ] {
        std::fs::write(&file, format!("[[webhooks]]\n{webhook}")).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
            .args(["serve", "--listen", "127.0.0.1:0", "--no-metrics", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{webhook:?} was accepted");
        assert!(text.contains(says), "{webhook:?}: the error does not say {says:?}: {text}");
    }
    std::fs::write(&file, format!("[[webhooks]]\n{good}")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("webhooks") && text.contains("crm"), "{text}");
    assert!(!text.contains(SECRET), "the secret is never printed: {text}");
}

/// A config file with one loopback webhook for a spawned `loket serve`.
fn webhook_config_file(dir: &std::path::Path, url: &str, timeout_ms: u64) -> std::path::PathBuf {
    let file = dir.join("loket.toml");
    let text = format!(
        "[[webhooks]]\nname = \"crm\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = [\"handoff.created\"]\n\
         timeout_ms = {timeout_ms}\n\n[webhook_delivery]\nallow_private_addresses = true\nbackoff_base_ms = 100\n\
         backoff_max_ms = 500\npoll_ms = 50\n"
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test]
async fn kill_9_with_deliveries_in_flight_delivers_them_after_restart() {
    // The receiver holds every request: when loket is killed, its deliveries are claimed and under way.
    let receiver = Receiver::start(Behaviour::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let config = webhook_config_file(dir.path(), &receiver.url(), 30_000);
    let admin = create_key_with_cli(dir.path(), "admin");
    let args = ["--no-metrics", "--config", config.to_str().unwrap()];
    let (mut child, url) = spawn_loket(dir.path(), &args);
    let mut chat = ChatServiceClient::new(connect_authed(&url, &admin).await);
    let mut conversations = HashSet::new();
    for n in 0..5 {
        let (id, _, _) = ask_for_a_person(&mut chat, &format!("customer-{n}")).await;
        conversations.insert(id);
    }
    let started = Instant::now();
    while receiver.received().len() < 5 {
        assert!(started.elapsed() < Duration::from_secs(10), "5 attempts under way: {:?}", receiver.received());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    receiver.set(Behaviour::Accept);
    let (mut child, _url) = spawn_loket(dir.path(), &args);
    let accepted = receiver
        .wait_for(Duration::from_secs(15), "the 5 events after the restart", |got| {
            got.iter().map(|r| &r.event_id).collect::<HashSet<_>>().len() == 5
        })
        .await;
    let delivered: HashSet<String> =
        accepted.iter().map(|r| r.json()["data"]["conversation_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(delivered, conversations);
    assert!(accepted.iter().all(|r| r.attempt == 2), "the killed attempt was the first: {accepted:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn two_replicas_on_one_postgres_deliver_each_event_exactly_once() {
    let receiver = Receiver::start(Behaviour::Accept).await;
    let Some(database) = TestPostgres::start() else { return };
    let webhook = format!(
        "webhooks=[{{ name = \"crm\", url = \"{}\", secret = \"{SECRET}\", events = [\"handoff.created\", \
         \"handoff.claimed\"] }}]",
        receiver.url()
    );
    let database_url = format!("storage.database_url={}", database.url);
    let settings = [
        "--no-metrics",
        "--set",
        &database_url,
        "--set",
        "auth.mode=open",
        "--set",
        "limits.requests_per_second_per_key=0",
        "--set",
        "limits.messages_per_minute_per_conversation=0",
        "--set",
        "knowledge.retrain=false",
        "--set",
        &webhook,
        "--set",
        "webhook_delivery.allow_private_addresses=true",
        "--set",
        "webhook_delivery.poll_ms=20",
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ((mut a, url_a), (mut b, url_b)) = std::thread::scope(|scope| {
        let a = scope.spawn(|| spawn_loket(dir_a.path(), &settings));
        (a.join().unwrap(), spawn_loket(dir_b.path(), &settings))
    });
    let open = |url: String| async move {
        let channel = tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap();
        tonic::service::interceptor::InterceptedService::new(channel, Bearer::none())
    };
    let (channel_a, channel_b) = (open(url_a).await, open(url_b).await);
    // Hand-offs opened on both replicas, each claimed on the other one: both deliverers have work all along.
    let mut tasks = JoinSet::new();
    for n in 0..20 {
        let (customer, agent) =
            if n % 2 == 0 { (channel_a.clone(), channel_b.clone()) } else { (channel_b.clone(), channel_a.clone()) };
        tasks.spawn(async move {
            let mut chat = ChatServiceClient::new(customer);
            let (id, _, _) = ask_for_a_person(&mut chat, &format!("customer-{n}")).await;
            let mut agent = loket::server::pb::agent_service_client::AgentServiceClient::new(agent);
            let request = pb::ListHandoffsRequest {
                state: pb::HandoffState::Queued.into(),
                page_size: 500,
                ..Default::default()
            };
            let handoffs = agent.list_handoffs(request).await.unwrap().into_inner().handoffs;
            let handoff_id = handoffs.into_iter().find(|h| h.conversation_id == id).unwrap().handoff_id;
            let claim = pb::ClaimHandoffRequest { handoff_id, agent_id: format!("agent-{n}") };
            agent.claim_handoff(claim).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let accepted = receiver
        .wait_for(Duration::from_secs(20), "40 events", |got| {
            got.iter().map(|r| &r.event_id).collect::<HashSet<_>>().len() == 40
        })
        .await;
    // Settle: a second delivery of anything would arrive now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 40, "each event delivered once, by one replica: {received:#?}");
    assert_eq!(accepted.len(), 40);
    for request in &received {
        assert!(signature_verifies(SECRET, &request.signature, &request.body));
    }
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
}

#[tokio::test]
async fn a_hanging_receiver_holds_up_only_its_own_webhook() {
    let stuck = Receiver::start(Behaviour::Hang).await;
    let fine = Receiver::start(Behaviour::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let mut slow = webhook("stuck", &stuck.url(), &["handoff.created"]);
    slow.timeout_ms = 20_000;
    let mut config = config_with(dir.path(), vec![slow, webhook("fine", &fine.url(), &["handoff.created"])]);
    // One slot per webhook: the stuck receiver ties its slot up for 20 s per attempt.
    config.webhook_delivery.concurrency = 1;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    for n in 0..3 {
        ask_for_a_person(&mut chat, &format!("customer-{n}")).await;
    }
    fine.wait_for(Duration::from_secs(5), "the other webhook's 3 events", |got| got.len() == 3).await;
    assert_eq!(stuck.received().len(), 1, "one attempt at a time to the stuck receiver");
    server.stop().await;
}

#[tokio::test]
async fn deliveries_to_a_webhook_removed_from_the_configuration_are_kept_as_failed() {
    let mut gone = Receiver::start(Behaviour::Accept).await;
    gone.stop();
    let staying = Receiver::start(Behaviour::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let both = vec![
        webhook("gone", &gone.url(), &["handoff.created"]),
        webhook("staying", &staying.url(), &["handoff.created"]),
    ];
    let mut config = config_with(dir.path(), both);
    config.webhook_delivery.backoff_base_ms = 60_000;
    config.webhook_delivery.backoff_max_ms = 60_000;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    ask_for_a_person(&mut chat, "customer-1").await;
    staying.wait_for(Duration::from_secs(5), "the event", |got| got.len() == 1).await;
    server.stop().await;

    let server =
        TestServer::start(config_with(dir.path(), vec![webhook("staying", &staying.url(), &["handoff.created"])]))
            .await;
    let mut admin = server.admin().await;
    let started = Instant::now();
    let failed = loop {
        let list = admin.list_failed_deliveries(pb::ListFailedDeliveriesRequest::default()).await.unwrap().into_inner();
        if !list.deliveries.is_empty() {
            break list.deliveries;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the removed webhook's delivery is listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((failed.len(), failed[0].webhook.as_str()), (1, "gone"));
    assert_eq!(failed[0].last_error, "the webhook is no longer configured");
    server.stop().await;
}
