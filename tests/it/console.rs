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

#[tokio::test]
async fn get_agent_says_who_a_key_acts_as_and_which_skills_it_works() {
    let (server, _dir) = fresh_server().await;
    let mut admin = server.admin().await;
    let request = pb::CreateApiKeyRequest { skills: vec!["returns".into()], ..agent_key_request("anna", "Anna") };
    let token = admin.create_api_key(request).await.unwrap().into_inner().token;
    let mut anna = AgentServiceClient::new(server.authed(&token).await);
    let me = anna.get_agent(pb::GetAgentRequest::default()).await.unwrap().into_inner();
    assert_eq!((me.agent_id.as_str(), me.display_name.as_str()), ("anna", "Anna"));
    assert_eq!(me.skills, ["returns"]);
    for skill in ["returns", "logistics", "general"] {
        assert!(me.known_skills.iter().any(|s| s == skill), "{skill} in {:?}", me.known_skills);
    }
    assert!(me.known_skills.windows(2).all(|w| w[0] < w[1]), "sorted, once each: {:?}", me.known_skills);
    let refused = anna.get_agent(pb::GetAgentRequest { agent_id: "bob".into() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // A key for all skills works every known one; an admin names the agent it acts for and has no display name.
    let every = server.agent_as("bob").await.get_agent(pb::GetAgentRequest::default()).await.unwrap().into_inner();
    assert_eq!(every.skills, every.known_skills);
    let mut desk = server.agent_admin().await;
    let missing = desk.get_agent(pb::GetAgentRequest::default()).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    let acting = desk.get_agent(pb::GetAgentRequest { agent_id: "anna".into() }).await.unwrap().into_inner();
    assert_eq!((acting.agent_id.as_str(), acting.display_name.as_str()), ("anna", ""));
    let client = AgentServiceClient::new(server.authed(&server.keys.client).await);
    let refused = client.clone().get_agent(pb::GetAgentRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn a_handoffs_faq_candidates_carry_their_current_answers_for_the_agent() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let handed = send(&mut chat, &id, "ik wil een medewerker spreken over mijn retour").await;
    assert_eq!(kind(&handed), pb::DecisionKind::Handoff);
    assert!(handed.decision.as_ref().unwrap().faq_matches.iter().all(|m| m.answer.is_empty()), "not in a decision");
    let mut agent = server.agent().await;
    let listed = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner().handoffs;
    let handoff_id = listed[0].handoff_id.clone();
    let package = agent.get_handoff(pb::GetHandoffRequest { handoff_id: handoff_id.clone() }).await.unwrap();
    let candidates = package.into_inner().faq_candidates;
    assert!(candidates.iter().any(|c| c.faq_id == "return-how"), "{candidates:?}");
    let mut knowledge = server.knowledge().await;
    for candidate in &candidates {
        let faq = knowledge.get_faq(pb::GetFaqRequest { id: candidate.faq_id.clone() }).await.unwrap().into_inner();
        assert_eq!(candidate.answer, faq.translations["nl"].answer, "{}", candidate.faq_id);
    }
    assert_eq!(listed[0].faq_candidates, candidates, "lists carry them too");

    // An edit since the hand-off shows: the agent inserts what the knowledge base says now.
    let mut faq = knowledge.get_faq(pb::GetFaqRequest { id: "return-how".into() }).await.unwrap().into_inner();
    faq.translations.get_mut("nl").unwrap().answer = "Meld je retour aan via <b>Mijn account</b>.".into();
    let update = pb::UpdateFaqRequest {
        faq: Some(faq),
        update_mask: Some(prost_types::FieldMask { paths: vec!["translations".into()] }),
        author: "test".into(),
    };
    knowledge.update_faq(update).await.unwrap();
    let package = agent.get_handoff(pb::GetHandoffRequest { handoff_id }).await.unwrap().into_inner();
    let edited = package.faq_candidates.iter().find(|c| c.faq_id == "return-how").unwrap();
    assert_eq!(edited.answer, "Meld je retour aan via <b>Mijn account</b>.");
    server.stop().await;
}

#[tokio::test]
async fn a_conversation_says_while_the_rating_question_waits_for_an_answer() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    let awaiting = |chat: &mut pb::chat_service_client::ChatServiceClient<Authed>, id: &str| {
        let mut chat = chat.clone();
        let request = pb::GetConversationRequest { conversation_id: id.to_owned() };
        async move { chat.get_conversation(request).await.unwrap().into_inner().awaiting_rating }
    };
    // Three resolved hand-offs: rated through the API, rated in text, and left for another question.
    for (customer, then) in [("c-api", None), ("c-text", Some("4")), ("c-moves-on", Some("wat zijn de verzendkosten"))]
    {
        let (id, _, _) = ask_for_a_person(&mut chat, customer).await;
        assert!(!awaiting(&mut chat, &id).await, "not before the resolution");
        let list = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
        let handoff_id = list.handoffs.iter().find(|h| h.conversation_id == id).unwrap().handoff_id.clone();
        agent
            .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), ..Default::default() })
            .await
            .unwrap();
        agent.resolve_handoff(pb::ResolveHandoffRequest { handoff_id, ..Default::default() }).await.unwrap();
        assert!(awaiting(&mut chat, &id).await, "{customer}: asked");
        match then {
            None => {
                let rate =
                    pb::RateConversationRequest { conversation_id: id.clone(), score: 5, comment: String::new() };
                chat.rate_conversation(rate).await.unwrap();
            }
            Some(text) => {
                send(&mut chat, &id, text).await;
            }
        }
        assert!(!awaiting(&mut chat, &id).await, "{customer}: answered or gone on");
    }
    server.stop().await;
}
