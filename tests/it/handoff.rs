//! The hand-off loop with one customer and several agents: routing by skill, the package, racing claims,
//! agent replies, silence of the bot, resolution, rating, office hours, restarts and bad input.

use std::time::Duration;

use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::{self, DecisionKind, QueueEventKind};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

use crate::harness::*;

type Queue = Streaming<pb::QueueEvent>;

async fn watch_queue(
    agent: &mut AgentServiceClient<Authed>,
    agent_id: &str,
    skills: &[&str],
) -> (Queue, Vec<pb::Handoff>) {
    let request =
        pb::WatchQueueRequest { agent_id: agent_id.into(), skills: skills.iter().map(|s| s.to_string()).collect() };
    let mut queue = agent.watch_queue(request).await.unwrap().into_inner();
    let mut snapshot = Vec::new();
    loop {
        let event = queue.next().await.unwrap().unwrap();
        match event.kind() {
            QueueEventKind::Snapshot => snapshot.push(event.handoff.unwrap()),
            QueueEventKind::Synced => return (queue, snapshot),
            other => panic!("unexpected {other:?} before SYNCED"),
        }
    }
}

async fn next_queue_event(queue: &mut Queue) -> pb::QueueEvent {
    tokio::time::timeout(Duration::from_secs(5), queue.next()).await.expect("queue event in time").unwrap().unwrap()
}

async fn next_event(stream: &mut Streaming<pb::ConversationEvent>) -> pb::ConversationEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("event in time").unwrap().unwrap()
}

async fn watch(chat: &mut ChatServiceClient<Authed>, id: &str, after_seq: u64) -> Streaming<pb::ConversationEvent> {
    let request = pb::WatchConversationRequest { conversation_id: id.into(), after_seq };
    chat.watch_conversation(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn the_whole_loop_from_request_to_rating() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let mut alice = server.agent_as("alice").await;
    let bob = server.agent_as("bob").await;
    let mut carol = server.agent_as("carol").await;
    let (mut alice_queue, snapshot) = watch_queue(&mut alice, "alice", &["returns", "general"]).await;
    assert!(snapshot.is_empty());
    let (mut carol_queue, _) = watch_queue(&mut carol, "carol", &["billing"]).await;

    // An earlier conversation of the same customer, on e-mail, travels with the package.
    let earlier = chat
        .start_conversation(pb::StartConversationRequest {
            customer_id: "cust-7".into(),
            channel: pb::Channel::Email.into(),
            language: "nl".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    send(&mut chat, &conversation_id(&earlier), "wat zijn de verzendkosten").await;

    let (id, _, handed) = ask_for_a_person(&mut chat, "cust-7").await;
    assert_eq!(handed.state(), pb::ConversationState::Queued);
    assert_eq!(handed.decision.as_ref().unwrap().handoff_reason(), pb::HandoffReason::CustomerRequest);
    let reply = &handed.replies[0].text;
    assert!(reply.contains("nummer 1") && reply.contains("minuten"), "queue position and wait: {reply}");

    // The agent sees the whole package at once.
    let event = next_queue_event(&mut alice_queue).await;
    assert_eq!(event.kind(), QueueEventKind::New);
    let package = event.handoff.unwrap();
    assert_eq!(package.conversation_id, id);
    assert_eq!(package.skill, "returns");
    assert_eq!(package.reason(), pb::HandoffReason::CustomerRequest);
    assert_eq!(package.language, "nl");
    assert_eq!(package.customer_id, "cust-7");
    assert_eq!(package.summary_first_ask, "hoe stuur ik een artikel retour");
    assert_eq!(package.summary_last_message, "ik wil een medewerker spreken");
    assert!(package.transcript.len() >= 5, "greeting, question, answer, request, reply");
    assert_eq!(package.earlier_conversations.len(), 1);
    assert_eq!(package.earlier_conversations[0].first_ask, "wat zijn de verzendkosten");
    assert!(!package.callback);

    // Ninety seconds pass before anyone picks it up: that is the measured wait.
    server.clock.advance(90_000);

    // Two agents race; exactly one wins.
    let handoff_id = package.handoff_id.clone();
    let winner = race_to_claim(&alice, &bob, &handoff_id).await;
    let claimed = next_queue_event(&mut alice_queue).await;
    assert_eq!(claimed.kind(), QueueEventKind::Claimed);
    assert_eq!(claimed.handoff.unwrap().agent_id, winner);
    let mut agent = if winner == "alice" { alice.clone() } else { bob.clone() };

    // The agent replies; the customer sees it live.
    let mut customer_view = watch(&mut chat, &id, handed.replies.last().unwrap().seq + 1).await;
    let state = next_event(&mut customer_view).await;
    assert!(
        matches!(state.event, Some(pb::conversation_event::Event::StateChange(ref c)) if c.to() == pb::ConversationState::Agent)
    );
    let message = pb::SendAgentMessageRequest {
        handoff_id: handoff_id.clone(),
        agent_id: winner.into(),
        text: "Hoi, ik help je met je retour.".into(),
    };
    agent.send_agent_message(message).await.unwrap();
    let seen = next_event(&mut customer_view).await;
    let seen = message_of(&seen).unwrap();
    assert_eq!(seen.author(), pb::Author::Agent);
    assert_eq!(seen.text, "Hoi, ik help je met je retour.");

    // The customer answers; the bot stays silent and the agent sees it.
    let mut agent_view = watch(&mut chat, &id, seen.seq).await;
    let reply = send(&mut chat, &id, "het gaat om bestelling 12345").await;
    assert_eq!(kind(&reply), DecisionKind::Silent);
    assert!(reply.replies.is_empty());
    let seen = next_event(&mut agent_view).await;
    assert_eq!(message_of(&seen).unwrap().text, "het gaat om bestelling 12345");

    // Resolve: the bot takes over and asks for a rating.
    let resolve = pb::ResolveHandoffRequest {
        handoff_id: handoff_id.clone(),
        agent_id: winner.into(),
        note: "retourlabel gestuurd".into(),
    };
    agent.resolve_handoff(resolve.clone()).await.unwrap();
    let mut states = Vec::new();
    let question = loop {
        let event = next_event(&mut agent_view).await;
        match event.event {
            Some(pb::conversation_event::Event::StateChange(c)) => states.push(c.to()),
            Some(pb::conversation_event::Event::Message(m)) => break m,
            None => panic!("empty event"),
        }
    };
    assert_eq!(states, vec![pb::ConversationState::Resolved, pb::ConversationState::Bot]);
    assert_eq!(question.author(), pb::Author::Bot);
    assert!(question.text.contains("1 tot 5"), "{}", question.text);
    assert_eq!(next_queue_event(&mut alice_queue).await.kind(), QueueEventKind::Resolved);

    let rating = pb::RateConversationRequest { conversation_id: id.clone(), score: 5, comment: "snel geholpen".into() };
    chat.rate_conversation(rating.clone()).await.unwrap();
    assert_eq!(chat.rate_conversation(rating).await.unwrap_err().code(), Code::AlreadyExists);
    let stored =
        agent.get_handoff(pb::GetHandoffRequest { handoff_id: handoff_id.clone() }).await.unwrap().into_inner();
    assert_eq!(stored.state(), pb::HandoffState::Resolved);
    assert_eq!((stored.rating, stored.rating_comment.as_str()), (5, "snel geholpen"));
    assert!(stored.notes.iter().any(|n| n.contains("retourlabel gestuurd")));
    assert!(stored.claim_time.is_some() && stored.resolve_time.is_some());
    assert_eq!(stored.wait_seconds, 90.0);

    // Back with the bot, a question is answered again.
    let again = send(&mut chat, &id, "wat zijn de verzendkosten").await;
    assert_eq!(kind(&again), DecisionKind::Answer);

    // Routing: the billing agent never saw any of it.
    let nothing = tokio::time::timeout(Duration::from_millis(300), carol_queue.next()).await;
    assert!(nothing.is_err(), "carol saw {nothing:?}");
}

#[tokio::test]
async fn outside_office_hours_the_customer_is_told_once_and_agents_find_the_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_at(test_config(dir.path()), SUNDAY_NOON).await;
    let mut chat = server.chat().await;
    let (id, _, handed) = ask_for_a_person(&mut chat, "cust-sunday").await;
    let text = &handed.replies[0].text;
    assert!(text.contains("niet bereikbaar") && text.contains("morgen vanaf 08:00"), "{text}");
    assert_eq!(handed.replies.len(), 1, "one message, not a notice stacked on a reply");
    for _ in 0..2 {
        let later = send(&mut chat, &id, "hallo? is daar iemand").await;
        assert_eq!(kind(&later), DecisionKind::Silent);
        assert!(later.replies.is_empty(), "the out-of-hours notice is sent once");
    }
    let mut agent = server.agent_as("dave").await;
    let (_, snapshot) = watch_queue(&mut agent, "dave", &["returns"]).await;
    assert_eq!(snapshot.len(), 1);
    assert!(snapshot[0].callback);
    assert_eq!(snapshot[0].transcript.iter().filter(|m| m.text == "hallo? is daar iemand").count(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_restart_mid_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let (id, _, _) = ask_for_a_person(&mut chat, "cust-restart").await;
    send(&mut chat, &id, "mijn ordernummer is 555").await;
    drop(chat);
    server.stop().await;

    let server = TestServer::start(test_config(dir.path())).await;
    let mut agent = server.agent_as("erin").await;
    let (_, snapshot) = watch_queue(&mut agent, "erin", &["returns"]).await;
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].conversation_id, id);
    assert!(snapshot[0].transcript.iter().any(|m| m.text == "mijn ordernummer is 555"));
    let claimed = agent
        .claim_handoff(pb::ClaimHandoffRequest { handoff_id: snapshot[0].handoff_id.clone(), agent_id: "erin".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claimed.state(), pb::HandoffState::Claimed);
    server.stop().await;
}

#[tokio::test]
async fn frustration_goes_to_a_person_with_priority() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    for (language, text) in [
        ("nl", "Dit is echt belachelijk, waar blijft mijn pakket"),
        ("en", "WHERE IS MY PARCEL, I HAVE BEEN WAITING FOR WEEKS"),
    ] {
        let id = conversation_id(&start_conversation(&mut chat, language).await);
        let response = send(&mut chat, &id, text).await;
        assert_eq!(kind(&response), DecisionKind::Handoff, "{text}");
        assert_eq!(response.decision.as_ref().unwrap().handoff_reason(), pb::HandoffReason::Frustration);
    }
    let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.handoffs.len(), 2);
    assert!(list.handoffs.iter().all(|h| h.priority == 3), "standard tier + frustration");
    assert!(list.handoffs.iter().all(|h| h.reason() == pb::HandoffReason::Frustration));
}

#[tokio::test]
async fn listing_pages_and_filters() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    for n in 0..3 {
        ask_for_a_person(&mut chat, &format!("cust-{n}")).await;
    }
    let first = agent
        .list_handoffs(pb::ListHandoffsRequest { page_size: 2, skill: "returns".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.handoffs.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = agent
        .list_handoffs(pb::ListHandoffsRequest {
            page_size: 2,
            skill: "returns".into(),
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.handoffs.len(), 1);
    assert!(second.next_page_token.is_empty());
    let claimed = agent
        .list_handoffs(pb::ListHandoffsRequest { state: pb::HandoffState::Claimed.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(claimed.handoffs.is_empty());
    let other_skill = agent
        .list_handoffs(pb::ListHandoffsRequest { skill: "billing".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(other_skill.handoffs.is_empty());
}

#[tokio::test]
async fn bad_agent_requests_get_precise_statuses() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let mut agent = server.agent_as("frank").await;
    let mut grace = server.agent_as("grace").await;
    let (id, _, _) = ask_for_a_person(&mut chat, "cust-bad").await;
    let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff_id = list.handoffs[0].handoff_id.clone();
    let claim = |agent_id: &str| pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: agent_id.into() };
    let resolve = |agent_id: &str| pb::ResolveHandoffRequest {
        handoff_id: handoff_id.clone(),
        agent_id: agent_id.into(),
        note: String::new(),
    };
    let rate = |score: i32| pb::RateConversationRequest { conversation_id: id.clone(), score, comment: String::new() };

    // Unknown ids, empty agent, no skills.
    let unknown = pb::ClaimHandoffRequest { handoff_id: "nope".into(), agent_id: "frank".into() };
    assert_eq!(agent.claim_handoff(unknown).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        agent.get_handoff(pb::GetHandoffRequest { handoff_id: "nope".into() }).await.unwrap_err().code(),
        Code::NotFound
    );
    // An agent key is its agent; an admin key must name the agent it acts for.
    assert_eq!(server.agent_admin().await.claim_handoff(claim("")).await.unwrap_err().code(), Code::InvalidArgument);
    let no_skills = pb::WatchQueueRequest { agent_id: "frank".into(), skills: vec![] };
    assert_eq!(agent.watch_queue(no_skills).await.unwrap_err().code(), Code::InvalidArgument);
    let bad_page = pb::ListHandoffsRequest { page_token: "garbage".into(), ..Default::default() };
    assert_eq!(agent.list_handoffs(bad_page).await.unwrap_err().code(), Code::InvalidArgument);
    let bad_state = pb::ListHandoffsRequest { state: 42, ..Default::default() };
    assert_eq!(agent.list_handoffs(bad_state).await.unwrap_err().code(), Code::InvalidArgument);

    // Out of order: resolve or message before claiming, rate before resolution.
    assert_eq!(agent.resolve_handoff(resolve("frank")).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(chat.rate_conversation(rate(4)).await.unwrap_err().code(), Code::FailedPrecondition);
    agent.claim_handoff(claim("frank")).await.unwrap();
    let stranger =
        pb::SendAgentMessageRequest { handoff_id: handoff_id.clone(), agent_id: "grace".into(), text: "hi".into() };
    assert_eq!(grace.send_agent_message(stranger).await.unwrap_err().code(), Code::FailedPrecondition);
    let empty =
        pb::SendAgentMessageRequest { handoff_id: handoff_id.clone(), agent_id: "frank".into(), text: " ".into() };
    assert_eq!(agent.send_agent_message(empty).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(grace.resolve_handoff(resolve("grace")).await.unwrap_err().code(), Code::FailedPrecondition);

    agent.resolve_handoff(resolve("frank")).await.unwrap();
    assert_eq!(
        agent.resolve_handoff(resolve("frank")).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "resolving twice"
    );
    assert_eq!(
        grace.claim_handoff(claim("grace")).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "claiming a resolved one"
    );
    for score in [0, 6, -1] {
        assert_eq!(chat.rate_conversation(rate(score)).await.unwrap_err().code(), Code::InvalidArgument);
    }
    let unknown = pb::RateConversationRequest { conversation_id: "nope".into(), score: 3, comment: String::new() };
    assert_eq!(chat.rate_conversation(unknown).await.unwrap_err().code(), Code::NotFound);
    chat.rate_conversation(rate(4)).await.unwrap();
}

#[tokio::test]
async fn transfer_moves_the_handoff_to_another_skill() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let mut agent = server.agent_as("ivy").await;
    let mut hank = server.agent_as("hank").await;
    let (mut billing_queue, _) = watch_queue(&mut hank, "hank", &["billing"]).await;
    let (mut privacy_queue, _) = watch_queue(&mut server.agent_as("pia").await, "pia", &["privacy"]).await;
    ask_for_a_person(&mut chat, "cust-transfer").await;
    let handoff_id = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner().handoffs[0]
        .handoff_id
        .clone();
    agent
        .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: "ivy".into() })
        .await
        .unwrap();
    let transfer = pb::TransferHandoffRequest {
        handoff_id: handoff_id.clone(),
        agent_id: "ivy".into(),
        skill: "billing".into(),
        note: "gaat om een dubbele afschrijving".into(),
    };
    let moved = agent.transfer_handoff(transfer).await.unwrap().into_inner();
    assert_eq!((moved.state(), moved.skill.as_str()), (pb::HandoffState::Queued, "billing"));
    let event = next_queue_event(&mut billing_queue).await;
    assert_eq!(event.kind(), QueueEventKind::Transferred);
    let package = event.handoff.unwrap();
    assert_eq!(package.handoff_id, handoff_id);
    assert!(package.notes[0].contains("dubbele afschrijving"));
    hank.claim_handoff(pb::ClaimHandoffRequest { handoff_id, agent_id: "hank".into() }).await.unwrap();
    // An agent of an unrelated skill never saw any of it.
    let nothing = tokio::time::timeout(Duration::from_millis(300), privacy_queue.next()).await;
    assert!(nothing.is_err(), "the privacy agent saw {nothing:?}");

    // The KPIs count the conversation and its hand-off under the skill it was moved to, no longer the first one.
    let mut stats = server.stats().await;
    let seconds = |millis: i64| Some(prost_types::Timestamp { seconds: millis / 1000, nanos: 0 });
    let now = loket::clock::Clock::now_millis(&*server.clock);
    for (skill, expected) in [("billing", 1), ("general", 0)] {
        let request = pb::GetKpisRequest {
            skill: skill.into(),
            start_time: seconds(now - 3_600_000),
            end_time: seconds(now + 3_600_000),
            ..Default::default()
        };
        let kpis = stats.get_kpis(request).await.unwrap().into_inner();
        assert_eq!((kpis.conversations, kpis.handoffs), (expected, expected), "{skill}");
    }
}

#[tokio::test]
async fn an_always_human_category_is_handed_off_instead_of_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.policy.always_human_categories = vec!["privacy".into()];
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let response = send(&mut chat, &id, "what do you do with my personal data").await;
    assert_eq!(kind(&response), DecisionKind::Handoff, "{:?}", response.decision);
    assert_eq!(response.decision.as_ref().unwrap().handoff_reason(), pb::HandoffReason::AlwaysHuman);
    let mut agent = server.agent_as("pia").await;
    let (_, snapshot) = watch_queue(&mut agent, "pia", &["privacy"]).await;
    assert_eq!(snapshot.len(), 1, "routed to the privacy skill");
    // Other topics are still answered by the bot.
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    assert_eq!(kind(&send(&mut chat, &id, "how long do i have to return something").await), DecisionKind::Answer);
    server.stop().await;
}
