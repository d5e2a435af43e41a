//! Logs an operator can use: every RPC has a request id (the caller's `x-request-id`, or a new one) that comes
//! back in the response and stands on the RPC's log lines, which go to stderr as text or JSON.

use std::time::{Duration, Instant};

use loket::server::pb;
use loket::server::pb::chat_service_client::ChatServiceClient;

use crate::crash::spawn_loket_logged;
use crate::harness::*;

fn request_id<T>(response: &tonic::Response<T>) -> String {
    let value = response.metadata().get("x-request-id").expect("x-request-id in the response");
    value.to_str().unwrap().to_owned()
}

fn with_request_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-request-id", id.parse().unwrap());
    request
}

#[tokio::test]
async fn every_response_carries_the_request_id_the_caller_sent_or_a_new_one() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let get = || pb::GetConversationRequest { conversation_id: "nope".into() };
    let status = chat.get_conversation(with_request_id(get(), "support-ticket-4711")).await.unwrap_err();
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "support-ticket-4711", "errors carry it too");

    let started = start_request();
    let response = chat.start_conversation(with_request_id(started.clone(), "abc-123")).await.unwrap();
    assert_eq!(request_id(&response), "abc-123");
    let first = request_id(&chat.start_conversation(started.clone()).await.unwrap());
    let second = request_id(&chat.start_conversation(started.clone()).await.unwrap());
    assert!(first.len() == 32 && first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
    assert_ne!(first, second);
    // An id that is not one (too long, or with spaces) is replaced, not echoed into the logs.
    let long = "x".repeat(200);
    let replaced = request_id(&chat.start_conversation(with_request_id(started.clone(), &long)).await.unwrap());
    assert_ne!(replaced, long);
    let spaced = request_id(&chat.start_conversation(with_request_id(started, "a b")).await.unwrap());
    assert_ne!(spaced, "a b");
    server.stop().await;
}

fn start_request() -> pb::StartConversationRequest {
    pb::StartConversationRequest {
        customer_id: "customer-logs".into(),
        channel: pb::Channel::Chat.into(),
        language: "en".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn json_logs_on_stderr_name_the_rpc_and_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_key_with_cli(dir.path(), "admin");
    let (mut child, url, logs) =
        spawn_loket_logged(dir.path(), &["--log-format", "json", "--no-metrics"], "info,loket=debug");
    let mut chat = ChatServiceClient::new(connect_authed(&url, &admin).await);
    chat.start_conversation(with_request_id(start_request(), "trace-me-42")).await.unwrap();

    // The RPC's own line, as JSON with the span's fields.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        let Ok(line) = logs.recv_timeout(Duration::from_millis(200)) else { continue };
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["span"]["request_id"] == "trace-me-42" {
            found = Some(value);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let line = found.expect("a log line with the request id");
    assert_eq!(line["span"]["grpc_service"], "loket.v1.ChatService", "{line}");
    assert_eq!(line["span"]["grpc_method"], "StartConversation", "{line}");
    assert!(line["level"].is_string() && line["timestamp"].is_string(), "{line}");
}
