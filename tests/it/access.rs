//! Access control, limits and erasure through the real server: every RPC against every role, clients kept
//! apart, revocation, agent skills, rate limits with a retry delay, and EraseCustomer checked in the database.

use std::time::Duration;

use loket::server::pb;
use loket::server::pb::admin_service_client::AdminServiceClient;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;
use loket::server::pb::knowledge_service_client::KnowledgeServiceClient;
use loket::server::pb::stats_service_client::StatsServiceClient;
use prost::Message as _;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic_types::StatusExt;

use crate::harness::*;

/// Calls `rpc` with an empty (or minimal) request and returns the status code (`Ok` when it succeeded).
async fn call(server: &TestServer, bearer: Bearer, rpc: &str) -> Code {
    let channel = InterceptedService::new(server.channel().await, bearer);
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    macro_rules! unary {
        ($client:ident, $method:ident, $request:expr) => {
            code($client::new(channel).$method($request).await.map(|_| ()))
        };
    }
    match rpc {
        "ChatService/StartConversation" => unary!(
            ChatServiceClient,
            start_conversation,
            pb::StartConversationRequest { customer_id: "c".into(), ..Default::default() }
        ),
        "ChatService/SendMessage" => unary!(ChatServiceClient, send_message, pb::SendMessageRequest::default()),
        "ChatService/WatchConversation" => {
            unary!(ChatServiceClient, watch_conversation, pb::WatchConversationRequest::default())
        }
        "ChatService/GetConversation" => {
            unary!(ChatServiceClient, get_conversation, pb::GetConversationRequest::default())
        }
        "ChatService/EndConversation" => {
            unary!(ChatServiceClient, end_conversation, pb::EndConversationRequest::default())
        }
        "ChatService/RateConversation" => {
            unary!(ChatServiceClient, rate_conversation, pb::RateConversationRequest::default())
        }
        "AgentService/WatchQueue" => unary!(AgentServiceClient, watch_queue, pb::WatchQueueRequest::default()),
        "AgentService/WatchHandoff" => unary!(AgentServiceClient, watch_handoff, pb::WatchHandoffRequest::default()),
        "AgentService/ClaimHandoff" => unary!(AgentServiceClient, claim_handoff, pb::ClaimHandoffRequest::default()),
        "AgentService/SendAgentMessage" => {
            unary!(AgentServiceClient, send_agent_message, pb::SendAgentMessageRequest::default())
        }
        "AgentService/TransferHandoff" => {
            unary!(AgentServiceClient, transfer_handoff, pb::TransferHandoffRequest::default())
        }
        "AgentService/ResolveHandoff" => {
            unary!(AgentServiceClient, resolve_handoff, pb::ResolveHandoffRequest::default())
        }
        "AgentService/ListHandoffs" => unary!(AgentServiceClient, list_handoffs, pb::ListHandoffsRequest::default()),
        "AgentService/GetHandoff" => unary!(AgentServiceClient, get_handoff, pb::GetHandoffRequest::default()),
        "AgentService/GetAgent" => unary!(AgentServiceClient, get_agent, pb::GetAgentRequest::default()),
        "KnowledgeService/ListFaqs" => unary!(KnowledgeServiceClient, list_faqs, pb::ListFaqsRequest::default()),
        "KnowledgeService/GetFaq" => unary!(KnowledgeServiceClient, get_faq, pb::GetFaqRequest::default()),
        "KnowledgeService/CreateFaq" => unary!(KnowledgeServiceClient, create_faq, pb::CreateFaqRequest::default()),
        "KnowledgeService/UpdateFaq" => unary!(KnowledgeServiceClient, update_faq, pb::UpdateFaqRequest::default()),
        "KnowledgeService/DeleteFaq" => unary!(KnowledgeServiceClient, delete_faq, pb::DeleteFaqRequest::default()),
        "KnowledgeService/ImportFaqs" => {
            unary!(KnowledgeServiceClient, import_faqs, pb::ImportFaqsRequest::default())
        }
        "KnowledgeService/ExportFaqs" => unary!(KnowledgeServiceClient, export_faqs, pb::ExportFaqsRequest {}),
        "KnowledgeService/ListRevisions" => {
            unary!(KnowledgeServiceClient, list_revisions, pb::ListRevisionsRequest::default())
        }
        "KnowledgeService/TestQuery" => unary!(KnowledgeServiceClient, test_query, pb::TestQueryRequest::default()),
        "KnowledgeService/ListKnowledgeGaps" => {
            unary!(KnowledgeServiceClient, list_knowledge_gaps, pb::ListKnowledgeGapsRequest::default())
        }
        "KnowledgeService/AttachKnowledgeGap" => {
            unary!(KnowledgeServiceClient, attach_knowledge_gap, pb::AttachKnowledgeGapRequest::default())
        }
        "KnowledgeService/CreateFaqFromGap" => {
            unary!(KnowledgeServiceClient, create_faq_from_gap, pb::CreateFaqFromGapRequest::default())
        }
        "KnowledgeService/GetRetrainStatus" => {
            unary!(KnowledgeServiceClient, get_retrain_status, pb::GetRetrainStatusRequest {})
        }
        "StatsService/GetKpis" => unary!(StatsServiceClient, get_kpis, pb::GetKpisRequest::default()),
        "StatsService/GetKpiSeries" => {
            unary!(StatsServiceClient, get_kpi_series, pb::GetKpiSeriesRequest::default())
        }
        "StatsService/GetQueueSnapshot" => {
            unary!(StatsServiceClient, get_queue_snapshot, pb::GetQueueSnapshotRequest {})
        }
        "AdminService/CreateApiKey" => {
            unary!(AdminServiceClient, create_api_key, pb::CreateApiKeyRequest::default())
        }
        "AdminService/RevokeApiKey" => {
            unary!(AdminServiceClient, revoke_api_key, pb::RevokeApiKeyRequest::default())
        }
        "AdminService/ListApiKeys" => unary!(AdminServiceClient, list_api_keys, pb::ListApiKeysRequest::default()),
        "AdminService/EraseCustomer" => {
            unary!(AdminServiceClient, erase_customer, pb::EraseCustomerRequest::default())
        }
        "AdminService/ListFailedDeliveries" => {
            unary!(AdminServiceClient, list_failed_deliveries, pb::ListFailedDeliveriesRequest::default())
        }
        "AdminService/RedeliverWebhook" => {
            unary!(AdminServiceClient, redeliver_webhook, pb::RedeliverWebhookRequest::default())
        }
        other => panic!("the table has no call for {other}"),
    }
}

/// Every RPC of `loket.v1`, read from the compiled descriptors, so a new RPC cannot escape the table below.
fn every_rpc() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut rpcs = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "loket.v1") {
        for service in &file.service {
            for method in &service.method {
                rpcs.push(format!("{}/{}", service.name(), method.name()));
            }
        }
    }
    rpcs.sort();
    rpcs
}

#[tokio::test]
async fn every_rpc_admits_exactly_its_roles() {
    let (server, _dir) = fresh_server().await;
    let keys = &server.keys;
    let roles = [("client", &keys.client), ("agent", &keys.agent), ("editor", &keys.editor), ("admin", &keys.admin)];
    let rpcs = every_rpc();
    assert!(rpcs.len() >= 30, "{rpcs:?}");
    let mut failures = Vec::new();
    for rpc in &rpcs {
        let allowed: &[&str] = match rpc.split('/').next().unwrap() {
            "ChatService" => &["client", "admin"],
            "AgentService" => &["agent", "admin"],
            "KnowledgeService" | "StatsService" => &["editor", "admin"],
            "AdminService" => &["admin"],
            other => panic!("no roles written down for {other}"),
        };
        let anonymous = call(&server, Bearer::none(), rpc).await;
        if anonymous != Code::Unauthenticated {
            failures.push(format!("{rpc} without a key: {anonymous:?}"));
        }
        let forged = call(&server, Bearer::new("lk_000000000000_forged"), rpc).await;
        if forged != Code::Unauthenticated {
            failures.push(format!("{rpc} with a forged key: {forged:?}"));
        }
        for (role, token) in roles {
            let got = call(&server, Bearer::new(token), rpc).await;
            let denied = matches!(got, Code::PermissionDenied | Code::Unauthenticated);
            if allowed.contains(&role) == denied {
                failures.push(format!("{rpc} as {role}: {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    server.stop().await;
}

#[tokio::test]
async fn one_client_cannot_read_or_write_another_clients_conversation() {
    let (server, _dir) = fresh_server().await;
    let mut mine = server.chat().await;
    let id = conversation_id(&start_conversation(&mut mine, "en").await);
    send(&mut mine, &id, "how long does delivery take").await;
    let mut theirs = ChatServiceClient::new(server.authed(&server.keys.other_client).await);
    let denied = |r: Result<(), tonic::Status>| r.unwrap_err().code();
    let get = theirs.get_conversation(pb::GetConversationRequest { conversation_id: id.clone() }).await.map(|_| ());
    assert_eq!(denied(get), Code::PermissionDenied);
    let request = pb::SendMessageRequest { conversation_id: id.clone(), text: "hi".into(), ..Default::default() };
    assert_eq!(denied(theirs.send_message(request).await.map(|_| ())), Code::PermissionDenied);
    let watch = pb::WatchConversationRequest { conversation_id: id.clone(), after_seq: 0 };
    assert_eq!(denied(theirs.watch_conversation(watch).await.map(|_| ())), Code::PermissionDenied);
    let end = theirs.end_conversation(pb::EndConversationRequest { conversation_id: id.clone() }).await.map(|_| ());
    assert_eq!(denied(end), Code::PermissionDenied);
    let rate = pb::RateConversationRequest { conversation_id: id.clone(), score: 5, ..Default::default() };
    assert_eq!(denied(theirs.rate_conversation(rate).await.map(|_| ())), Code::PermissionDenied);
    // The owner and an administrator still can.
    mine.get_conversation(pb::GetConversationRequest { conversation_id: id.clone() }).await.unwrap();
    let mut admin = ChatServiceClient::new(server.authed(&server.keys.admin).await);
    let transcript =
        admin.get_conversation(pb::GetConversationRequest { conversation_id: id }).await.unwrap().into_inner();
    assert_eq!(transcript.messages.len(), 3, "nothing was added by the other client");
    server.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_rejected_at_once() {
    let (server, _dir) = fresh_server().await;
    let mut admin = server.admin().await;
    let created = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "kiosk".into(),
            role: pb::Role::Client.into(),
            skills: vec![],
            display_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut kiosk = ChatServiceClient::new(server.authed(&created.token).await);
    start_conversation(&mut kiosk, "nl").await;
    let key_id = created.key.unwrap().key_id;
    admin.revoke_api_key(pb::RevokeApiKeyRequest { key_id: key_id.clone() }).await.unwrap();
    let refused = kiosk
        .start_conversation(pb::StartConversationRequest { customer_id: "c".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let again = admin.revoke_api_key(pb::RevokeApiKeyRequest { key_id }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let listed = admin.list_api_keys(pb::ListApiKeysRequest::default()).await.unwrap().into_inner().keys;
    assert!(listed.iter().any(|k| k.name == "kiosk" && k.revoke_time.is_some()));
    let skills = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "x".into(),
            role: pb::Role::Client.into(),
            skills: vec!["billing".into()],
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(skills.code(), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test]
async fn an_agent_key_works_only_its_skills() {
    let (server, _dir) = fresh_server().await;
    let mut admin = server.admin().await;
    let billing = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "anna".into(),
            role: pb::Role::Agent.into(),
            skills: vec!["billing".into()],
            display_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    // A hand-off to the returns skill.
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    send(&mut chat, &id, "how long do i have to return something").await;
    let handed = send(&mut chat, &id, "I want to talk to a person").await;
    assert_eq!(handed.state(), pb::ConversationState::Queued);
    let mut anna = AgentServiceClient::new(server.authed(&billing).await);
    let all = server.agent().await.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff = all.handoffs.iter().find(|h| h.conversation_id == id).expect("queued").clone();
    assert_ne!(handoff.skill, "billing");
    let claim = pb::ClaimHandoffRequest { handoff_id: handoff.handoff_id.clone(), agent_id: "anna".into() };
    assert_eq!(anna.claim_handoff(claim).await.unwrap_err().code(), Code::PermissionDenied);
    let other = pb::ListHandoffsRequest { skill: handoff.skill.clone(), ..Default::default() };
    assert_eq!(anna.list_handoffs(other).await.unwrap_err().code(), Code::PermissionDenied);
    let own = anna.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    assert!(own.handoffs.iter().all(|h| h.skill == "billing"), "{own:?}");
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_resource_exhausted_with_a_delay_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.requests_per_second_per_key = 5.0;
    config.limits.request_burst_per_key = 3.0;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let start = || pb::StartConversationRequest { customer_id: "c".into(), ..Default::default() };
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(chat.start_conversation(start()).await);
    }
    assert!(outcomes[..3].iter().all(|o| o.is_ok()), "the burst passes");
    let limited = outcomes.pop().unwrap().unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    let delay = limited.get_details_retry_info().and_then(|r| r.retry_delay).expect("a retry delay");
    assert!(delay > Duration::ZERO && delay <= Duration::from_millis(200), "{delay:?}");
    // Other keys are not affected; after the delay this one recovers.
    ChatServiceClient::new(server.authed(&server.keys.other_client).await).start_conversation(start()).await.unwrap();
    tokio::time::sleep(delay).await;
    chat.start_conversation(start()).await.expect("recovered");
    server.stop().await;

    // Messages per conversation.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.messages_per_minute_per_conversation = 6.0;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let mut codes = Vec::new();
    for n in 0..7 {
        let request =
            pb::SendMessageRequest { conversation_id: id.clone(), text: format!("hello {n}"), ..Default::default() };
        codes.push(chat.send_message(request).await.err().map_or(Code::Ok, |s| s.code()));
    }
    assert_eq!(codes.iter().filter(|c| **c == Code::Ok).count(), 5, "a burst of 5: {codes:?}");
    assert_eq!(codes.last(), Some(&Code::ResourceExhausted));
    let other = conversation_id(&start_conversation(&mut chat, "en").await);
    send(&mut chat, &other, "hello").await;
    server.stop().await;
}

#[tokio::test]
async fn erasing_a_customer_leaves_nothing_behind_and_is_audited_without_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let start = |customer: &str| pb::StartConversationRequest {
        customer_id: customer.into(),
        language: "en".into(),
        ..Default::default()
    };
    let mut erased_ids = Vec::new();
    let (mut gaps, mut handoffs) = (0, 0);
    for text in ["may I bring my parrot into your shop? mail me at jan@example.com", "I want to talk to a person"] {
        let started = chat.start_conversation(start("jan@example.com")).await.unwrap().into_inner();
        let id = conversation_id(&started);
        let response = send(&mut chat, &id, text).await;
        handoffs += i64::from(response.state() == pb::ConversationState::Queued);
        let decision = response.decision.unwrap();
        if decision.kind() == pb::DecisionKind::Clarify || decision.handoff_reason() == pb::HandoffReason::LowConfidence
        {
            gaps += 1;
        }
        erased_ids.push(id);
    }
    assert_eq!(gaps, 1, "the parrot question is a knowledge gap");
    // The hand-off is worked and rated.
    let mut agent = server.agent_as("a").await;
    let queued = agent.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner().handoffs;
    let handoff = queued.iter().find(|h| h.conversation_id == erased_ids[1]).expect("handed off").handoff_id.clone();
    agent.claim_handoff(pb::ClaimHandoffRequest { handoff_id: handoff.clone(), agent_id: "a".into() }).await.unwrap();
    let resolve = pb::ResolveHandoffRequest { handoff_id: handoff, agent_id: "a".into(), note: String::new() };
    agent.resolve_handoff(resolve).await.unwrap();
    let rate = pb::RateConversationRequest { conversation_id: erased_ids[1].clone(), score: 4, ..Default::default() };
    chat.rate_conversation(rate).await.unwrap();
    let kept = conversation_id(&chat.start_conversation(start("piet")).await.unwrap().into_inner());
    let kept_reply = send(&mut chat, &kept, "may I bring my parrot into your shop").await;
    // Greeting, question and reply, plus the state change when the question went to a person.
    let kept_events = 3 + i64::from(kept_reply.state() == pb::ConversationState::Queued);

    let erased = server
        .admin()
        .await
        .erase_customer(pb::EraseCustomerRequest { customer_id: "jan@example.com".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((erased.conversations, erased.handoffs, erased.ratings), (2, handoffs, 1));
    assert!(erased.messages >= 2 + 2 + 2, "greetings, questions, replies: {erased:?}");
    assert_eq!(erased.knowledge_gaps, gaps);
    // Gone for the service too, not only on disk: nothing is answered from a conversation it remembered.
    for id in &erased_ids {
        let message =
            pb::SendMessageRequest { conversation_id: id.clone(), text: "hello".into(), ..Default::default() };
        let status = chat.send_message(message).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    }
    server.stop().await;

    // Straight from the database file.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("loket.db").display())).await.unwrap();
    let count = |sql: &'static str, id: String| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(&pool).await.unwrap() }
    };
    for id in &erased_ids {
        assert_eq!(count("SELECT COUNT(*) FROM conversations WHERE id = ?", id.clone()).await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM events WHERE conversation_id = ?", id.clone()).await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM handoffs WHERE conversation_id = ?", id.clone()).await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM knowledge_gaps WHERE conversation_id = ?", id.clone()).await, 0);
    }
    let anywhere = "SELECT (SELECT COUNT(*) FROM conversations WHERE customer_id = ?1) \
                    + (SELECT COUNT(*) FROM handoffs WHERE customer_id = ?1)";
    assert_eq!(count(anywhere, "jan@example.com".into()).await, 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM events WHERE conversation_id = ?", kept.clone()).await,
        kept_events,
        "others stay"
    );
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT action, detail FROM audit_log WHERE action = 'erase_customer'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(!audit[0].1.contains("jan") && audit[0].1.contains("\"conversations\":2"), "{audit:?}");
}

#[tokio::test]
async fn open_mode_needs_no_key_but_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.auth.mode = "open".into();
    let server = TestServer::start(config.clone()).await;
    assert_eq!(call(&server, Bearer::none(), "StatsService/GetKpis").await, Code::Ok);
    server.stop().await;
    config.server.listen = "0.0.0.0:50051".parse().unwrap();
    config.server.allow_plaintext = true;
    let refused = config.validate().unwrap_err().to_string();
    assert!(refused.contains("auth.mode"), "{refused}");
}

#[tokio::test]
async fn tls_round_trip_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let mut config = test_config(&dir.path().join("data"));
    config.server.tls_cert = dir.path().join("cert.pem");
    config.server.tls_key = dir.path().join("key.pem");
    let server = TestServer::start(config).await;

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS handshake");
    let mut chat = ChatServiceClient::new(InterceptedService::new(channel, Bearer::new(&server.keys.client)));
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let response = send(&mut chat, &id, "hoeveel dagen heb ik om iets terug te sturen").await;
    assert_eq!(response.replies[0].faq_id, "return-period");
    // Plain text to the TLS port does not get through.
    let plain = tonic::transport::Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await;
    if let Ok(plain) = plain {
        let mut chat = ChatServiceClient::new(InterceptedService::new(plain, Bearer::new(&server.keys.client)));
        let request = pb::StartConversationRequest { customer_id: "c".into(), ..Default::default() };
        assert!(chat.start_conversation(request).await.is_err());
    }
    server.stop().await;
}

#[test]
fn plain_text_is_only_served_on_loopback_unless_allowed() {
    let mut config = loket::config::Config::default();
    config.server.listen = "0.0.0.0:50051".parse().unwrap();
    assert!(config.validate().unwrap_err().to_string().contains("server.listen"));
    config.server.allow_plaintext = true;
    config.validate().unwrap();
    config.server.tls_cert = "cert.pem".into();
    assert!(config.validate().unwrap_err().to_string().contains("server.tls_key"));
}

#[tokio::test]
async fn transcripts_lose_their_personal_data_after_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.privacy.transcript_retention_days = 30;
    config.privacy.retention_check_secs = 1;
    let server = TestServer::start(config).await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let text = "I want to talk to a person, call me on 06-12345678 or mail jan@example.com";
    send(&mut chat, &id, text).await;
    let read = |chat: &mut ChatServiceClient<Authed>| {
        let mut chat = chat.clone();
        let id = id.clone();
        async move {
            let conversation = chat.get_conversation(pb::GetConversationRequest { conversation_id: id }).await;
            conversation.unwrap().into_inner().messages.into_iter().map(|m| m.text).collect::<Vec<_>>()
        }
    };
    assert!(read(&mut chat).await.iter().any(|t| t == text), "raw within the period");

    server.clock.advance(31 * 86_400_000);
    let mut redacted = Vec::new();
    for _ in 0..100 {
        redacted = read(&mut chat).await;
        if redacted.iter().any(|t| t.contains("[phone]")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        redacted.iter().any(|t| t == "I want to talk to a person, call me on [phone] or mail [email]"),
        "{redacted:?}"
    );
    let handoffs = server.agent().await.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap().into_inner();
    let handoff = handoffs.handoffs.iter().find(|h| h.conversation_id == id).unwrap().handoff_id.clone();
    let package = server.agent().await.get_handoff(pb::GetHandoffRequest { handoff_id: handoff }).await.unwrap();
    let package = format!("{:?}", package.into_inner());
    assert!(!package.contains("jan@example.com") && !package.contains("12345678"), "{package}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_keeps_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "en").await);
    let watch = pb::WatchConversationRequest { conversation_id: id.clone(), after_seq: 0 };
    let mut events = chat.watch_conversation(watch).await.unwrap().into_inner();
    let mut queue = server
        .agent_as("a")
        .await
        .watch_queue(pb::WatchQueueRequest { agent_id: "a".into(), skills: vec!["general".into()] })
        .await
        .unwrap()
        .into_inner();
    send(&mut chat, &id, "how long does delivery take").await;
    // The watcher has seen the greeting, the message and the reply.
    for _ in 0..3 {
        events.message().await.unwrap().expect("an event");
    }
    // Stopping returns (it would hang if the streams kept the connection open) and ends both streams.
    tokio::time::timeout(Duration::from_secs(30), server.stop()).await.expect("shutdown drains");
    let ended = loop {
        match events.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(ended.unwrap_err().code(), Code::Unavailable);
    let queue_end = loop {
        match queue.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(queue_end.is_err_and(|s| s.code() == Code::Unavailable));

    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let transcript = chat.get_conversation(pb::GetConversationRequest { conversation_id: id }).await.unwrap();
    assert_eq!(transcript.into_inner().messages.len(), 3);
    server.stop().await;
}
