//! What the agent console and the customer widget need from the API besides the calls they share with every
//! front-end: the agent's display name on their messages (never the key or the agent id).

use loket::server::pb;
use loket::server::pb::agent_service_client::AgentServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::harness::*;

fn agent_key_request(name: &str, display_name: &str) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        name: name.into(),
        role: pb::Role::Agent.into(),
        skills: vec![],
        display_name: display_name.into(),
    }
}

#[tokio::test]
async fn an_agents_messages_carry_the_display_name_of_their_key_and_nothing_else_of_it() {
    let (server, _dir) = fresh_server().await;
    let mut admin = server.admin().await;
    let created = admin.create_api_key(agent_key_request("emp-4711", " Anna ")).await.unwrap().into_inner();
    assert_eq!(created.key.as_ref().unwrap().display_name, "Anna", "trimmed");
    let listed = admin.list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().keys;
    assert!(listed.iter().any(|k| k.name == "emp-4711" && k.display_name == "Anna"));
    let mut anna = AgentServiceClient::new(server.authed(&created.token).await);

    let mut chat = server.chat().await;
    let (conversation_id, after, _) = ask_for_a_person(&mut chat, "cust-name").await;
    let list = anna.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff_id = list.handoffs[0].handoff_id.clone();
    anna.claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: String::new() })
        .await
        .unwrap();
    let send = |text: &str| pb::SendAgentMessageRequest {
        handoff_id: handoff_id.clone(),
        agent_id: String::new(),
        text: text.into(),
    };
    let sent = anna.send_agent_message(send("Hallo, ik ben Anna.")).await.unwrap().into_inner();
    assert_eq!(sent.author_name, "Anna");

    // An administrator writing for the agent has no display name of its own: the customer sees none.
    let mut admin_desk = server.agent_admin().await;
    let mut for_anna = send("Nog even geduld.");
    for_anna.agent_id = "emp-4711".into();
    let by_admin = admin_desk.send_agent_message(for_anna).await.unwrap().into_inner();
    assert_eq!(by_admin.author_name, "");

    // The customer sees the name live and in the transcript; neither the key nor the agent id reaches them.
    let request = pb::WatchConversationRequest { conversation_id: conversation_id.clone(), after_seq: after };
    let mut events = chat.watch_conversation(request).await.unwrap().into_inner();
    let mut names = Vec::new();
    while names.len() < 2 {
        let event = events.next().await.expect("an event").unwrap();
        if let Some(message) = message_of(&event).filter(|m| m.author() == pb::Author::Agent) {
            names.push(message.author_name.clone());
        }
    }
    assert_eq!(names, ["Anna", ""]);
    let request = pb::GetConversationRequest { conversation_id };
    let conversation = chat.get_conversation(request).await.unwrap().into_inner();
    let shown = format!("{conversation:?}");
    assert!(shown.contains("Anna") && !shown.contains("emp-4711"), "{shown}");
    assert!(!shown.contains(created.key.as_ref().unwrap().key_id.as_str()), "no key id");

    // Only agent keys have one, of a name's length, on one line.
    for (role, display_name) in
        [(pb::Role::Client, "Anna"), (pb::Role::Agent, "A\nnna"), (pb::Role::Agent, &"A".repeat(65))]
    {
        let request = pb::CreateApiKeyRequest { role: role.into(), ..agent_key_request("x", display_name) };
        let refused = admin.create_api_key(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{role:?} {display_name:?}");
        assert!(refused.message().contains("display_name"), "{}", refused.message());
    }
    server.stop().await;
}
