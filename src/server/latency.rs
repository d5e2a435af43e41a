//! A tower layer that gives each gRPC request a tracing span with a request id, and records its latency and
//! status code for Prometheus
//! ([`crate::metrics::RPC_DURATION`], [`crate::metrics::RPC_REQUESTS`]). Labels follow the common gRPC
//! interceptors (go-grpc-prometheus): `grpc_service` ("loket.v1.ChatService") and `grpc_method` ("SendMessage")
//! for methods loket serves, "other" for any other path, so a client cannot invent label values; `code` is the
//! canonical status name ("OK", "NOT_FOUND"). The request id is the caller's `x-request-id` when it sends a
//! usable one (1-128 visible ASCII characters), else a new one; it comes back in the response's `x-request-id`, so
//! a caller's report and the server's log lines meet.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prost::Message;
use tower::{Layer, Service};
use tracing::Instrument;

/// The header carrying a request's id, both ways.
const REQUEST_ID: &str = "x-request-id";

use super::pb;

/// The `/package.Service/Method` paths of loket's services and health, from the compiled-in descriptors.
fn known_paths() -> HashSet<String> {
    let mut paths = HashSet::new();
    let sets = [pb::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET];
    let files = sets.iter().filter_map(|set| prost_types::FileDescriptorSet::decode(*set).ok()).flat_map(|s| s.file);
    for file in files {
        for service in &file.service {
            for method in &service.method {
                paths.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    paths
}

#[derive(Clone)]
pub struct LatencyLayer {
    known: Arc<HashSet<String>>,
}

impl LatencyLayer {
    pub fn new() -> Self {
        Self { known: Arc::new(known_paths()) }
    }
}

impl<S> Layer<S> for LatencyLayer {
    type Service = Latency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Latency { inner, known: Arc::clone(&self.known) }
    }
}

#[derive(Clone)]
pub struct Latency<S> {
    inner: S,
    known: Arc<HashSet<String>>,
}

impl<S, B, R> Service<http::Request<B>> for Latency<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        // "/loket.v1.ChatService/SendMessage" -> ("loket.v1.ChatService", "SendMessage")
        let (service, method) = match self.known.contains(path) {
            true => path[1..].split_once('/').unwrap_or(("other", "other")),
            false => ("other", "other"),
        };
        let (service, method) = (service.to_owned(), method.to_owned());
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
        let span = tracing::info_span!("rpc", grpc_service = %service, grpc_method = %method, %request_id);
        let started = Instant::now();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(async move {
            let mut response = response.instrument(span.clone()).await;
            if let (Ok(response), Ok(value)) = (&mut response, http::HeaderValue::from_str(&request_id)) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            let labels = [("grpc_service", service), ("grpc_method", method)];
            metrics::histogram!(crate::metrics::RPC_DURATION, &labels).record(started.elapsed().as_secs_f64());
            // An error status travels in the response head (trailers-only); success comes in the trailers.
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            let [service, method] = labels;
            metrics::counter!(crate::metrics::RPC_REQUESTS, &[service, method, ("code", code_name(code).to_owned())])
                .increment(1);
            span.in_scope(|| {
                tracing::debug!(code = code_name(code), ms = started.elapsed().as_millis() as u64, "rpc done")
            });
            response
        })
    }
}

/// gRPC's canonical name of a status code (as in grpc/doc/statuscodes.md), not Rust's `Debug` form.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
