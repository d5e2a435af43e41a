//! Agents are who their key says (issue 15): an agent key acts only as its own agent, an admin names the agent it
//! acts for and is audited, the holder of a hand-off follows its conversation on WatchHandoff until the hand-off
//! is transferred or resolved, and every AgentService RPC refuses what it must with a precise status and no change.

use std::sync::Arc;
use std::time::Duration;

use loket::server::pb;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::store::{AccessStore, SqliteStore};
use tokio_stream::StreamExt;
use tonic::{Code, Status, Streaming};

use crate::harness::*;

type Agent = AgentServiceClient<Authed>;
type Events = Streaming<pb::ConversationEvent>;

/// A customer asks for a person; returns the conversation and its hand-off (queued, skill "returns").
async fn queued_handoff(server: &TestServer, customer: &str) -> (String, String) {
    let mut chat = server.chat().await;
    let (conversation_id, _, _) = ask_for_a_person(&mut chat, customer).await;
    let list = server.agent().await.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff = list.handoffs.into_iter().find(|h| h.conversation_id == conversation_id).expect("handed off");
    (conversation_id, handoff.handoff_id)
}

fn claim(handoff_id: &str, agent_id: &str) -> pb::ClaimHandoffRequest {
    pb::ClaimHandoffRequest { handoff_id: handoff_id.into(), agent_id: agent_id.into() }
}

fn message(handoff_id: &str, agent_id: &str, text: &str) -> pb::SendAgentMessageRequest {
    pb::SendAgentMessageRequest { handoff_id: handoff_id.into(), agent_id: agent_id.into(), text: text.into() }
}

fn transfer(handoff_id: &str, agent_id: &str) -> pb::TransferHandoffRequest {
    pb::TransferHandoffRequest {
        handoff_id: handoff_id.into(),
        agent_id: agent_id.into(),
        skill: "billing".into(),
        note: "about an invoice".into(),
    }
}

fn resolve(handoff_id: &str, agent_id: &str) -> pb::ResolveHandoffRequest {
    pb::ResolveHandoffRequest { handoff_id: handoff_id.into(), agent_id: agent_id.into(), note: "label sent".into() }
}

fn watch(handoff_id: &str, agent_id: &str, after_seq: u64) -> pb::WatchHandoffRequest {
    pb::WatchHandoffRequest { handoff_id: handoff_id.into(), agent_id: agent_id.into(), after_seq }
}

async fn watch_handoff(agent: &mut Agent, handoff_id: &str, after_seq: u64) -> Events {
    agent.watch_handoff(watch(handoff_id, "", after_seq)).await.expect("watch the hand-off").into_inner()
}

async fn next_event(events: &mut Events) -> Result<pb::ConversationEvent, Status> {
    tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("event in time").expect("not ended")
}

fn state_change(event: &pb::ConversationEvent) -> Option<(pb::ConversationState, pb::ConversationState)> {
    match &event.event {
        Some(pb::conversation_event::Event::StateChange(c)) => Some((c.from(), c.to())),
        _ => None,
    }
}

/// The events up to and including the claim's state change (QUEUED to AGENT).
async fn until_claimed(events: &mut Events) -> Vec<pb::ConversationEvent> {
    let mut history = Vec::new();
    loop {
        let event = next_event(events).await.unwrap();
        let claimed = state_change(&event) == Some((pb::ConversationState::Queued, pb::ConversationState::Agent));
        history.push(event);
        if claimed {
            return history;
        }
    }
}

/// The key id of a token `lk_<id>_<secret>`.
fn key_id(token: &str) -> &str {
    token.strip_prefix("lk_").and_then(|rest| rest.split('_').next()).unwrap()
}

#[tokio::test]
async fn an_agent_key_acts_only_as_its_own_agent() {
    let (server, _dir) = fresh_server().await;
    let alice_token = server.agent_key("alice", &["returns"]).await;
    let mut alice = AgentServiceClient::new(server.authed(&alice_token).await);
    let keys = server.admin().await.list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().keys;
    let listed = keys.iter().find(|k| k.key_id == key_id(&alice_token)).expect("listed");
    assert_eq!(
        (listed.name.as_str(), listed.role(), listed.skills.clone()),
        ("alice", pb::Role::Agent, vec!["returns".to_string()])
    );
    let (_, handoff_id) = queued_handoff(&server, "cust-who").await;
    let before = stored_handoff(&server, &handoff_id).await;

    // Claiming as someone else is refused, naming both agents, and changes nothing.
    let refused = alice.claim_handoff(claim(&handoff_id, "bob")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("alice") && refused.message().contains("bob"), "{}", refused.message());
    let watch_as_bob = pb::WatchQueueRequest { agent_id: "bob".into(), skills: vec!["returns".into()] };
    assert_eq!(alice.watch_queue(watch_as_bob).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(stored_handoff(&server, &handoff_id).await, before);

    // Without an agent id (or with its own) the key acts as its agent.
    let claimed = alice.claim_handoff(claim(&handoff_id, "")).await.unwrap().into_inner();
    assert_eq!((claimed.state(), claimed.agent_id.as_str()), (pb::HandoffState::Claimed, "alice"));
    let claimed = stored_handoff(&server, &handoff_id).await;
    for refused in [
        alice.send_agent_message(message(&handoff_id, "bob", "I am bob")).await.map(|_| ()),
        alice.transfer_handoff(transfer(&handoff_id, "bob")).await.map(|_| ()),
        alice.resolve_handoff(resolve(&handoff_id, "bob")).await.map(|_| ()),
        alice.watch_handoff(watch(&handoff_id, "bob", 0)).await.map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    }
    assert_eq!(stored_handoff(&server, &handoff_id).await, claimed, "nothing said or done as bob");
    let sent = alice.send_agent_message(message(&handoff_id, "alice", "Hello, this is Alice")).await.unwrap();
    assert_eq!(sent.into_inner().author(), pb::Author::Agent);
    let resolved = alice.resolve_handoff(resolve(&handoff_id, "")).await.unwrap().into_inner();
    assert_eq!((resolved.state(), resolved.agent_id.as_str()), (pb::HandoffState::Resolved, "alice"));
    assert_eq!(resolved.notes, vec!["resolved by alice: label sent".to_string()]);
    server.stop().await;
}

#[tokio::test]
async fn an_admin_names_the_agent_it_acts_for_and_the_audit_log_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let server = TestServer::start_on(test_config(dir.path()), store.clone()).await;
    let mut admin = server.agent_admin().await;
    let (_, handoff_id) = queued_handoff(&server, "cust-admin").await;
    let before = stored_handoff(&server, &handoff_id).await;
    let audited = |entries: &[loket::store::AuditEntry]| {
        entries.iter().filter(|e| e.action == "act_for_agent").map(|e| e.detail.clone()).collect::<Vec<_>>()
    };

    // An admin has no agent of its own.
    let missing = admin.claim_handoff(claim(&handoff_id, " ")).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    let no_agent = pb::WatchQueueRequest { agent_id: String::new(), skills: vec!["returns".into()] };
    assert_eq!(admin.watch_queue(no_agent).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(stored_handoff(&server, &handoff_id).await, before);
    assert!(audited(&store.audit_log(100).await.unwrap()).is_empty(), "refused requests are not acts");

    let claimed = admin.claim_handoff(claim(&handoff_id, "carol")).await.unwrap().into_inner();
    assert_eq!(claimed.agent_id, "carol");
    admin.send_agent_message(message(&handoff_id, "carol", "Carol here (via the admin)")).await.unwrap();
    // Carol's own key continues: the hand-off is hers. Her own acts are not admin acts.
    let mut carol = server.agent_as("carol").await;
    carol.send_agent_message(message(&handoff_id, "", "Carol here")).await.unwrap();

    let entries = store.audit_log(100).await.unwrap();
    let acts = audited(&entries);
    assert_eq!(acts.len(), 2, "{acts:?}");
    for (act, operation) in acts.iter().rev().zip(["claim", "send"]) {
        assert_eq!(act["agent_id"], "carol");
        assert_eq!(act["operation"], operation);
        assert_eq!(act["handoff_id"], handoff_id.as_str());
    }
    let admin_key = key_id(&server.keys.admin);
    assert!(entries.iter().filter(|e| e.action == "act_for_agent").all(|e| e.actor == admin_key));
    server.stop().await;
}

#[tokio::test]
async fn the_holder_follows_the_conversation_live_and_resumes_by_sequence_number() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let (conversation_id, _, _) = ask_for_a_person(&mut chat, "cust-live").await;
    let list = server.agent().await.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff_id = list.handoffs[0].handoff_id.clone();
    let mut alice = server.agent_as("alice").await;
    alice.claim_handoff(claim(&handoff_id, "")).await.unwrap();

    // From the start: the customer's first question and, last, the claim.
    let mut events = watch_handoff(&mut alice, &handoff_id, 0).await;
    let history = until_claimed(&mut events).await;
    assert_eq!(history.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=history.len() as u64).collect::<Vec<_>>());
    assert!(history.iter().any(|e| message_of(e).is_some_and(|m| m.text == "hoe stuur ik een artikel retour")));
    assert!(history.iter().all(|e| e.conversation_id == conversation_id));

    // Live: the customer's message and the agent's own, in order.
    send(&mut chat, &conversation_id, "het gaat om bestelling 12345").await;
    let customer = next_event(&mut events).await.unwrap();
    let customer = message_of(&customer).unwrap().clone();
    assert_eq!((customer.author(), customer.text.as_str()), (pb::Author::Customer, "het gaat om bestelling 12345"));
    alice.send_agent_message(message(&handoff_id, "", "Ik kijk het na")).await.unwrap();
    let own = next_event(&mut events).await.unwrap();
    assert_eq!((message_of(&own).unwrap().author(), own.seq), (pb::Author::Agent, customer.seq + 1));

    // Resumed after the customer's message: only what followed it.
    drop(events);
    send(&mut chat, &conversation_id, "dank je").await;
    let mut resumed = watch_handoff(&mut alice, &handoff_id, customer.seq).await;
    let texts = [next_event(&mut resumed).await.unwrap(), next_event(&mut resumed).await.unwrap()];
    let texts = texts.iter().map(|e| message_of(e).unwrap().text.clone()).collect::<Vec<_>>();
    assert_eq!(texts, ["Ik kijk het na", "dank je"]);
    server.stop().await;
}

#[tokio::test]
async fn the_stream_ends_when_the_handoff_is_transferred_or_resolved_and_access_goes_with_it() {
    let (server, _dir) = fresh_server().await;
    let (conversation_id, handoff_id) = queued_handoff(&server, "cust-gone").await;
    let mut alice = server.agent_as("alice").await;
    alice.claim_handoff(claim(&handoff_id, "")).await.unwrap();
    let mut events = watch_handoff(&mut alice, &handoff_id, 0).await;
    until_claimed(&mut events).await;

    // Transferred: alice sees the conversation go back to the queue, then the stream ends.
    alice.transfer_handoff(transfer(&handoff_id, "")).await.unwrap();
    let moved = next_event(&mut events).await.unwrap();
    assert_eq!(state_change(&moved), Some((pb::ConversationState::Agent, pb::ConversationState::Queued)));
    let ended = next_event(&mut events).await.unwrap_err();
    assert_eq!(ended.code(), Code::PermissionDenied);
    assert!(ended.message().contains("transferred"), "{}", ended.message());
    assert!(tokio::time::timeout(Duration::from_secs(1), events.next()).await.unwrap().is_none());
    let again = alice.watch_handoff(watch(&handoff_id, "", 0)).await.unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied);
    assert!(again.message().contains("transferred"), "{}", again.message());

    // Bob takes it over and follows it until he resolves it; the bot's rating question is not his to see.
    let mut bob = server.agent_as("bob").await;
    bob.claim_handoff(claim(&handoff_id, "")).await.unwrap();
    let mut bobs = watch_handoff(&mut bob, &handoff_id, moved.seq).await;
    assert_eq!(
        state_change(&next_event(&mut bobs).await.unwrap()),
        Some((pb::ConversationState::Queued, pb::ConversationState::Agent))
    );
    assert_eq!(alice.watch_handoff(watch(&handoff_id, "", 0)).await.unwrap_err().code(), Code::PermissionDenied);
    bob.resolve_handoff(resolve(&handoff_id, "")).await.unwrap();
    assert_eq!(
        state_change(&next_event(&mut bobs).await.unwrap()),
        Some((pb::ConversationState::Agent, pb::ConversationState::Resolved))
    );
    let ended = next_event(&mut bobs).await.unwrap_err();
    assert_eq!(ended.code(), Code::PermissionDenied);
    assert!(ended.message().contains("resolved"), "{}", ended.message());
    let again = bob.watch_handoff(watch(&handoff_id, "", 0)).await.unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied);
    // The customer's own stream goes on: the bot took the conversation back.
    let mut chat = server.chat().await;
    let all = chat.get_conversation(pb::GetConversationRequest { conversation_id }).await.unwrap().into_inner();
    assert_eq!(all.state(), pb::ConversationState::Bot);
    server.stop().await;
}

#[tokio::test]
async fn watching_a_handoff_needs_holding_it() {
    let (server, _dir) = fresh_server().await;
    let (_, handoff_id) = queued_handoff(&server, "cust-peek").await;
    let mut alice = server.agent_as("alice").await;
    let mut bob = server.agent_as("bob").await;
    let code = |r: Result<tonic::Response<Events>, Status>| r.map(|_| ()).unwrap_err().code();
    assert_eq!(code(alice.watch_handoff(watch(&handoff_id, "", 0)).await), Code::PermissionDenied, "queued");
    assert_eq!(code(alice.watch_handoff(watch("nope", "", 0)).await), Code::NotFound);
    assert_eq!(code(alice.watch_handoff(watch("", "", 0)).await), Code::InvalidArgument);
    alice.claim_handoff(claim(&handoff_id, "")).await.unwrap();
    assert_eq!(code(bob.watch_handoff(watch(&handoff_id, "", 0)).await), Code::PermissionDenied, "alice's");
    let mut admin = server.agent_admin().await;
    assert_eq!(code(admin.watch_handoff(watch(&handoff_id, "", 0)).await), Code::InvalidArgument, "names no agent");
    assert_eq!(code(admin.watch_handoff(watch(&handoff_id, "bob", 0)).await), Code::PermissionDenied);
    let mut for_alice = admin.watch_handoff(watch(&handoff_id, "alice", 0)).await.unwrap().into_inner();
    assert_eq!(next_event(&mut for_alice).await.unwrap().seq, 1);
    // ChatService's watch stays the front-end's: agent keys are not let in there.
    let mut chat_as_agent =
        loket::server::pb::chat_service_client::ChatServiceClient::new(server.authed(&server.keys.agent).await);
    let request = pb::WatchConversationRequest {
        conversation_id: stored_handoff(&server, &handoff_id).await.conversation_id,
        after_seq: 0,
    };
    assert_eq!(chat_as_agent.watch_conversation(request).await.unwrap_err().code(), Code::PermissionDenied);
    server.stop().await;
}

/// Calls every AgentService RPC but those in `skip` with `client` about `handoff_id` as `agent_id`; returns each
/// RPC's status code.
async fn every_agent_rpc(client: &Agent, handoff_id: &str, agent_id: &str, skip: &[&str]) -> Vec<(&'static str, Code)> {
    let mut c = client.clone();
    let code = |r: Result<(), Status>| r.err().map_or(Code::Ok, |s| s.code());
    let mut codes = Vec::new();
    let rpcs = [
        "WatchQueue",
        "WatchHandoff",
        "ClaimHandoff",
        "SendAgentMessage",
        "TransferHandoff",
        "ResolveHandoff",
        "ListHandoffs",
        "GetHandoff",
        "GetAgent",
    ];
    for rpc in rpcs.into_iter().filter(|rpc| !skip.contains(rpc)) {
        let got = match rpc {
            "WatchQueue" => {
                let queue = pb::WatchQueueRequest { agent_id: agent_id.into(), skills: vec!["returns".into()] };
                code(c.watch_queue(queue).await.map(|_| ()))
            }
            "WatchHandoff" => code(c.watch_handoff(watch(handoff_id, agent_id, 0)).await.map(|_| ())),
            "ClaimHandoff" => code(c.claim_handoff(claim(handoff_id, agent_id)).await.map(|_| ())),
            "SendAgentMessage" => code(c.send_agent_message(message(handoff_id, agent_id, "hi")).await.map(|_| ())),
            "TransferHandoff" => code(c.transfer_handoff(transfer(handoff_id, agent_id)).await.map(|_| ())),
            "ResolveHandoff" => code(c.resolve_handoff(resolve(handoff_id, agent_id)).await.map(|_| ())),
            "ListHandoffs" => code(c.list_handoffs(pb::ListHandoffsRequest::default()).await.map(|_| ())),
            "GetAgent" => code(c.get_agent(pb::GetAgentRequest { agent_id: agent_id.into() }).await.map(|_| ())),
            _ => code(c.get_handoff(pb::GetHandoffRequest { handoff_id: handoff_id.into() }).await.map(|_| ())),
        };
        codes.push((rpc, got));
    }
    codes
}

/// What `every_agent_rpc` answered that differs from `expected` (an RPC not named there must succeed).
fn unexpected(got: Vec<(&'static str, Code)>, expected: &[(&str, Code)]) -> Vec<String> {
    got.into_iter()
        .filter_map(|(rpc, code)| {
            let want = expected.iter().find(|(name, _)| *name == rpc).map_or(Code::Ok, |(_, c)| *c);
            (code != want).then(|| format!("{rpc}: {code:?}, expected {want:?}"))
        })
        .collect()
}

#[tokio::test]
async fn every_agent_rpc_refuses_bad_callers_and_stale_handoffs_precisely_and_changes_nothing() {
    use Code::{FailedPrecondition as Failed, NotFound, PermissionDenied as Denied, Unauthenticated};
    let (server, _dir) = fresh_server().await;
    let mut alice = server.agent_as("alice").await;
    let bob = server.agent_as("bob").await;
    let (_, held) = queued_handoff(&server, "cust-held").await;
    let (_, moved) = queued_handoff(&server, "cust-moved").await;
    alice.claim_handoff(claim(&held, "")).await.unwrap();
    alice.claim_handoff(claim(&moved, "")).await.unwrap();
    alice.transfer_handoff(transfer(&moved, "")).await.unwrap();
    let mut failures = Vec::new();
    let mut check = |case: &str, got: Vec<(&'static str, Code)>, expected: &[(&str, Code)]| {
        failures.extend(unexpected(got, expected).into_iter().map(|f| format!("{case}: {f}")));
    };
    let (held_before, moved_before) = (stored_handoff(&server, &held).await, stored_handoff(&server, &moved).await);

    // Another agent's hand-off: it may be read (the whole desk reads the queue), not watched or worked.
    let changes = [("ClaimHandoff", Failed), ("SendAgentMessage", Failed), ("TransferHandoff", Failed)];
    let others = [("WatchHandoff", Denied), changes[0], changes[1], changes[2], ("ResolveHandoff", Failed)];
    check("bob on alice's", every_agent_rpc(&bob, &held, "", &[]).await, &others);
    // Another agent's name.
    let as_alice = [
        ("WatchQueue", Denied),
        ("WatchHandoff", Denied),
        ("ClaimHandoff", Denied),
        ("SendAgentMessage", Denied),
        ("TransferHandoff", Denied),
        ("ResolveHandoff", Denied),
        ("GetAgent", Denied),
    ];
    check("bob as alice", every_agent_rpc(&bob, &held, "alice", &[]).await, &as_alice);
    // A transferred hand-off, for the agent who had it (claiming it again would be allowed: it is queued).
    let transferred = [("WatchHandoff", Denied), changes[1], changes[2], ("ResolveHandoff", Failed)];
    check("transferred", every_agent_rpc(&alice, &moved, "", &["ClaimHandoff"]).await, &transferred);
    // Keys of other roles, and a revoked agent key.
    let everything = |code| {
        ["WatchQueue", "WatchHandoff", "ClaimHandoff", "SendAgentMessage", "TransferHandoff", "ResolveHandoff"]
            .into_iter()
            .chain(["ListHandoffs", "GetHandoff", "GetAgent"])
            .map(move |rpc| (rpc, code))
            .collect::<Vec<_>>()
    };
    for (role, token) in [("client", &server.keys.client), ("editor", &server.keys.editor)] {
        let client = AgentServiceClient::new(server.authed(token).await);
        check(role, every_agent_rpc(&client, &held, "alice", &[]).await, &everything(Denied));
    }
    let dora = server.agent_key("dora", &[]).await;
    let mut admin = server.admin().await;
    admin.revoke_api_key(pb::RevokeApiKeyRequest { key_id: key_id(&dora).into() }).await.unwrap();
    let revoked = AgentServiceClient::new(server.authed(&dora).await);
    check("revoked", every_agent_rpc(&revoked, &held, "", &[]).await, &everything(Unauthenticated));
    // An unknown hand-off.
    let unknown = [
        ("WatchHandoff", NotFound),
        ("ClaimHandoff", NotFound),
        ("SendAgentMessage", NotFound),
        ("TransferHandoff", NotFound),
        ("ResolveHandoff", NotFound),
        ("GetHandoff", NotFound),
    ];
    check("unknown", every_agent_rpc(&alice, "nope", "", &[]).await, &unknown);
    assert_eq!(stored_handoff(&server, &held).await, held_before, "the held hand-off is as it was");
    assert_eq!(stored_handoff(&server, &moved).await, moved_before, "the transferred hand-off is as it was");

    // A resolved hand-off, for the agent who resolved it.
    alice.resolve_handoff(resolve(&held, "")).await.unwrap();
    let resolved_before = stored_handoff(&server, &held).await;
    let resolved = [("WatchHandoff", Denied), changes[0], changes[1], changes[2], ("ResolveHandoff", Failed)];
    check("resolved", every_agent_rpc(&alice, &held, "", &[]).await, &resolved);
    assert_eq!(stored_handoff(&server, &held).await, resolved_before, "the resolved hand-off is as it was");
    assert!(failures.is_empty(), "{failures:#?}");
    server.stop().await;
}

#[tokio::test]
async fn open_streams_end_when_their_key_is_revoked() {
    let (server, _dir) = fresh_server().await;
    let (conversation_id, handoff_id) = queued_handoff(&server, "cust-revoked").await;
    let erin = server.agent_key("erin", &[]).await;
    let mut agent = AgentServiceClient::new(server.authed(&erin).await);
    let queue = pb::WatchQueueRequest { agent_id: String::new(), skills: vec!["returns".into()] };
    let mut queue = agent.watch_queue(queue).await.unwrap().into_inner();
    agent.claim_handoff(claim(&handoff_id, "")).await.unwrap();
    let mut events = watch_handoff(&mut agent, &handoff_id, 0).await;
    until_claimed(&mut events).await;

    server.admin().await.revoke_api_key(pb::RevokeApiKeyRequest { key_id: key_id(&erin).into() }).await.unwrap();
    // A quiet stream ends too, within the second it checks in; a busy one at its next event.
    let ended = |status: Result<_, Status>| matches!(status, Err(status) if status.code() == Code::Unauthenticated);
    let next = tokio::time::timeout(Duration::from_secs(3), next_event(&mut events)).await.expect("the stream ends");
    assert!(ended(next.map(drop)), "the hand-off watch goes on after revocation");
    let mut unauthenticated = false;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(3), queue.next()).await {
        if ended(item.map(drop)) {
            unauthenticated = true;
            break;
        }
    }
    assert!(unauthenticated, "the queue watch goes on after revocation");
    // The customer's watch, whose key is live, is untouched.
    let mut chat = server.chat().await;
    let request = pb::WatchConversationRequest { conversation_id: conversation_id.clone(), after_seq: 0 };
    let mut watch = chat.watch_conversation(request).await.unwrap().into_inner();
    assert!(watch.next().await.unwrap().is_ok());
    server.stop().await;
}
