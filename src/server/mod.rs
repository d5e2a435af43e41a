//! The gRPC transport: the only module that knows tonic and the generated types. Adapters validate, convert,
//! call the domain and convert back; the domain never sees a `Status`.

mod admin;
mod agent;
mod auth;
mod chat;
mod codec;
mod convert;
mod deadline;
mod knowledge;
mod latency;
mod stats;
mod status;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::info;

use crate::access::{Access, Role};
use crate::config::Config;
use crate::dialogue::Dialogue;
use crate::editor::Editor;
use crate::handoff::Desk;
use crate::knowledge::{Knowledge, LiveKnowledge};
use crate::stats::Stats;
use crate::webhooks::Webhooks;

/// Generated protobuf types and service stubs of `loket.v1`.
pub mod pb {
    tonic::include_proto!("loket.v1");

    /// The encoded descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("loket_descriptor");
}

pub use status::status_of;

/// Requests up to this size are always decoded, so the field validators, not the transport, answer an oversized
/// field (a 1 MB message text gets INVALID_ARGUMENT naming `text` and the limit). gRPC's usual default; it also
/// covers `ImportFaqs`, whose files are not bounded by `limits`.
const MIN_DECODING_BYTES: usize = 4 * 1024 * 1024;
/// No configuration makes one request hold more memory than this while it is decoded.
const MAX_DECODING_BYTES: usize = 64 * 1024 * 1024;

/// Largest request the transport decodes (larger ones are OUT_OF_RANGE): twice the largest valid request the
/// configured limits allow (a conversation start with every metadata entry full), within the bounds above.
fn decoding_limit(limits: &crate::config::LimitsConfig) -> usize {
    let entry = 256 + limits.max_message_bytes;
    let largest_valid = limits.max_metadata_entries.saturating_mul(entry).saturating_add(limits.max_message_bytes);
    largest_valid.saturating_mul(2).clamp(MIN_DECODING_BYTES, MAX_DECODING_BYTES)
}

/// The TLS identity from PEM files.
pub fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    use anyhow::Context;
    let cert = std::fs::read(cert).with_context(|| format!("reading TLS certificate {}", cert.display()))?;
    let key = std::fs::read(key).with_context(|| format!("reading TLS key {}", key.display()))?;
    Ok(tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key)))
}

/// The health-checked names of loket's services. They share one database, so they are up or down together.
const SERVICES: [&str; 5] = [
    <pb::chat_service_server::ChatServiceServer<chat::ChatApi> as NamedService>::NAME,
    <pb::agent_service_server::AgentServiceServer<agent::AgentApi> as NamedService>::NAME,
    <pb::knowledge_service_server::KnowledgeServiceServer<knowledge::KnowledgeApi> as NamedService>::NAME,
    <pb::stats_service_server::StatsServiceServer<stats::StatsApi> as NamedService>::NAME,
    <pb::admin_service_server::AdminServiceServer<admin::AdminApi> as NamedService>::NAME,
];

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    // "" is the server as a whole, which load balancers check by default.
    for service in SERVICES.into_iter().chain([""]) {
        health.set_service_status(service, status).await;
    }
}

/// Mirrors whether the database answers into the health service, until shutdown begins.
fn mirror_store_health(health: HealthReporter, mut reachable: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let status =
                if *reachable.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
            set_health(&health, status).await;
            if reachable.changed().await.is_err() {
                return;
            }
        }
    })
}

/// The domain services the adapters serve, built by `App`, and what the transport itself reads.
pub struct Services {
    pub dialogue: Arc<Dialogue>,
    pub desk: Arc<Desk>,
    pub editor: Arc<Editor>,
    pub stats: Arc<Stats>,
    pub access: Arc<Access>,
    pub webhooks: Arc<Webhooks>,
    /// Limits, web settings and languages.
    pub config: Arc<Config>,
    /// For the pages' texts (locale files).
    pub knowledge: Arc<LiveKnowledge>,
}

/// What the browser pages are told: the served languages' texts from their locale files, the default language
/// and the message limit.
fn page_config(config: &Config, knowledge: &Knowledge) -> crate::web::PageConfig {
    let languages = knowledge
        .base
        .locales
        .iter()
        .map(|(code, locale)| {
            let language = crate::web::PageLanguage { name: locale.name.clone(), texts: locale.ui.clone() };
            (code.clone(), language)
        })
        .collect();
    crate::web::PageConfig {
        default_language: config.languages.default.clone(),
        max_message_bytes: config.limits.max_message_bytes,
        languages,
    }
}

/// Serves every loket service on `listener` until `shutdown` completes, then drains in-flight requests. Health
/// follows `store_reachable` and turns NOT_SERVING as soon as shutdown begins, before the drain.
pub async fn serve(
    services: Services,
    tls: Option<tonic::transport::ServerTlsConfig>,
    listener: TcpListener,
    store_reachable: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled-in descriptor sets are valid");
    let Services { dialogue, desk, editor, stats, access, webhooks, config, knowledge } = services;
    let stats = stats::StatsApi::new(stats);
    let limits = config.limits.clone();
    let web = crate::web::WebLayer::new(&config.web, &page_config(&config, &knowledge.current()));
    let max_decoding = decoding_limit(&limits);
    // Every service behind the access gate, with the roles it admits.
    let gate = |service, roles| auth::Gate::new(Arc::clone(&access), service, roles);
    let stats = InterceptedService::new(
        pb::stats_service_server::StatsServiceServer::new(stats).max_decoding_message_size(max_decoding),
        gate("StatsService", &[Role::Editor, Role::Admin]),
    );
    let chat = InterceptedService::new(
        pb::chat_service_server::ChatServiceServer::new(chat::ChatApi::new(
            dialogue,
            Arc::clone(&desk),
            Arc::clone(&access),
        ))
        .max_decoding_message_size(max_decoding),
        gate("ChatService", &[Role::Client, Role::Widget, Role::Admin]),
    );
    let agent = InterceptedService::new(
        pb::agent_service_server::AgentServiceServer::new(agent::AgentApi::new(desk, Arc::clone(&access)))
            .max_decoding_message_size(max_decoding),
        gate("AgentService", &[Role::Agent, Role::Admin]),
    );
    let knowledge = InterceptedService::new(
        pb::knowledge_service_server::KnowledgeServiceServer::new(knowledge::KnowledgeApi::new(editor))
            .max_decoding_message_size(max_decoding),
        gate("KnowledgeService", &[Role::Editor, Role::Admin]),
    );
    let admin = InterceptedService::new(
        pb::admin_service_server::AdminServiceServer::new(admin::AdminApi::new(Arc::clone(&access), webhooks))
            .max_decoding_message_size(max_decoding),
        gate("AdminService", &[Role::Admin]),
    );
    // The knowledge base and model are loaded before we get here, so SERVING is true from the first request
    // (unless the database is down).
    let mirror = mirror_store_health(health.clone(), store_reachable);
    let shutdown = async move {
        shutdown.await;
        mirror.abort();
        set_health(&health, ServingStatus::NotServing).await;
    };
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    info!(%address, tls = tls.is_some(), "serving gRPC");
    // HTTP/1.1 too: browsers speak gRPC-Web over it, and load the pages.
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(limits.max_concurrent_streams))
        .accept_http1(true);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    // Not tonic's `Server::timeout`: it answers CANCELLED (see `deadline`).
    let timeout =
        (limits.request_timeout_secs > 0).then(|| std::time::Duration::from_secs(limits.request_timeout_secs));
    builder
        // Pages and the origin check first: what is not a gRPC method never reaches tonic-web (which answers 400
        // to any other HTTP/1.1 request), and a refused origin reaches no service.
        .layer(web)
        // gRPC-Web (HTTP/1.1 or 2, binary or base64) translated to gRPC; gRPC passes through unchanged.
        .layer(tonic_web::GrpcWebLayer::new())
        // Around every call as gRPC, so the latency and code recorded are those the client sees, DEADLINE_EXCEEDED
        // included.
        .layer(latency::LatencyLayer::new())
        .layer(deadline::DeadlineLayer::new(timeout))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(chat)
        .add_service(agent)
        .add_service(knowledge)
        .add_service(stats)
        .add_service(admin)
        // The incoming stream's own setting applies, not the builder's: without it Nagle's algorithm holds small
        // responses back for tens of milliseconds (BENCHMARKS.md).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
}
