//! The server's life around its requests: a database that goes away and comes back, and SIGTERM in the middle of
//! a background retrain.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loket::server::pb;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::knowledge_service_client::KnowledgeServiceClient;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::crash::spawn_loket;
use crate::harness::*;
use crate::postgres::TestPostgres;

const CHAT_SERVICE: &str = "loket.v1.ChatService";

async fn chat_health(health: &mut HealthClient<tonic::transport::Channel>) -> Option<ServingStatus> {
    let request = HealthCheckRequest { service: CHAT_SERVICE.into() };
    let response = health.check(request).await.ok()?.into_inner();
    ServingStatus::try_from(response.status).ok()
}

/// Polls until the chat service's health is `wanted`; returns how long that took, or `None` after `limit`.
async fn wait_for_health(
    health: &mut HealthClient<tonic::transport::Channel>,
    wanted: ServingStatus,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if chat_health(health).await == Some(wanted) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn new_conversation() -> pb::StartConversationRequest {
    pb::StartConversationRequest {
        customer_id: "customer-outage".into(),
        channel: pb::Channel::Chat.into(),
        language: "en".into(),
        ..Default::default()
    }
}

/// What one customer's sender saw: the messages acknowledged, and every failed attempt with its code and latency.
#[derive(Default)]
struct Sent {
    acknowledged: Vec<String>,
    failures: Vec<(Code, Duration, String)>,
}

/// Sends numbered messages until `stop`; a message that fails is retried unchanged (same client message id), as
/// the UNAVAILABLE message tells a client to, until it is acknowledged.
async fn customer(mut chat: ChatServiceClient<Authed>, conversation_id: String, stop: Arc<AtomicBool>) -> Sent {
    let mut sent = Sent::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let text = format!("how long does delivery take, question {n} of {conversation_id}");
        loop {
            let request = pb::SendMessageRequest {
                conversation_id: conversation_id.clone(),
                text: text.clone(),
                client_message_id: format!("m-{n}"),
            };
            let started = Instant::now();
            match chat.send_message(request).await {
                Ok(_) => break,
                Err(status) => {
                    sent.failures.push((status.code(), started.elapsed(), status.message().to_owned()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        sent.acknowledged.push(text);
    }
    sent
}

#[tokio::test]
async fn a_database_outage_answers_unavailable_fast_reports_not_serving_and_loses_nothing() {
    let Some(database) = TestPostgres::start_durable() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let store = loket::store::PgStore::connect(
        &database.url,
        config.storage.max_connections,
        Duration::from_millis(config.storage.acquire_timeout_ms),
    )
    .await
    .expect("connect");
    let server = TestServer::start_on(config, Arc::new(store)).await;
    let mut health = HealthClient::new(server.channel().await);
    assert_eq!(chat_health(&mut health).await, Some(ServingStatus::Serving));

    let stop = Arc::new(AtomicBool::new(false));
    let mut customers = Vec::new();
    let mut conversations = Vec::new();
    for _ in 0..4 {
        let mut chat = server.chat().await;
        let id = conversation_id(&start_conversation(&mut chat, "en").await);
        conversations.push(id.clone());
        customers.push(tokio::spawn(customer(chat, id, Arc::clone(&stop))));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    database.stop_immediately();
    let noticed = wait_for_health(&mut health, ServingStatus::NotServing, Duration::from_secs(5)).await;
    assert!(noticed.is_some(), "health still SERVING 5 s into the outage");
    // While it is down, a new call fails at once with UNAVAILABLE rather than hanging with the database.
    let mut chat = server.chat().await;
    let started = Instant::now();
    let refused = chat.start_conversation(new_conversation()).await.expect_err("no database, no conversation");
    let waited = started.elapsed();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(waited < Duration::from_millis(1500), "UNAVAILABLE after {waited:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    database.start_again().expect("PostgreSQL starts again");
    let back = Instant::now();
    // Service resumes as soon as the database does: a fresh call succeeds within a second.
    let resumed = loop {
        let request = new_conversation();
        if chat.start_conversation(request).await.is_ok() {
            break back.elapsed();
        }
        assert!(back.elapsed() < Duration::from_secs(10), "no service 10 s after the database came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(resumed < Duration::from_secs(1), "service resumed {resumed:?} after the database");
    assert!(wait_for_health(&mut health, ServingStatus::Serving, Duration::from_secs(2)).await.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = HashMap::new();
    let mut failures = Vec::new();
    for (id, customer) in conversations.iter().zip(customers) {
        let sent = customer.await.unwrap();
        acknowledged.insert(id.clone(), sent.acknowledged);
        failures.extend(sent.failures);
    }
    assert!(!failures.is_empty(), "the outage went unnoticed by the senders");
    let slowest = failures.iter().map(|f| f.1).max().unwrap_or_default();
    let total: usize = acknowledged.values().map(Vec::len).sum();
    eprintln!(
        "outage: NOT_SERVING after {noticed:?}, UNAVAILABLE after {waited:?}, resumed {resumed:?} after the \
         database; {total} messages acknowledged, {} failed attempts retried (slowest {slowest:?})",
        failures.len()
    );
    for (code, waited, message) in &failures {
        // Not INTERNAL: UNAVAILABLE is the code clients retry, and its message says whether it was applied.
        assert_eq!(*code, Code::Unavailable, "{message}");
        assert!(*waited < Duration::from_millis(1500), "a failure took {waited:?}: {message}");
    }
    // Every acknowledged message is stored exactly once, in the order sent; retries never stored twice.
    let mut chat = server.chat().await;
    for (id, texts) in &acknowledged {
        let stored = chat
            .get_conversation(pb::GetConversationRequest { conversation_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        let customer_texts: Vec<&str> =
            stored.messages.iter().filter(|m| m.author() == pb::Author::Customer).map(|m| m.text.as_str()).collect();
        assert_eq!(customer_texts, texts.iter().map(String::as_str).collect::<Vec<_>>(), "conversation {id}");
    }
    server.stop().await;
}

async fn retrain_status(knowledge: &mut KnowledgeServiceClient<Authed>) -> pb::RetrainStatus {
    knowledge.get_retrain_status(pb::GetRetrainStatusRequest {}).await.expect("retrain status").into_inner()
}

#[tokio::test]
async fn sigterm_during_a_retrain_turns_health_not_serving_and_exits_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_key_with_cli(dir.path(), "admin");
    // The default retrain (30 passes of the full training) takes far longer than this test waits.
    let (mut child, url) = spawn_loket(dir.path(), &["--set", "knowledge.retrain_delay_ms=50"]);
    let mut knowledge = KnowledgeServiceClient::new(connect_authed(&url, &admin).await);
    let entry = pb::CreateFaqRequest { faq: Some(crate::knowledge::gift_cards()), ..Default::default() };
    knowledge.create_faq(entry).await.expect("entry created");
    let started = Instant::now();
    while !retrain_status(&mut knowledge).await.running {
        assert!(started.elapsed() < Duration::from_secs(30), "the retrain never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A load balancer's health watch: it must hear NOT_SERVING before the server goes.
    let channel = tonic::transport::Channel::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest { service: CHAT_SERVICE.into() })
        .await
        .expect("health watch")
        .into_inner();
    let first: HealthCheckResponse = watch.message().await.unwrap().expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);

    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a child's pid we own and a valid signal number; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let sent = Instant::now();
    let next = tokio::time::timeout(Duration::from_secs(2), watch.message()).await;
    assert!(
        matches!(&next, Ok(Ok(Some(status))) if status.status() == ServingStatus::NotServing),
        "the health watch did not hear NOT_SERVING: {next:?}"
    );
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (sent.elapsed(), status);
        }
        if sent.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("loket serve still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("shutdown: exited {:?} after SIGTERM, mid-retrain", exited.0);
    assert!(exited.1.success(), "exit status {:?}", exited.1);
    assert!(exited.0 < Duration::from_secs(2), "exited {:?} after SIGTERM, mid-retrain", exited.0);

    // The knowledge changed and no model learned it: the next start retrains.
    let (mut child, url) = spawn_loket(dir.path(), &["--set", "knowledge.retrain_delay_ms=50"]);
    let mut knowledge = KnowledgeServiceClient::new(connect_authed(&url, &admin).await);
    let status = retrain_status(&mut knowledge).await;
    assert!(status.pending || status.running, "no retrain after the restart: {status:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}
