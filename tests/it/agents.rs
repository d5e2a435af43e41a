//! Agents are who their key says (issue 15): an agent key acts only as its own agent, an admin names the agent it
//! acts for and is audited.

use std::sync::Arc;

use loket::server::pb;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::store::{SqliteStore, Store};
use tonic::Code;

use crate::harness::*;

/// A customer asks for a person; returns the conversation and its hand-off (queued, skill "returns").
async fn queued_handoff(server: &TestServer, customer: &str) -> (String, String) {
    let mut chat = server.chat().await;
    let (conversation_id, _, _) = ask_for_a_person(&mut chat, customer).await;
    let list = server.agent().await.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff = list.handoffs.into_iter().find(|h| h.conversation_id == conversation_id).expect("handed off");
    (conversation_id, handoff.handoff_id)
}

/// The hand-off as stored, with its transcript (read with the admin key, which may read any).
async fn stored(server: &TestServer, handoff_id: &str) -> pb::Handoff {
    let request = pb::GetHandoffRequest { handoff_id: handoff_id.into() };
    server.agent_admin().await.get_handoff(request).await.unwrap().into_inner()
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

/// The key id of a token `lk_<id>_<secret>`.
fn key_id(token: &str) -> &str {
    token.strip_prefix("lk_").and_then(|rest| rest.split('_').next()).unwrap()
}

#[tokio::test]
async fn an_agent_key_acts_only_as_its_own_agent() {
    let (server, _dir) = fresh_server().await;
    let alice_token = server.agent_key("alice", &["returns"]).await;
    let mut alice = AgentServiceClient::new(server.authed(&alice_token).await);
    let keys = server.admin().await.list_api_keys(pb::ListApiKeysRequest {}).await.unwrap().into_inner().keys;
    let listed = keys.iter().find(|k| k.key_id == key_id(&alice_token)).expect("listed");
    assert_eq!(
        (listed.name.as_str(), listed.role(), listed.skills.clone()),
        ("alice", pb::Role::Agent, vec!["returns".to_string()])
    );
    let (_, handoff_id) = queued_handoff(&server, "cust-who").await;
    let before = stored(&server, &handoff_id).await;

    // Claiming as someone else is refused, naming both agents, and changes nothing.
    let refused = alice.claim_handoff(claim(&handoff_id, "bob")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("alice") && refused.message().contains("bob"), "{}", refused.message());
    let watch_as_bob = pb::WatchQueueRequest { agent_id: "bob".into(), skills: vec!["returns".into()] };
    assert_eq!(alice.watch_queue(watch_as_bob).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(stored(&server, &handoff_id).await, before);

    // Without an agent id (or with its own) the key acts as its agent.
    let claimed = alice.claim_handoff(claim(&handoff_id, "")).await.unwrap().into_inner();
    assert_eq!((claimed.state(), claimed.agent_id.as_str()), (pb::HandoffState::Claimed, "alice"));
    let claimed = stored(&server, &handoff_id).await;
    for refused in [
        alice.send_agent_message(message(&handoff_id, "bob", "I am bob")).await.map(|_| ()),
        alice.transfer_handoff(transfer(&handoff_id, "bob")).await.map(|_| ()),
        alice.resolve_handoff(resolve(&handoff_id, "bob")).await.map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    }
    assert_eq!(stored(&server, &handoff_id).await, claimed, "nothing said or done as bob");
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
    let before = stored(&server, &handoff_id).await;
    let audited = |entries: &[loket::store::AuditEntry]| {
        entries.iter().filter(|e| e.action == "act_for_agent").map(|e| e.detail.clone()).collect::<Vec<_>>()
    };

    // An admin has no agent of its own.
    let missing = admin.claim_handoff(claim(&handoff_id, " ")).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    let no_agent = pb::WatchQueueRequest { agent_id: String::new(), skills: vec!["returns".into()] };
    assert_eq!(admin.watch_queue(no_agent).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(stored(&server, &handoff_id).await, before);
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
