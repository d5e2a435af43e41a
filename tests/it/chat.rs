//! Conversations in Dutch and English through ChatService: answers, clarification, small talk, hand-off,
//! idempotent retries, the watch stream, health and reflection.

use loket::knowledge::KnowledgeBase;
use loket::server::pb::{self, DecisionKind};
use loket::text::normalize;
use tokio_stream::StreamExt;

use crate::harness::*;

/// Paraphrases written for this test; `paraphrases_are_not_copied_from_the_knowledge_base` keeps them honest.
const ROUTINE: &[(&str, &str, &str)] = &[
    ("nl", "hoeveel dagen heb ik om iets terug te sturen", "return-period"),
    ("nl", "help, ik weet mijn wachtwoord niet meer", "account-password-reset"),
    ("nl", "welke betaalmethodes kan ik gebruiken bij jullie", "payment-methods"),
    ("nl", "wanneer is de klantenservice open", "contact-opening-hours"),
    ("nl", "wat zijn de verzendkosten voor een klein pakketje", "delivery-costs"),
    ("en", "how long do i have to return something", "return-period"),
    ("en", "help, i can't remember my password", "account-password-reset"),
    ("en", "which payment options do you accept", "payment-methods"),
    ("en", "what are the opening hours of customer service", "contact-opening-hours"),
    ("en", "what does shipping cost me", "delivery-costs"),
];

#[test]
fn paraphrases_are_not_copied_from_the_knowledge_base() {
    let kb = KnowledgeBase::load(&knowledge_dir(), &["nl".into(), "en".into()]).unwrap();
    for (language, text, _) in ROUTINE {
        let copied =
            kb.faqs.iter().any(|faq| faq.translations[*language].examples().any(|e| normalize(e) == normalize(text)));
        assert!(!copied, "{text:?} is in the knowledge base");
    }
}

#[tokio::test]
async fn greets_in_the_customers_language() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let nl = start_conversation(&mut chat, "nl").await;
    assert_eq!(nl.greeting.unwrap().text, "Hallo, hoe kan ik je helpen?");
    let en = start_conversation(&mut chat, "en").await;
    assert_eq!(en.greeting.unwrap().text, "Hello, how can I help you?");
    let conversation = en.conversation.unwrap();
    assert_eq!(conversation.state(), pb::ConversationState::Bot);
    assert_eq!(conversation.tier(), pb::SupportTier::Standard);
}

#[tokio::test]
async fn routine_questions_get_the_right_faq_in_dutch_and_english() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    for (language, text, expected) in ROUTINE {
        let id = conversation_id(&start_conversation(&mut chat, language).await);
        let response = send(&mut chat, &id, text).await;
        assert_eq!(kind(&response), DecisionKind::Answer, "{text:?}: {:?}", response.decision);
        assert_eq!(top_faq(&response), *expected, "{text:?}");
        let reply = &response.replies[0];
        assert_eq!(reply.faq_id, *expected);
        assert_eq!(reply.language, *language);
        assert_eq!(reply.author(), pb::Author::Bot);
    }
}

#[tokio::test]
async fn out_of_scope_questions_are_not_answered_from_the_faq() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    for (language, text) in [("nl", "wat is de hoofdstad van Peru"), ("en", "what is the capital of Peru")] {
        let id = conversation_id(&start_conversation(&mut chat, language).await);
        let response = send(&mut chat, &id, text).await;
        // Declined with the offer of a colleague, not queued (issue 20): agents' time is precious.
        assert_eq!(kind(&response), DecisionKind::OffTopic, "{text:?}: {:?}", response.decision);
        assert_eq!(response.decision.as_ref().unwrap().handoff_reason(), pb::HandoffReason::Unspecified);
        assert_eq!(response.state(), pb::ConversationState::Bot);
        assert!(!response.replies[0].text.is_empty(), "the customer is told honestly");
    }
}

#[tokio::test]
async fn a_close_call_asks_a_clarifying_question_and_a_number_picks_the_answer() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let response = send(&mut chat, &id, "retour").await;
    assert_eq!(kind(&response), DecisionKind::Clarify, "{:?}", response.decision);
    let options = response.decision.unwrap().clarify_options;
    assert!(options.len() >= 2, "{options:?}");
    assert!(response.replies[0].text.contains("1."), "{}", response.replies[0].text);

    let chosen = send(&mut chat, &id, "2").await;
    assert_eq!(kind(&chosen), DecisionKind::Answer);
    assert_eq!(chosen.replies[0].faq_id, options[1]);
}

#[tokio::test]
async fn small_talk_in_both_languages() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "").await);
    for text in ["Hallo!", "dank je wel", "thanks a lot", "doei"] {
        let response = send(&mut chat, &id, text).await;
        assert_eq!(kind(&response), DecisionKind::SmallTalk, "{text:?}: {:?}", response.decision);
        assert_eq!(response.replies.len(), 1);
    }
    // A greeting followed by a question is a question.
    let response = send(&mut chat, &id, "hoi, hoe lang heb ik om iets terug te sturen?").await;
    assert_eq!(kind(&response), DecisionKind::Answer, "{:?}", response.decision);
}

#[tokio::test]
async fn asking_for_a_person_hands_off_at_once_and_the_bot_goes_silent() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    for (language, text) in [("nl", "ik wil een medewerker spreken"), ("en", "can I talk to a real person please")] {
        let id = conversation_id(&start_conversation(&mut chat, language).await);
        let response = send(&mut chat, &id, text).await;
        assert_eq!(kind(&response), DecisionKind::Handoff, "{text:?}");
        assert_eq!(response.decision.as_ref().unwrap().handoff_reason(), pb::HandoffReason::CustomerRequest);
        assert_eq!(response.state(), pb::ConversationState::Queued);

        let after = send(&mut chat, &id, "hoe lang duurt de levering").await;
        assert_eq!(kind(&after), DecisionKind::Silent);
        assert!(after.replies.is_empty());
        assert_eq!(after.message.unwrap().text, "hoe lang duurt de levering");
    }
}

#[tokio::test]
async fn the_language_is_detected_when_the_conversation_does_not_fix_it() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "").await);
    let english = send(&mut chat, &id, "how do I reset my password").await;
    assert_eq!(english.decision.unwrap().language, "en");
    let dutch = send(&mut chat, &id, "hoe kan ik mijn wachtwoord opnieuw instellen").await;
    assert_eq!(dutch.decision.unwrap().language, "nl");
}

#[tokio::test]
async fn social_replies_respect_the_character_limit() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let started = chat
        .start_conversation(pb::StartConversationRequest {
            customer_id: "c-social".into(),
            channel: pb::Channel::Social.into(),
            language: "en".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = conversation_id(&started);
    let response = send(&mut chat, &id, "what does it cost to return a product").await;
    assert!(!response.replies.is_empty());
    for reply in &response.replies {
        assert!(reply.text.chars().count() <= 280, "{} chars", reply.text.chars().count());
    }
}

#[tokio::test]
async fn a_retried_message_returns_the_first_answer_and_is_stored_once() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let request = pb::SendMessageRequest {
        conversation_id: id.clone(),
        text: "how long does delivery take".into(),
        client_message_id: "msg-1".into(),
    };
    let first = chat.send_message(request.clone()).await.unwrap().into_inner();
    let second = chat.send_message(request).await.unwrap().into_inner();
    assert!(!first.replayed);
    assert!(second.replayed);
    assert_eq!(first.message, second.message);
    assert_eq!(first.replies, second.replies);

    let transcript =
        chat.get_conversation(pb::GetConversationRequest { conversation_id: id }).await.unwrap().into_inner().messages;
    let customer: Vec<_> = transcript.iter().filter(|m| m.author() == pb::Author::Customer).collect();
    assert_eq!(customer.len(), 1);
    assert_eq!(transcript.len(), 1 + 1 + first.replies.len(), "greeting, message, replies");
}

#[tokio::test]
async fn watch_sees_every_event_of_a_send_and_ends_with_the_conversation() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let mut watch = chat
        .watch_conversation(pb::WatchConversationRequest { conversation_id: id.clone(), after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let greeting = watch.next().await.unwrap().unwrap();
    assert_eq!(greeting.seq, 1);

    let response = send(&mut chat, &id, "ik wil een mens spreken").await;
    let mut seen = Vec::new();
    for _ in 0..(1 + response.replies.len() + 1) {
        seen.push(watch.next().await.unwrap().unwrap());
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    assert!(
        matches!(&seen[0].event, Some(pb::conversation_event::Event::Message(m)) if m.author() == pb::Author::Customer)
    );
    assert!(matches!(&seen[1].event, Some(pb::conversation_event::Event::Message(m)) if m.author() == pb::Author::Bot));
    assert!(
        matches!(&seen[2].event, Some(pb::conversation_event::Event::StateChange(c)) if c.to() == pb::ConversationState::Queued)
    );

    chat.end_conversation(pb::EndConversationRequest { conversation_id: id.clone() }).await.unwrap();
    let mut rest = Vec::new();
    while let Some(event) = watch.next().await {
        rest.push(event.unwrap());
    }
    assert!(
        matches!(&rest.last().unwrap().event, Some(pb::conversation_event::Event::StateChange(c)) if c.to() == pb::ConversationState::Ended)
    );

    // A reconnecting watcher resumes after the last event it saw.
    let replay: Vec<_> = chat
        .watch_conversation(pb::WatchConversationRequest { conversation_id: id, after_seq: 3 })
        .await
        .unwrap()
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(replay.first().unwrap().as_ref().unwrap().seq, 4);
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let (server, _dir) = fresh_server().await;
    let mut health = HealthClient::new(server.channel().await);
    let status = health
        .check(HealthCheckRequest { service: "loket.v1.ChatService".into() })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_response::MessageResponse};
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("no service list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"loket.v1.ChatService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn a_retry_among_many_concurrent_messages_is_replayed_and_the_others_are_stored() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let retried = conversation_id(&start_conversation(&mut chat, "en").await);
    let request = pb::SendMessageRequest {
        conversation_id: retried.clone(),
        text: "how long does delivery take".into(),
        client_message_id: "once".into(),
    };
    let first = chat.send_message(request.clone()).await.unwrap().into_inner();
    let mut others = Vec::new();
    for _ in 0..20 {
        others.push(conversation_id(&start_conversation(&mut chat, "nl").await));
    }
    // The retry lands in the same database batch as other conversations' messages: the batch fails on its
    // duplicate id, and every commit is then written (or refused) on its own.
    let mut tasks = tokio::task::JoinSet::new();
    for (n, id) in others.iter().enumerate() {
        let mut chat = chat.clone();
        let request = pb::SendMessageRequest {
            conversation_id: id.clone(),
            text: "wat zijn de verzendkosten".into(),
            client_message_id: format!("m{n}"),
        };
        tasks.spawn(async move { chat.send_message(request).await.map(|r| r.into_inner().replayed) });
    }
    let mut retry_chat = chat.clone();
    tasks.spawn(async move { retry_chat.send_message(request).await.map(|r| r.into_inner().replayed) });
    let mut replayed = 0;
    while let Some(outcome) = tasks.join_next().await {
        replayed += usize::from(outcome.unwrap().expect("every message is accepted"));
    }
    assert_eq!(replayed, 1, "only the retry is a replay");
    for id in &others {
        let transcript =
            chat.get_conversation(pb::GetConversationRequest { conversation_id: id.clone() }).await.unwrap();
        assert!(transcript.into_inner().messages.iter().any(|m| m.text == "wat zijn de verzendkosten"));
    }
    let transcript = chat.get_conversation(pb::GetConversationRequest { conversation_id: retried }).await.unwrap();
    let stored = transcript.into_inner().messages.iter().filter(|m| m.client_message_id == "once").count();
    assert_eq!(stored, 1);
    assert!(!first.replayed);
}
