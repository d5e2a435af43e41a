//! The browser side of loket's one port: the pages embedded in the binary (`assets`), and the origin allow-list in
//! front of gRPC-Web (CORS preflights answered here, cross-origin calls refused or marked). It knows HTTP, never
//! tonic or the generated types: the gRPC-Web translation itself is tonic-web's, wired in by `server`.

mod assets;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use serde::Serialize;

use crate::config::WebConfig;
pub use assets::Assets;

/// Paths of gRPC methods (`/package.Service/Method`): loket's own, health and reflection. Everything else on the
/// port is a page.
const RPC_PREFIXES: [&str; 2] = ["/loket.v1.", "/grpc."];

/// Request headers a browser may send with a gRPC-Web call (what the generated clients send).
const ALLOWED_REQUEST_HEADERS: &str = "authorization, content-type, grpc-timeout, x-grpc-web, x-user-agent";
/// Response headers a cross-origin page may read: the call's status lives in them.
const EXPOSED_RESPONSE_HEADERS: &str = "grpc-status, grpc-message, grpc-status-details-bin";
/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The allowed origin of the web page a call came from, for the access gate (a widget key is accepted only
/// from a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOrigin(pub String);

/// What every page is told as it is served, in its `<script type="application/json" id="loket-page">`: the served
/// languages with their names and texts (the locale files' `ui`), the default language and the message size
/// limit. The pages carry no texts of their own, so a language is added by content and configuration alone.
#[derive(Debug, Clone, Serialize)]
pub struct PageConfig {
    pub default_language: String,
    pub max_message_bytes: usize,
    pub languages: BTreeMap<String, PageLanguage>,
}

/// One served language, for the pages.
#[derive(Debug, Clone, Serialize)]
pub struct PageLanguage {
    /// The language's own name ("Nederlands"), for a language menu.
    pub name: String,
    /// The pages' texts by key.
    pub texts: BTreeMap<String, String>,
}

/// What the layer needs, shared by every connection.
struct Shared {
    allowed_origins: Vec<String>,
    assets: Assets,
}

/// Serves the pages and guards gRPC-Web by origin; passes gRPC (and gRPC-Web from an allowed origin) on.
#[derive(Clone)]
pub struct WebLayer {
    shared: Arc<Shared>,
}

impl WebLayer {
    pub fn new(config: &WebConfig, pages: &PageConfig) -> WebLayer {
        let shared = Shared {
            allowed_origins: config.allowed_origins.clone(),
            assets: Assets::embedded(&config.allowed_origins, pages),
        };
        WebLayer { shared: Arc::new(shared) }
    }
}

impl<S> tower::Layer<S> for WebLayer {
    type Service = WebService<S>;

    fn layer(&self, inner: S) -> WebService<S> {
        WebService { inner, shared: Arc::clone(&self.shared) }
    }
}

#[derive(Clone)]
pub struct WebService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A page or refusal made here (left), or the inner service's response (right).
pub type WebBody<B> = Either<Full<Bytes>, B>;

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for WebService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<WebBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if !RPC_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            let page = self.shared.assets.respond(request.method(), path, request.headers());
            return ready(page);
        }
        let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
            // Not from a browser page (grpcurl, a server-side client): the API key is the whole check.
            let call = self.inner.call(request);
            return Box::pin(async move { Ok(call.await?.map(Either::Right)) });
        };
        // HTTP/1.1 names the host in `Host`; HTTP/2 (what browsers speak over TLS) in the `:authority`.
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let host = host.or_else(|| request.uri().authority().map(|a| a.as_str())).unwrap_or_default();
        if !origin_allowed(&self.shared.allowed_origins, origin.to_str().unwrap_or_default(), host) {
            return ready(refuse_origin(&origin));
        }
        if request.method() == Method::OPTIONS {
            return ready(preflight(origin));
        }
        let mut request = request;
        request.extensions_mut().insert(PageOrigin(origin.to_str().unwrap_or_default().to_owned()));
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await?;
            allow_origin(response.headers_mut(), origin);
            Ok(response.map(Either::Right))
        })
    }
}

fn ready<B, E: Send + 'static>(response: Response<Full<Bytes>>) -> BoxFuture<Result<Response<WebBody<B>>, E>>
where
    B: Send + 'static,
{
    Box::pin(std::future::ready(Ok(response.map(Either::Left))))
}

/// Whether a page of `origin` may call loket when it reached loket as `host`: a listed origin, or loket's own when
/// browsers reach it by IP address or `localhost`. Another name for loket's own origin must be listed: a page on
/// any domain can point that domain at loket's address (DNS rebinding), and only the list tells the two apart.
pub fn origin_allowed(allowed: &[String], origin: &str, host: &str) -> bool {
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    let Some(authority) = authority else { return false };
    if !authority.eq_ignore_ascii_case(host) {
        return false;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// The answer to a CORS preflight from an allowed origin: gRPC-Web is a POST with these headers.
fn preflight(origin: HeaderValue) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_REQUEST_HEADERS));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
    response
}

fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_RESPONSE_HEADERS));
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// A page of another origin is answered 403 without CORS headers (so its script cannot read even that), before
/// the call reaches any service.
fn refuse_origin(origin: &HeaderValue) -> Response<Full<Bytes>> {
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    tracing::info!(%origin, "browser call from an origin not in web.allowed_origins refused");
    let text = format!("origin {origin} may not call loket: it is not in web.allowed_origins\n");
    plain(StatusCode::FORBIDDEN, text)
}

/// A short plain-text answer (errors, refusals).
fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(text.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
