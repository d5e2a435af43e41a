//! Two `loket serve` processes on one PostgreSQL, driven through real clients: the hand-off loop across them,
//! one conversation's messages sent to both, racing claims, kill -9 of one under load, and a knowledge edit.
//! Each test starts its own PostgreSQL (`postgres.rs`) and skips, saying why, where it cannot.

use std::collections::HashSet;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::knowledge_service_client::KnowledgeServiceClient;
use loket::server::pb::{self, DecisionKind, QueueEventKind};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::crash::spawn_loket;
use crate::harness::*;
use crate::postgres::TestPostgres;
use tonic::service::interceptor::InterceptedService;

/// One `loket serve` process with its own data directory (for the model it retrains), killed when dropped.
struct Replica {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn start(database: &TestPostgres, settings: &[&str]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("storage.database_url={}", database.url);
        // Replication is under test here, not access control (tests/it/access.rs): no keys, no rate limits.
        let mut args = vec![
            "--no-metrics",
            "--set",
            url.as_str(),
            "--set",
            "storage.max_connections=8",
            "--set",
            "auth.mode=open",
            "--set",
            "limits.requests_per_second_per_key=0",
            "--set",
            "limits.messages_per_minute_per_conversation=0",
        ];
        for setting in settings {
            args.extend(["--set", *setting]);
        }
        let (child, url) = spawn_loket(dir.path(), &args);
        Replica { child, url, _dir: dir }
    }

    async fn channel(&self) -> Authed {
        let channel = Channel::from_shared(self.url.clone()).unwrap().connect().await.expect("connect");
        InterceptedService::new(channel, Bearer::none())
    }

    async fn chat(&self) -> ChatServiceClient<Authed> {
        ChatServiceClient::new(self.channel().await)
    }

    async fn agent(&self) -> AgentServiceClient<Authed> {
        AgentServiceClient::new(self.channel().await)
    }

    async fn knowledge(&self) -> KnowledgeServiceClient<Authed> {
        KnowledgeServiceClient::new(self.channel().await)
    }

    /// SIGKILL: no shutdown, no flush, no goodbye to the database.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh PostgreSQL and two replicas on it, started side by side (one of them seeds the knowledge base), with
/// `first` and `second` settings each besides retraining off; `None` where PostgreSQL cannot run here.
fn two_replicas(first: &[&str], second: &[&str]) -> Option<(TestPostgres, Replica, Replica)> {
    let database = TestPostgres::start()?;
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Replica::start(&database, &retrain_off_and(first)));
        let b = Replica::start(&database, &retrain_off_and(second));
        (a.join().unwrap(), b)
    });
    Some((database, a, b))
}

/// Background retrains take seconds of CPU: only the test about them turns them on (a later setting wins).
fn retrain_off_and<'a>(settings: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["knowledge.retrain=false"];
    all.extend_from_slice(settings);
    all
}

type Queue = Streaming<pb::QueueEvent>;

async fn watch_queue(agent: &mut AgentServiceClient<Authed>, agent_id: &str, skills: &[&str]) -> Queue {
    let request =
        pb::WatchQueueRequest { agent_id: agent_id.into(), skills: skills.iter().map(|s| s.to_string()).collect() };
    let mut queue = agent.watch_queue(request).await.unwrap().into_inner();
    while next_queue_event(&mut queue).await.kind() != QueueEventKind::Synced {}
    queue
}

async fn next_queue_event(queue: &mut Queue) -> pb::QueueEvent {
    tokio::time::timeout(Duration::from_secs(10), queue.next()).await.expect("queue event in time").unwrap().unwrap()
}

async fn next_event(stream: &mut Streaming<pb::ConversationEvent>) -> pb::ConversationEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("event in time").unwrap().unwrap()
}

fn state_of(event: &pb::ConversationEvent) -> Option<pb::ConversationState> {
    match &event.event {
        Some(pb::conversation_event::Event::StateChange(c)) => Some(c.to()),
        _ => None,
    }
}

#[tokio::test]
async fn the_handoff_loop_with_the_customer_on_one_replica_and_the_agent_on_the_other() {
    let Some((_database, a, b)) = two_replicas(&[], &[]) else { return };
    let mut chat = a.chat().await;
    let mut agent = b.agent().await;
    let mut alice_queue = watch_queue(&mut agent, "alice", &["returns"]).await;
    let mut colleague = a.agent().await;
    let mut colleague_queue = watch_queue(&mut colleague, "carol", &["returns"]).await;

    // Opened on A, announced on B with the whole package.
    let (id, _, handed) = ask_for_a_person(&mut chat, "cust-r1").await;
    let event = next_queue_event(&mut alice_queue).await;
    assert_eq!(event.kind(), QueueEventKind::New);
    let package = event.handoff.unwrap();
    assert_eq!(package.conversation_id, id);
    assert!(package.transcript.len() >= 5, "greeting, question, answer, request, reply");
    assert_eq!(next_queue_event(&mut colleague_queue).await.kind(), QueueEventKind::New);

    // Claimed on B: the customer watching on A sees it, and so does the colleague's queue on A.
    let after = handed.replies.last().unwrap().seq + 1;
    let request = pb::WatchConversationRequest { conversation_id: id.clone(), after_seq: after };
    let mut customer_view = chat.watch_conversation(request).await.unwrap().into_inner();
    let claim = pb::ClaimHandoffRequest { handoff_id: package.handoff_id.clone(), agent_id: "alice".into() };
    agent.claim_handoff(claim).await.unwrap();
    assert_eq!(state_of(&next_event(&mut customer_view).await), Some(pb::ConversationState::Agent));
    let claimed = next_queue_event(&mut colleague_queue).await;
    assert_eq!(claimed.kind(), QueueEventKind::Claimed);
    assert_eq!(claimed.handoff.unwrap().agent_id, "alice");

    // The agent's message, sent through B, reaches the customer on A.
    let text = "Hoi, ik help je met je retour.";
    let message = pb::SendAgentMessageRequest {
        handoff_id: package.handoff_id.clone(),
        agent_id: "alice".into(),
        text: text.into(),
    };
    agent.send_agent_message(message).await.unwrap();
    let seen = next_event(&mut customer_view).await;
    assert_eq!(message_of(&seen).unwrap().text, text);
    assert_eq!(message_of(&seen).unwrap().author(), pb::Author::Agent);

    // The customer answers on A; the bot stays silent and the agent watching on B sees it.
    let mut agent_chat = b.chat().await;
    let request =
        pb::WatchConversationRequest { conversation_id: id.clone(), after_seq: message_of(&seen).unwrap().seq };
    let mut agent_view = agent_chat.watch_conversation(request).await.unwrap().into_inner();
    let reply = send(&mut chat, &id, "het gaat om bestelling 12345").await;
    assert_eq!(kind(&reply), DecisionKind::Silent);
    assert_eq!(message_of(&next_event(&mut agent_view).await).unwrap().text, "het gaat om bestelling 12345");

    // Resolved on B: the customer on A sees the bot take over and ask for a rating, and rates on A.
    let resolve = pb::ResolveHandoffRequest {
        handoff_id: package.handoff_id.clone(),
        agent_id: "alice".into(),
        note: String::new(),
    };
    agent.resolve_handoff(resolve).await.unwrap();
    assert_eq!(message_of(&next_event(&mut customer_view).await).unwrap().author(), pb::Author::Customer);
    assert_eq!(state_of(&next_event(&mut customer_view).await), Some(pb::ConversationState::Resolved));
    assert_eq!(state_of(&next_event(&mut customer_view).await), Some(pb::ConversationState::Bot));
    let question = next_event(&mut customer_view).await;
    assert_eq!(message_of(&question).unwrap().author(), pb::Author::Bot);
    assert_eq!(next_queue_event(&mut colleague_queue).await.kind(), QueueEventKind::Resolved);
    let rating = pb::RateConversationRequest { conversation_id: id.clone(), score: 5, comment: String::new() };
    chat.rate_conversation(rating).await.unwrap();
    let stored =
        agent.get_handoff(pb::GetHandoffRequest { handoff_id: package.handoff_id.clone() }).await.unwrap().into_inner();
    assert_eq!((stored.state(), stored.rating), (pb::HandoffState::Resolved, 5));
}

#[tokio::test]
async fn messages_of_one_conversation_sent_to_both_replicas_are_stored_once_in_order() {
    let Some((_database, a, b)) = two_replicas(&[], &[]) else { return };
    let mut chat = a.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    // Two senders at once, one per replica, 100 messages each: without a lock shared by the replicas, both
    // would number their next event alike and one commit would fail.
    let sender = |mut chat: ChatServiceClient<Authed>, name: &'static str| {
        let id = id.clone();
        tokio::spawn(async move {
            let mut responses = Vec::new();
            for n in 0..100 {
                let request = pb::SendMessageRequest {
                    conversation_id: id.clone(),
                    text: format!("how long does delivery take {name} {n}"),
                    client_message_id: format!("{name}-{n}"),
                };
                responses.push(chat.send_message(request).await.expect("acknowledged").into_inner());
            }
            responses
        })
    };
    let (to_a, to_b) = (sender(a.chat().await, "a"), sender(b.chat().await, "b"));
    let (from_a, from_b) = (to_a.await.unwrap(), to_b.await.unwrap());

    let stored =
        chat.get_conversation(pb::GetConversationRequest { conversation_id: id.clone() }).await.unwrap().into_inner();
    let customer: Vec<&pb::Message> = stored.messages.iter().filter(|m| m.author() == pb::Author::Customer).collect();
    assert_eq!(customer.len(), 200, "each message stored once");
    let texts: HashSet<&str> = customer.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 200, "no duplicates");
    assert!(stored.messages.windows(2).all(|w| w[0].seq < w[1].seq));
    for (name, responses) in [("a", &from_a), ("b", &from_b)] {
        // Each sender's messages are stored in the order it sent them...
        let mine: Vec<&str> =
            customer.iter().filter(|m| m.client_message_id.starts_with(name)).map(|m| m.text.as_str()).collect();
        let sent: Vec<String> = (0..100).map(|n| format!("how long does delivery take {name} {n}")).collect();
        assert_eq!(mine, sent);
        for response in responses.iter() {
            // ... and each turn's replies follow its message with nothing of the other replica in between.
            let message = response.message.as_ref().unwrap();
            for (offset, reply) in response.replies.iter().enumerate() {
                assert_eq!(reply.seq, message.seq + 1 + offset as u64);
                let stored_reply = stored.messages.iter().find(|m| m.seq == reply.seq).unwrap();
                assert_eq!(stored_reply.text, reply.text);
            }
        }
    }
}

#[tokio::test]
async fn agents_on_two_replicas_race_to_claim_and_exactly_one_wins() {
    let Some((_database, a, b)) = two_replicas(&[], &[]) else { return };
    let mut chat = a.chat().await;
    let (mut alice, mut bob) = (a.agent().await, b.agent().await);
    for round in 0..5 {
        ask_for_a_person(&mut chat, &format!("cust-race-{round}")).await;
        let filter = pb::ListHandoffsRequest { state: pb::HandoffState::Queued.into(), ..Default::default() };
        let queued = bob.list_handoffs(filter).await.unwrap().into_inner().handoffs;
        assert_eq!(queued.len(), 1);
        let handoff_id = queued[0].handoff_id.clone();
        let winner = race_to_claim(&alice, &bob, &handoff_id).await;
        let stored = alice.get_handoff(pb::GetHandoffRequest { handoff_id }).await.unwrap().into_inner();
        assert_eq!((stored.state(), stored.agent_id.as_str()), (pb::HandoffState::Claimed, winner));
    }
}

#[tokio::test]
async fn kill_9_of_one_replica_under_load_loses_nothing_acknowledged_and_the_other_carries_on() {
    let Some((_database, mut a, b)) = two_replicas(&[], &[]) else { return };
    let killed = Arc::new(AtomicBool::new(false));
    let acknowledged_total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (mut to_a, mut to_b) = (a.chat().await, b.chat().await);
        let (killed, acknowledged_total) = (killed.clone(), acknowledged_total.clone());
        tasks.push(tokio::spawn(async move {
            let id = conversation_id(&start_conversation(if n % 2 == 0 { &mut to_a } else { &mut to_b }, "en").await);
            let (mut acknowledged, mut after_kill) = (Vec::new(), 0);
            // Alternately through A and B; once A is gone, its turns fail and B's go on.
            for turn in 0..40 {
                let after = killed.load(Ordering::SeqCst);
                let chat = if turn % 2 == 0 { &mut to_a } else { &mut to_b };
                let text = format!("where is my parcel {n} {turn}");
                let request = pb::SendMessageRequest {
                    conversation_id: id.clone(),
                    text: text.clone(),
                    client_message_id: String::new(),
                };
                if chat.send_message(request).await.is_ok() {
                    acknowledged.push(text);
                    acknowledged_total.fetch_add(1, Ordering::SeqCst);
                    after_kill += usize::from(after);
                }
            }
            (id, acknowledged, after_kill)
        }));
    }
    // Mid-load: once some messages went through, whatever A is doing at that moment.
    while acknowledged_total.load(Ordering::SeqCst) < 30 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill_9();
    killed.store(true, Ordering::SeqCst);

    let mut chat = b.chat().await;
    for task in tasks {
        let (id, acknowledged, after_kill) = task.await.unwrap();
        assert!(after_kill > 0, "B carried on after A died");
        let stored = chat
            .get_conversation(pb::GetConversationRequest { conversation_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        for text in &acknowledged {
            assert_eq!(stored.messages.iter().filter(|m| &m.text == text).count(), 1, "{text}: stored once");
        }
        // A may have died holding the conversation's lock: the database released it, B takes it.
        let request = pb::SendMessageRequest {
            conversation_id: id.clone(),
            text: "and now?".into(),
            client_message_id: String::new(),
        };
        tokio::time::timeout(Duration::from_secs(30), chat.send_message(request))
            .await
            .expect("the dead replica's lock is released")
            .unwrap();
    }
}

#[tokio::test]
async fn a_knowledge_edit_on_one_replica_is_answered_on_the_other_and_retrained_there() {
    // B retrains (few passes: this is about the swap, and the test build is unoptimised); A does not.
    let retrain = ["knowledge.retrain=true", "knowledge.retrain_delay_ms=50", "knowledge.retrain_epochs=2"];
    let Some((_database, a, b)) = two_replicas(&[], &retrain) else { return };
    let (mut on_a, mut on_b) = (a.knowledge().await, b.knowledge().await);
    let question =
        pb::TestQueryRequest { text: "do you sell gift cards".into(), language: "en".into(), ..Default::default() };
    let top = |outcome: &pb::TestQueryResponse| {
        outcome.decision.as_ref().and_then(|d| d.faq_matches.first()).map(|m| m.faq_id.clone()).unwrap_or_default()
    };
    let before = on_b.test_query(question.clone()).await.unwrap().into_inner();
    assert_ne!(top(&before), "gift-cards");

    on_a.create_faq(pb::CreateFaqRequest { faq: Some(crate::knowledge::gift_cards()), author: "editor".into() })
        .await
        .unwrap();
    // B learns of it by notification and swaps its index (the issue asks for under 2 s; polled, not timed here).
    let mut found = false;
    for _ in 0..300 {
        if top(&on_b.test_query(question.clone()).await.unwrap().into_inner()) == "gift-cards" {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "B never served the entry created through A");
    let mut chat = b.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let answered = send(&mut chat, &id, "can i buy a gift card").await;
    assert_eq!(kind(&answered), DecisionKind::Answer);
    assert_eq!(answered.replies[0].faq_id, "gift-cards");

    // And B retrains its own model on the edit and swaps it in.
    let mut status = pb::RetrainStatus::default();
    for _ in 0..600 {
        status = on_b.get_retrain_status(pb::GetRetrainStatusRequest {}).await.unwrap().into_inner();
        if status.completed >= 1 || !status.last_error.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status.completed, 1, "{status:?}");
    let after = on_b.test_query(question).await.unwrap().into_inner();
    assert!(after.decision.unwrap().intents.iter().any(|i| i.intent == "gift-cards"), "B's new model knows it");
}

#[tokio::test]
async fn the_postgres_store_keeps_the_embedded_stores_semantics() {
    let Some(database) = TestPostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store =
        loket::store::PgStore::connect(&database.url, 4, std::time::Duration::from_secs(1)).await.expect("connect");
    let server = TestServer::start_on(test_config(dir.path()), Arc::new(store)).await;
    let mut chat = server.chat().await;

    // Idempotent retries: the second attempt is the first one's stored outcome, stored once.
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let request = pb::SendMessageRequest {
        conversation_id: id.clone(),
        text: "how long does delivery take".into(),
        client_message_id: "m-1".into(),
    };
    let first = chat.send_message(request.clone()).await.unwrap().into_inner();
    let again = chat.send_message(request).await.unwrap().into_inner();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.replies, again.replies);
    let stored = chat.get_conversation(pb::GetConversationRequest { conversation_id: id }).await.unwrap().into_inner();
    assert_eq!(stored.messages.iter().filter(|m| m.client_message_id == "m-1").count(), 1);

    // Hand-offs: filtered lists, pages, and a claim that only one of two agents gets.
    for n in 0..3 {
        ask_for_a_person(&mut chat, &format!("cust-pg-{n}")).await;
    }
    let mut agent = server.agent_as("alice").await;
    let page = |page_token: String| pb::ListHandoffsRequest {
        state: pb::HandoffState::Queued.into(),
        skill: "returns".into(),
        page_size: 2,
        page_token,
    };
    let first_page = agent.list_handoffs(page(String::new())).await.unwrap().into_inner();
    assert_eq!(first_page.handoffs.len(), 2);
    let second_page = agent.list_handoffs(page(first_page.next_page_token)).await.unwrap().into_inner();
    assert_eq!((second_page.handoffs.len(), second_page.next_page_token.as_str()), (1, ""));
    let billing = pb::ListHandoffsRequest { skill: "billing".into(), ..Default::default() };
    assert!(agent.list_handoffs(billing).await.unwrap().into_inner().handoffs.is_empty());
    let handoff_id = second_page.handoffs[0].handoff_id.clone();
    let claim = |agent_id: &str| pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: agent_id.into() };
    agent.claim_handoff(claim("alice")).await.unwrap();
    let mut bob = server.agent_as("bob").await;
    assert_eq!(bob.claim_handoff(claim("bob")).await.unwrap_err().code(), Code::FailedPrecondition);

    // Knowledge: revisions, and an update based on a stale revision is refused.
    let mut knowledge = server.knowledge().await;
    let created = knowledge
        .create_faq(pb::CreateFaqRequest { faq: Some(crate::knowledge::gift_cards()), author: "editor".into() })
        .await
        .unwrap()
        .into_inner();
    let revisions = pb::ListRevisionsRequest { faq_id: "gift-cards".into(), ..Default::default() };
    assert_eq!(knowledge.list_revisions(revisions).await.unwrap().into_inner().revisions.len(), 1);
    let stale = pb::Faq { revision: created.revision + 1, ..created };
    let update = pb::UpdateFaqRequest { faq: Some(stale), update_mask: None, author: "editor".into() };
    assert_eq!(knowledge.update_faq(update).await.unwrap_err().code(), Code::Aborted);

    // The KPIs read the same records (the range ends now, exclusive: let a second pass).
    server.clock.advance(1000);
    let mut stats = server.stats().await;
    let kpis = stats.get_kpis(pb::GetKpisRequest::default()).await.unwrap().into_inner();
    assert_eq!(kpis.conversations, 4);
    server.stop().await;
}
