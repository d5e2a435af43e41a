//! The protocol's edges through the real server: bytes that are not a valid request, control characters, sizes
//! between the field limit and the transport's, empty ids, the form of the credential, deadlines, and pages that
//! stay put while data arrives.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use loket::server::pb;
use loket::server::pb::admin_service_client::AdminServiceClient;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::knowledge_service_client::KnowledgeServiceClient;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::harness::*;

/// Sends and receives message bytes as they are, so a test can put on the wire what no generated client would.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Calls `/loket.v1.<rpc>` with `bytes` as the request message.
async fn raw_call(server: &TestServer, token: &str, rpc: &'static str, bytes: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(server.authed(token).await);
    grpc.ready().await.expect("channel ready");
    let path = http::uri::PathAndQuery::try_from(format!("/loket.v1.{rpc}")).unwrap();
    grpc.unary(tonic::Request::new(bytes), path, RawCodec).await.map(tonic::Response::into_inner)
}

/// A length-delimited protobuf field (wire type 2) holding `value`, which may be any bytes.
fn bytes_field(number: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2, value.len() as u8];
    out.extend_from_slice(value);
    out
}

fn violation_fields(status: &Status) -> Vec<String> {
    let details = status.get_details_bad_request().unwrap_or_else(|| panic!("no BadRequest details: {status:?}"));
    details.field_violations.into_iter().map(|v| v.field).collect()
}

async fn transcript(chat: &mut ChatServiceClient<Authed>, id: &str) -> Vec<pb::Message> {
    let request = pb::GetConversationRequest { conversation_id: id.into() };
    chat.get_conversation(request).await.unwrap().into_inner().messages
}

#[tokio::test]
async fn a_request_that_does_not_decode_is_invalid_argument_naming_the_field() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);

    // SendMessageRequest { conversation_id: id, text: <not UTF-8> }
    let mut request = bytes_field(1, id.as_bytes());
    request.extend(bytes_field(2, &[b'h', 0xff, 0xfe, b'i']));
    let status = raw_call(&server, &server.keys.client, "ChatService/SendMessage", request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violation_fields(&status), ["text"]);

    // Nested: CreateFaqRequest { faq: Faq { category: <not UTF-8> } }.
    let request = bytes_field(1, &bytes_field(2, &[0xc3, 0x28]));
    let status = raw_call(&server, &server.keys.editor, "KnowledgeService/CreateFaq", request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violation_fields(&status), ["faq.category"]);

    // Not protobuf at all: a length running past the end of the message.
    let status =
        raw_call(&server, &server.keys.client, "ChatService/SendMessage", vec![0x12, 0x40, b'a']).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Nothing was stored, and the same bytes with valid text go through.
    assert_eq!(transcript(&mut chat, &id).await.len(), 1, "only the greeting");
    let mut request = bytes_field(1, id.as_bytes());
    request.extend(bytes_field(2, b"hallo"));
    raw_call(&server, &server.keys.client, "ChatService/SendMessage", request).await.expect("valid bytes");
    server.stop().await;
}

#[tokio::test]
async fn control_characters_in_text_and_ids_are_refused_and_not_stored() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let message = |text: &str, client_message_id: &str| pb::SendMessageRequest {
        conversation_id: id.clone(),
        text: text.into(),
        client_message_id: client_message_id.into(),
    };
    for (request, field) in [
        (message("\u{0}\u{1}\u{2}", ""), "text"),
        (message("waar is mijn pakket\u{1b}[2J", ""), "text"),
        (message("bel me\u{7f}", ""), "text"),
        (message("hallo", "m\n1"), "client_message_id"),
    ] {
        let status = chat.send_message(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violation_fields(&status), [field]);
    }
    assert_eq!(transcript(&mut chat, &id).await.len(), 1, "only the greeting");
    // Tabs and line breaks are ordinary text.
    chat.send_message(message("hoe stuur ik\r\neen artikel\tretour", "")).await.expect("line breaks are text");

    let start = |customer_id: &str, metadata: &[(&str, &str)]| pb::StartConversationRequest {
        customer_id: customer_id.into(),
        metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        customer_id_signature: String::new(),
        ..Default::default()
    };
    for (request, field) in [(start("c\u{0}", &[]), "customer_id"), (start("c", &[("page", "/\u{7}")]), "metadata")] {
        let status = chat.start_conversation(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violation_fields(&status), [field]);
    }

    // An agent's message to the customer (agent "anna", her own key: an agent key acts only as its agent).
    let (conversation, _, _) = ask_for_a_person(&mut chat, "cust-ctl").await;
    let mut agent = server.agent_as("anna").await;
    let handoff_id = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner().handoffs[0]
        .handoff_id
        .clone();
    agent
        .claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff_id.clone(), agent_id: String::new() })
        .await
        .unwrap();
    let before = transcript(&mut chat, &conversation).await.len();
    let request = pb::SendAgentMessageRequest { handoff_id, agent_id: String::new(), text: "hoi\u{0}".into() };
    let status = agent.send_agent_message(request).await.unwrap_err();
    assert_eq!((status.code(), violation_fields(&status)), (Code::InvalidArgument, vec!["text".to_owned()]));
    assert_eq!(transcript(&mut chat, &conversation).await.len(), before);
    server.stop().await;
}

#[tokio::test]
async fn a_megabyte_of_text_gets_the_field_limit_not_the_transport_limit() {
    let (server, _dir) = fresh_server().await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let request = pb::SendMessageRequest {
        conversation_id: id.clone(),
        text: "a".repeat(1024 * 1024),
        client_message_id: String::new(),
    };
    let status = chat.send_message(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violation_fields(&status), ["text"]);
    assert!(status.message().contains("4096"), "the limit is named: {}", status.message());
    assert_eq!(transcript(&mut chat, &id).await.len(), 1, "only the greeting");
    server.stop().await;
}

#[tokio::test]
async fn an_empty_id_is_invalid_argument_on_every_rpc_taking_one() {
    let (server, _dir) = fresh_server().await;
    let admin = server.keys.admin.clone();
    let chat = ChatServiceClient::new(server.authed(&admin).await);
    let agent = AgentServiceClient::new(server.authed(&admin).await);
    let knowledge = KnowledgeServiceClient::new(server.authed(&admin).await);
    let admin = AdminServiceClient::new(server.authed(&admin).await);
    let code = |r: Result<(), Status>| r.err().map_or(Code::Ok, |s| s.code());
    let calls: Vec<(&str, Code)> = vec![
        ("SendMessage", {
            let request = pb::SendMessageRequest { text: "hallo".into(), ..Default::default() };
            code(chat.clone().send_message(request).await.map(drop))
        }),
        (
            "WatchConversation",
            code(chat.clone().watch_conversation(pb::WatchConversationRequest::default()).await.map(drop)),
        ),
        ("GetConversation", code(chat.clone().get_conversation(pb::GetConversationRequest::default()).await.map(drop))),
        ("EndConversation", code(chat.clone().end_conversation(pb::EndConversationRequest::default()).await.map(drop))),
        ("RateConversation", {
            let request = pb::RateConversationRequest { score: 5, ..Default::default() };
            code(chat.clone().rate_conversation(request).await.map(drop))
        }),
        ("ClaimHandoff", {
            let request = pb::ClaimHandoffRequest { agent_id: "anna".into(), ..Default::default() };
            code(agent.clone().claim_handoff(request).await.map(drop))
        }),
        ("SendAgentMessage", {
            let request =
                pb::SendAgentMessageRequest { agent_id: "anna".into(), text: "hoi".into(), ..Default::default() };
            code(agent.clone().send_agent_message(request).await.map(drop))
        }),
        ("TransferHandoff", {
            let request =
                pb::TransferHandoffRequest { agent_id: "anna".into(), skill: "billing".into(), ..Default::default() };
            code(agent.clone().transfer_handoff(request).await.map(drop))
        }),
        ("ResolveHandoff", {
            let request = pb::ResolveHandoffRequest { agent_id: "anna".into(), ..Default::default() };
            code(agent.clone().resolve_handoff(request).await.map(drop))
        }),
        ("GetHandoff", code(agent.clone().get_handoff(pb::GetHandoffRequest::default()).await.map(drop))),
        ("GetFaq", code(knowledge.clone().get_faq(pb::GetFaqRequest::default()).await.map(drop))),
        ("DeleteFaq", code(knowledge.clone().delete_faq(pb::DeleteFaqRequest::default()).await.map(drop))),
        ("AttachKnowledgeGap", {
            let request = pb::AttachKnowledgeGapRequest { faq_id: "returns".into(), ..Default::default() };
            code(knowledge.clone().attach_knowledge_gap(request).await.map(drop))
        }),
        ("CreateFaqFromGap", {
            let request = pb::CreateFaqFromGapRequest { faq: Some(pb::Faq::default()), ..Default::default() };
            code(knowledge.clone().create_faq_from_gap(request).await.map(drop))
        }),
        ("RevokeApiKey", code(admin.clone().revoke_api_key(pb::RevokeApiKeyRequest::default()).await.map(drop))),
        ("EraseCustomer", code(admin.clone().erase_customer(pb::EraseCustomerRequest::default()).await.map(drop))),
    ];
    let wrong: Vec<_> = calls.iter().filter(|(_, code)| *code != Code::InvalidArgument).collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_credential_must_read_bearer_and_a_key() {
    let (server, _dir) = fresh_server().await;
    let token = server.keys.client.clone();
    let start = pb::StartConversationRequest { customer_id: "c".into(), ..Default::default() };
    for header in [token.clone(), format!("Basic {token}"), "Bearer ".to_owned(), format!("Bearer{token}")] {
        let channel = InterceptedService::new(server.channel().await, Raw(header.parse().unwrap()));
        let status = ChatServiceClient::new(channel).start_conversation(start.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{header:?}: {status:?}");
        assert!(status.message().contains("Bearer <key>"), "says the expected form: {}", status.message());
    }
    // The scheme's case is free (RFC 9110).
    let channel = InterceptedService::new(server.channel().await, Raw(format!("bearer {token}").parse().unwrap()));
    ChatServiceClient::new(channel).start_conversation(start).await.expect("bearer in lower case");
    server.stop().await;
}

/// Sends an `authorization` header exactly as given.
#[derive(Clone)]
struct Raw(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Raw {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

#[tokio::test]
async fn a_request_out_of_time_is_deadline_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.request_timeout_secs = 1;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);

    // Another process holds the database's write lock, so the message cannot be committed in time.
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.path().join("loket.db").display());
    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();

    let message = || pb::SendMessageRequest {
        conversation_id: id.clone(),
        text: "hoe stuur ik een artikel retour".into(),
        client_message_id: String::new(),
    };
    let started = Instant::now();
    let status = chat.send_message(message()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "the server's limit: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // The client's own, shorter deadline (grpc-timeout) gets the same answer.
    let mut request = tonic::Request::new(message());
    request.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let status = chat.send_message(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "the client's deadline: {status:?}");
    assert!(started.elapsed() < Duration::from_millis(950), "{:?}", started.elapsed());

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    drop(blocker);
    server.stop().await;
}

async fn handoff_page(agent: &mut AgentServiceClient<Authed>, page_token: String) -> pb::ListHandoffsResponse {
    let request = pb::ListHandoffsRequest { page_size: 2, page_token, ..Default::default() };
    agent.list_handoffs(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn handoff_pages_do_not_shift_when_handoffs_arrive_between_them() {
    let (server, _dir) = fresh_server().await;
    handoff_pages_stay_put(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn handoff_pages_do_not_shift_on_postgres_either() {
    let Some(database) = crate::postgres::TestPostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store =
        loket::store::PgStore::connect(&database.url, 4, std::time::Duration::from_secs(1)).await.expect("connect");
    let server = TestServer::start_on(test_config(dir.path()), std::sync::Arc::new(store)).await;
    handoff_pages_stay_put(&server).await;
    server.stop().await;
}

/// Pages through five hand-offs two at a time while three newer ones arrive after the first page.
async fn handoff_pages_stay_put(server: &TestServer) {
    let mut chat = server.chat().await;
    let mut agent = server.agent().await;
    for n in 0..5 {
        ask_for_a_person(&mut chat, &format!("early-{n}")).await;
        server.clock.advance(1000);
    }
    let listed = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner().handoffs;
    let existing: Vec<String> = listed.iter().map(|h| h.handoff_id.clone()).collect();

    let mut seen = Vec::new();
    let first = handoff_page(&mut agent, String::new()).await;
    seen.extend(first.handoffs.iter().map(|h| h.handoff_id.clone()));
    // Three newer hand-offs arrive between the first page and the next.
    for n in 0..3 {
        ask_for_a_person(&mut chat, &format!("late-{n}")).await;
        server.clock.advance(1000);
    }
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = handoff_page(&mut agent, token).await;
        seen.extend(page.handoffs.iter().map(|h| h.handoff_id.clone()));
        token = page.next_page_token;
    }
    assert_eq!(seen, existing, "every hand-off that existed, once each, in order");

    // Bad pages: a negative size, a made-up token, a token of another filter.
    let status = agent.list_handoffs(pb::ListHandoffsRequest { page_size: -1, ..Default::default() }).await;
    assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);
    for page_token in ["2", "garbage"] {
        let request = pb::ListHandoffsRequest { page_token: page_token.into(), ..Default::default() };
        let status = agent.list_handoffs(request).await.unwrap_err();
        assert_eq!((status.code(), violation_fields(&status)), (Code::InvalidArgument, vec!["page_token".to_owned()]));
    }
    let token = handoff_page(&mut agent, String::new()).await.next_page_token;
    let other_filter =
        pb::ListHandoffsRequest { page_token: token, state: pb::HandoffState::Claimed.into(), ..Default::default() };
    assert_eq!(agent.list_handoffs(other_filter).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn api_keys_and_knowledge_gaps_come_in_pages() {
    let (server, _dir) = fresh_server().await;
    let mut admin = server.admin().await;
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListApiKeysRequest { page_size: 2, page_token: token };
        let page = admin.list_api_keys(request).await.unwrap().into_inner();
        assert!(page.keys.len() <= 2);
        keys.extend(page.keys.into_iter().map(|k| k.key_id));
        // A key created while paging comes after the ones already listed, never in their place.
        if keys.len() == 2 {
            // Later than the harness's keys (the test clock stands still unless moved).
            server.clock.advance(1_000);
            let request = pb::CreateApiKeyRequest {
                name: "late".into(),
                role: pb::Role::Client.into(),
                skills: vec![],
                display_name: String::new(),
            };
            admin.create_api_key(request).await.unwrap();
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(keys.len(), 6, "the five of the harness and the late one: {keys:?}");
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), keys.len(), "no key twice");
    let bad = pb::ListApiKeysRequest { page_size: 0, page_token: "nope".into() };
    assert_eq!(admin.list_api_keys(bad).await.unwrap_err().code(), Code::InvalidArgument);

    // Questions the bot cannot answer, each in a conversation of its own (a hand-off silences the bot).
    let mut chat = server.chat().await;
    for text in ["may I bring my parrot into your shop", "do you repair old typewriters", "is there a bicycle rack"] {
        let id = conversation_id(&start_conversation(&mut chat, "en").await);
        send(&mut chat, &id, text).await;
    }
    let mut knowledge = server.knowledge().await;
    let all = knowledge.list_knowledge_gaps(pb::ListKnowledgeGapsRequest::default()).await.unwrap().into_inner();
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListKnowledgeGapsRequest { page_size: 1, page_token: token };
        let page = knowledge.list_knowledge_gaps(request).await.unwrap().into_inner();
        paged.extend(page.gaps.into_iter().map(|g| g.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(paged.len() >= 2, "{all:?}");
    assert_eq!(paged, all.gaps.iter().map(|g| g.id.clone()).collect::<Vec<_>>());
    let bad = pb::ListKnowledgeGapsRequest { page_size: -3, page_token: String::new() };
    assert_eq!(knowledge.list_knowledge_gaps(bad).await.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await;
}
