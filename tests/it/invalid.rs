//! Bad input: each gets a precise status, nothing is stored half-way, the server keeps serving.

use loket::server::pb;
use tonic::Code;

use crate::harness::*;

fn message(conversation_id: &str, text: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        conversation_id: conversation_id.into(),
        text: text.into(),
        client_message_id: String::new(),
    }
}

#[tokio::test]
async fn bad_messages_are_rejected_and_nothing_is_stored() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);

    let cases = [
        (message(&id, ""), Code::InvalidArgument),
        (message(&id, "   \n\t "), Code::InvalidArgument),
        (message(&id, &"a".repeat(4097)), Code::InvalidArgument),
        (message("no-such-conversation", "hallo"), Code::NotFound),
        (message("", "hallo"), Code::InvalidArgument),
        (pb::SendMessageRequest { client_message_id: "x".repeat(200), ..message(&id, "hallo") }, Code::InvalidArgument),
    ];
    for (request, expected) in cases {
        let status = chat.send_message(request.clone()).await.expect_err("must fail");
        assert_eq!(status.code(), expected, "{:?}: {status}", &request.text.chars().take(20).collect::<String>());
    }
    // Field violations travel as google.rpc.BadRequest details.
    let status = chat.send_message(message(&id, "")).await.unwrap_err();
    use tonic_types::StatusExt;
    let violations = status.get_details_bad_request().expect("bad request details").field_violations;
    assert_eq!(violations[0].field, "text");

    let transcript = chat
        .get_conversation(pb::GetConversationRequest { conversation_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(transcript.len(), 1, "only the greeting: {transcript:?}");

    // A message of exactly the limit is fine.
    let at_limit = format!("{} levering", "a".repeat(4096 - " levering".len()));
    chat.send_message(message(&id, &at_limit)).await.expect("4 KiB is allowed");
}

#[tokio::test]
async fn bad_conversation_starts_are_rejected() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let good = pb::StartConversationRequest { customer_id: "c".into(), ..Default::default() };
    let cases = [
        pb::StartConversationRequest { customer_id: String::new(), ..good.clone() },
        pb::StartConversationRequest { customer_id: "c".repeat(129), ..good.clone() },
        pb::StartConversationRequest { tier: 99, ..good.clone() },
        pb::StartConversationRequest { channel: -1, ..good.clone() },
        pb::StartConversationRequest { language: "xx".into(), ..good.clone() },
        pb::StartConversationRequest {
            metadata: (0..40).map(|i| (format!("k{i}"), "v".to_string())).collect(),
            ..good.clone()
        },
    ];
    for request in cases {
        let status = chat.start_conversation(request.clone()).await.expect_err("must fail");
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
    }
    chat.start_conversation(good).await.expect("defaults are fine");
}

#[tokio::test]
async fn ended_conversations_accept_nothing_more() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let ended = chat.end_conversation(pb::EndConversationRequest { conversation_id: id.clone() }).await.unwrap();
    assert_eq!(ended.into_inner().state(), pb::ConversationState::Ended);

    let status = chat.send_message(message(&id, "hello?")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = chat.end_conversation(pb::EndConversationRequest { conversation_id: id.clone() }).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    let unknown = pb::GetConversationRequest { conversation_id: "nope".into() };
    assert_eq!(chat.get_conversation(unknown).await.unwrap_err().code(), Code::NotFound);
    let watch = pb::WatchConversationRequest { conversation_id: "nope".into(), after_seq: 0 };
    assert_eq!(chat.watch_conversation(watch).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn hostile_text_gets_a_decision_not_a_crash() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "").await);
    for text in [
        "🙂🙂🙂",
        "\u{a0}\u{200b}\u{feff}",
        "%s%n{}{}",
        "ÉÉÉ ÄÖÜ ß",
        "مرحبا كيف حالك",
        "'; DROP TABLE events; --",
        "a b c d e f g",
    ] {
        let response = send(&mut chat, &id, text).await;
        assert!(response.decision.is_some(), "{text:?}");
        // Hand-offs make the bot silent; start over so every text meets the policy.
        if response.state() != pb::ConversationState::Bot {
            let _ = chat.end_conversation(pb::EndConversationRequest { conversation_id: id.clone() }).await;
            return;
        }
    }
}
