//! The browser side of the port: gRPC-Web over HTTP/1.1, the origin allow-list with its CORS preflight, and the
//! embedded pages. Requests are written by hand on a plain TCP connection, as a browser would send them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use loket::server::pb;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::harness::{TestServer, WEDNESDAY_10AM, conversation_id, test_config};

const SHOP: &str = "http://shop.test";

/// A server that lets pages of [`SHOP`] call it.
async fn server(dir: &tempfile::TempDir) -> TestServer {
    let mut config = test_config(dir.path());
    config.web.allowed_origins = vec![SHOP.to_owned()];
    TestServer::start(config).await
}

/// One HTTP/1.1 exchange: status, headers (names in lower case) and the body, de-chunked.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` with `headers` and `body` over HTTP/1.1 and reads the whole reply.
pub async fn http1(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    // Read until the reply is complete (some servers keep the connection open despite `connection: close`).
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buffer).await.expect("read reply");
        raw.extend_from_slice(&buffer[..n]);
        if n == 0 || complete(&raw) {
            return parse(&raw);
        }
    }
}

/// Whether `raw` holds a whole reply with a `content-length` (a chunked or unframed one ends with the connection).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()));
    matches!(length, Some(Ok(length)) if raw.len() >= end + 4 + length)
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers") + 4;
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "answered over HTTP/1.1: {status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

/// A gRPC-Web body: one uncompressed data frame.
fn frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// The data frames' payloads and the trailers of a gRPC-Web response body.
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = body[5..5 + len].to_vec();
        match body[0] {
            0x00 => messages.push(payload),
            0x80 => trailers.push_str(&String::from_utf8(payload).unwrap()),
            flag => panic!("unexpected frame flag {flag:#x}"),
        }
        body = &body[5 + len..];
    }
    (messages, trailers.to_ascii_lowercase())
}

fn grpc_web_headers<'a>(key: &'a str, origin: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1"), ("authorization", key)];
    headers.extend(origin.map(|o| ("origin", o)));
    headers
}

const START: &str = "/loket.v1.ChatService/StartConversation";

#[tokio::test]
async fn a_grpc_web_call_over_http1_starts_a_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let request =
        pb::StartConversationRequest { customer_id: "c-web".into(), language: "en".into(), ..Default::default() };
    let bearer = format!("Bearer {}", server.keys.client);
    let reply = http1(server.addr, "POST", START, &grpc_web_headers(&bearer, Some(SHOP)), &frame(&request)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("application/grpc-web"));
    assert_eq!(reply.header("access-control-allow-origin"), Some(SHOP));
    assert!(reply.header("access-control-expose-headers").unwrap().contains("grpc-status"));
    let (messages, trailers) = unframe(&reply.body);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers}");
    let started = pb::StartConversationResponse::decode(&messages[0][..]).unwrap();
    let conversation = started.conversation.expect("a conversation");
    assert!(!conversation.conversation_id.is_empty());
    assert!(!started.greeting.expect("a greeting").text.is_empty());

    // The same call without a key: UNAUTHENTICATED (16), as over gRPC.
    let reply = http1(server.addr, "POST", START, &grpc_web_headers("", Some(SHOP))[..2], &frame(&request)).await;
    let status = reply.header("grpc-status").map(str::to_owned).or_else(|| {
        let (_, trailers) = unframe(&reply.body);
        trailers.lines().find_map(|l| l.strip_prefix("grpc-status:").map(|s| s.trim().to_owned()))
    });
    assert_eq!(status.as_deref(), Some("16"));

    // A widget key from a page of the shop: the conversation comes with its token.
    let bearer = format!("Bearer {}", widget_key(&server).await);
    let reply = http1(server.addr, "POST", START, &grpc_web_headers(&bearer, Some(SHOP)), &frame(&request)).await;
    let (messages, trailers) = unframe(&reply.body);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers}");
    let started = pb::StartConversationResponse::decode(&messages[0][..]).unwrap();
    assert!(started.conversation_token.starts_with("lkc_"));

    // Server streaming over HTTP/1.1: the conversation's events, one data frame each, then the trailers. Ended
    // first, so the stream ends after the history.
    let bearer = format!("Bearer {}", started.conversation_token);
    let id = conversation_id(&started);
    let end = pb::EndConversationRequest { conversation_id: id.clone() };
    let path = "/loket.v1.ChatService/EndConversation";
    let reply = http1(server.addr, "POST", path, &grpc_web_headers(&bearer, Some(SHOP)), &frame(&end)).await;
    assert!(unframe(&reply.body).1.contains("grpc-status:0"));
    let watch = pb::WatchConversationRequest { conversation_id: id, after_seq: 0 };
    let path = "/loket.v1.ChatService/WatchConversation";
    let reply = http1(server.addr, "POST", path, &grpc_web_headers(&bearer, Some(SHOP)), &frame(&watch)).await;
    let (messages, trailers) = unframe(&reply.body);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers}");
    let events: Vec<pb::ConversationEvent> =
        messages.iter().map(|m| pb::ConversationEvent::decode(&m[..]).unwrap()).collect();
    assert!(events.len() >= 2, "the greeting and the end: {events:?}");
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    server.stop().await;
}

#[tokio::test]
async fn preflights_are_answered_for_allowed_origins_and_refused_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let preflight = |origin: String| {
        let addr = server.addr;
        async move {
            let headers = [
                ("origin", origin.as_str()),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent"),
            ];
            http1(addr, "OPTIONS", START, &headers, b"").await
        }
    };
    let allowed = preflight(SHOP.into()).await;
    assert_eq!(allowed.status, 204);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SHOP));
    assert_eq!(allowed.header("access-control-allow-methods"), Some("POST"));
    let headers = allowed.header("access-control-allow-headers").unwrap();
    for needed in ["authorization", "content-type", "x-grpc-web", "x-user-agent"] {
        assert!(headers.contains(needed), "{needed} allowed: {headers}");
    }
    // loket's own pages, reached by IP address.
    let own = preflight(format!("http://{}", server.addr)).await;
    assert_eq!(own.status, 204);

    let refused = preflight("http://evil.test".into()).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    // A page on a domain pointed at loket's address (DNS rebinding) is not loket's own origin.
    let rebound = http1(
        server.addr,
        "OPTIONS",
        START,
        &[("origin", &format!("http://evil.test:{}", server.addr.port())), ("access-control-request-method", "POST")],
        b"",
    )
    .await;
    assert_eq!(rebound.status, 403);

    // The call itself from a refused origin reaches no service.
    let bearer = format!("Bearer {}", server.keys.client);
    let request = pb::StartConversationRequest { customer_id: "c-evil".into(), ..Default::default() };
    let reply =
        http1(server.addr, "POST", START, &grpc_web_headers(&bearer, Some("http://evil.test")), &frame(&request)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert!(reply.header("grpc-status").is_none());
    server.stop().await;
}

#[tokio::test]
async fn pages_are_embedded_with_content_types_caching_and_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let page = http1(server.addr, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(String::from_utf8_lossy(&page.body).contains("<title>loket</title>"));
    let etag = page.header("etag").unwrap().to_owned();

    let again = http1(server.addr, "GET", "/", &[("if-none-match", &etag)], b"").await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let style = http1(server.addr, "GET", "/loket.css", &[], b"").await;
    assert_eq!(style.status, 200);
    assert_eq!(style.header("content-type"), Some("text/css; charset=utf-8"));

    // The widget's chat may be framed by loket's own pages and the allowed origins' only.
    let widget = http1(server.addr, "GET", "/widget", &[], b"").await;
    let csp = widget.header("content-security-policy").unwrap();
    assert!(csp.ends_with(&format!("frame-ancestors 'self' {SHOP}")), "{csp}");
    assert_eq!(widget.header("x-frame-options"), None);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    for (path, content_type) in
        [("/widget.js", "text/javascript; charset=utf-8"), ("/demo", "text/html; charset=utf-8")]
    {
        let reply = http1(server.addr, "GET", path, &[], b"").await;
        assert_eq!((reply.status, reply.header("content-type")), (200, Some(content_type)), "{path}");
    }

    assert_eq!(http1(server.addr, "GET", "/no-such-page", &[], b"").await.status, 404);
    let post = http1(server.addr, "POST", "/", &[], b"x").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    server.stop().await;
}

/// The keys of the pages' texts: `KEYS` in web/src/texts.ts.
fn page_text_keys() -> BTreeSet<String> {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("web/src/texts.ts")).unwrap();
    let list = &source[source.find("export const KEYS = [").expect("KEYS in texts.ts")..];
    let list = &list[..list.find("] as const").expect("the end of KEYS")];
    list.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn the_pages_texts_are_the_locale_files_ui_texts_key_for_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = page_text_keys();
    assert!(keys.len() > 50 && keys.contains("widget_send") && keys.contains("console_claim"), "{keys:?}");
    let languages = vec!["nl".to_owned(), "en".to_owned()];
    for (language, locale) in loket::knowledge::load_locales(&root.join("knowledge-base"), &languages).unwrap() {
        let ui: BTreeSet<String> = locale.ui.keys().cloned().collect();
        assert_eq!(ui.difference(&keys).collect::<Vec<_>>(), Vec::<&String>::new(), "{language}: not used by a page");
        assert_eq!(keys.difference(&ui).collect::<Vec<_>>(), Vec::<&String>::new(), "{language}: missing");
        assert!(locale.ui.values().all(|text| !text.trim().is_empty()), "{language}: an empty text");
    }
    // Keys named in the pages' HTML (`data-t`, `data-t-label`, `data-t-placeholder`) are among them.
    for entry in std::fs::read_dir(root.join("web/src/pages")).unwrap() {
        let path = entry.unwrap().path();
        let html = std::fs::read_to_string(&path).unwrap();
        for attribute in ["data-t=\"", "data-t-label=\"", "data-t-placeholder=\""] {
            for used in html.split(attribute).skip(1).map(|rest| &rest[..rest.find('"').unwrap()]) {
                assert!(keys.contains(used), "{}: {used} is not in KEYS", path.display());
            }
        }
    }
}

#[tokio::test]
async fn a_page_is_served_with_the_texts_of_every_served_language_written_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let page = http1(server.addr, "GET", "/widget", &[], b"").await;
    let html = String::from_utf8(page.body).unwrap();
    let start = r#"<script type="application/json" id="loket-page">"#;
    let block = &html[html.find(start).expect("the data block") + start.len()..];
    let block: serde_json::Value = serde_json::from_str(&block[..block.find("</script>").unwrap()]).unwrap();
    assert_eq!(block["default_language"], "nl");
    assert_eq!(block["max_message_bytes"], 4096);
    assert_eq!(block["languages"]["nl"]["name"], "Nederlands");
    assert_eq!(block["languages"]["en"]["texts"]["widget_send"], "Send");
    assert_eq!(block["languages"]["nl"]["texts"]["widget_send"], "Verstuur");
    for language in ["nl", "en"] {
        let texts = block["languages"][language]["texts"].as_object().unwrap();
        assert_eq!(texts.keys().cloned().collect::<BTreeSet<_>>(), page_text_keys(), "{language}");
    }
    // Served as written: its ETag is of these bytes, and HEAD says their length.
    let head = http1(server.addr, "HEAD", "/widget", &[], b"").await;
    assert_eq!(head.header("content-length"), Some(html.len().to_string().as_str()));
    assert_eq!(head.header("etag"), page.headers.iter().find(|(n, _)| n == "etag").map(|(_, v)| v.as_str()));
    server.stop().await;
}

#[test]
fn an_allowed_origin_must_be_an_origin() {
    for bad in ["https://shop.example/", "shop.example", "https://*.shop.example", "https://Shop.example", "http://a:x"]
    {
        let mut config = loket::config::Config::default();
        config.web.allowed_origins = vec!["https://ok.example:8443".into(), bad.into()];
        let error = config.validate().expect_err(bad).to_string();
        assert!(error.contains("web.allowed_origins[1]"), "{bad}: {error}");
    }
    let mut config = loket::config::Config::default();
    config.web.allowed_origins = vec!["https://shop.example".into(), "http://[::1]:8080".into()];
    config.validate().expect("valid origins");
}

/// A browser page's credential: `authorization: Bearer <token>` and, when given, the page's `origin`.
#[derive(Clone)]
struct Page {
    token: String,
    origin: Option<&'static str>,
}

impl tonic::service::Interceptor for Page {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let bearer = format!("Bearer {}", self.token).parse().expect("ascii token");
        request.metadata_mut().insert("authorization", bearer);
        if let Some(origin) = self.origin {
            request.metadata_mut().insert("origin", origin.parse().unwrap());
        }
        Ok(request)
    }
}

type PageChat = ChatServiceClient<InterceptedService<Channel, Page>>;

async fn page_chat(server: &TestServer, token: &str, origin: Option<&'static str>) -> PageChat {
    ChatServiceClient::new(InterceptedService::new(server.channel().await, Page { token: token.into(), origin }))
}

async fn widget_key(server: &TestServer) -> String {
    let request = pb::CreateApiKeyRequest {
        name: "shop widget".into(),
        role: pb::Role::Widget.into(),
        skills: vec![],
        display_name: String::new(),
    };
    server.admin().await.create_api_key(request).await.expect("create widget key").into_inner().token
}

fn start_request(customer_id: &str, signature: &str) -> pb::StartConversationRequest {
    pb::StartConversationRequest {
        customer_id: customer_id.into(),
        language: "nl".into(),
        customer_id_signature: signature.into(),
        ..Default::default()
    }
}

fn send(conversation_id: &str, text: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        conversation_id: conversation_id.into(),
        text: text.into(),
        client_message_id: text.into(),
    }
}

fn get(conversation_id: &str) -> pb::GetConversationRequest {
    pb::GetConversationRequest { conversation_id: conversation_id.into() }
}

#[tokio::test]
async fn a_widget_key_only_starts_conversations_and_each_token_holds_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let key = widget_key(&server).await;

    // Not from a web page: refused.
    let status = page_chat(&server, &key, None).await.start_conversation(start_request("c-1", "")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let mut widget = page_chat(&server, &key, Some(SHOP)).await;
    let started = widget.start_conversation(start_request("c-1", "")).await.unwrap().into_inner();
    let conversation = conversation_id(&started);
    let token = started.conversation_token.clone();
    assert!(token.starts_with("lkc_"), "{token}");
    let expires = started.conversation_token_expire_time.expect("an expiry").seconds * 1000;
    assert_eq!(expires, WEDNESDAY_10AM + 86_400_000, "web.conversation_token_ttl_secs after the start");

    // The widget key itself holds no conversation.
    let status = widget.send_message(send(&conversation, "hallo")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // The token holds its conversation (from a page or not): send, watch, get; the visitor is anonymous.
    let mut held = page_chat(&server, &token, Some(SHOP)).await;
    held.send_message(send(&conversation, "wanneer komt mijn pakketje")).await.expect("send with the token");
    let mut events = held
        .watch_conversation(pb::WatchConversationRequest { conversation_id: conversation.clone(), after_seq: 0 })
        .await
        .expect("watch with the token")
        .into_inner();
    assert!(events.message().await.unwrap().is_some(), "the stored history streams");
    let shown = page_chat(&server, &token, None).await.get_conversation(get(&conversation)).await.unwrap().into_inner();
    assert!(shown.customer_id.starts_with("visitor-"), "an unsigned customer id is not kept: {}", shown.customer_id);

    // Another conversation of the same widget key: this token is not for it.
    let other = conversation_id(&widget.start_conversation(start_request("c-2", "")).await.unwrap().into_inner());
    for status in [
        held.send_message(send(&other, "hallo")).await.unwrap_err(),
        held.get_conversation(get(&other)).await.unwrap_err(),
        held.start_conversation(start_request("c-3", "")).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    // Nor is it a key of any other service.
    let mut desk = AgentServiceClient::new(InterceptedService::new(
        server.channel().await,
        Page { token: token.clone(), origin: Some(SHOP) },
    ));
    let status = desk.list_handoffs(pb::ListHandoffsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // Forged: a changed signature, a changed grant, a made-up token.
    let (grant, signature) = token.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = [
        format!("{grant}.{flipped}{}", &signature[1..]),
        format!("{}.{signature}", grant.replacen('e', "f", 1)),
        "lkc_eyJjIjoiYSJ9.c2lnbmF0dXJl".to_owned(),
    ];
    for forged in forged {
        let status = page_chat(&server, &forged, Some(SHOP)).await.get_conversation(get(&conversation)).await;
        assert_eq!(status.unwrap_err().code(), Code::Unauthenticated, "{forged}");
    }

    // A signature while identity verification is off.
    let status = widget.start_conversation(start_request("c-4", "00ff")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // Expired.
    server.clock.advance(86_400_000);
    let status = held.get_conversation(get(&conversation)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired"), "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn revoking_a_widget_key_ends_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let key = widget_key(&server).await;
    let started = page_chat(&server, &key, Some(SHOP)).await.start_conversation(start_request("", "")).await;
    let started = started.expect("an empty customer id is fine for a visitor").into_inner();
    let mut held = page_chat(&server, &started.conversation_token, Some(SHOP)).await;
    let conversation = conversation_id(&started);
    held.end_conversation(pb::EndConversationRequest { conversation_id: conversation.clone() }).await.unwrap();
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    server.admin().await.revoke_api_key(pb::RevokeApiKeyRequest { key_id }).await.unwrap();
    let status = held.get_conversation(get(&conversation)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_signed_customer_id_is_kept_and_widget_starts_are_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.web.allowed_origins = vec![SHOP.to_owned()];
    config.web.identity_secret = "shop-secret".into();
    config.web.widget_starts_per_minute_per_address = 3.0;
    let server = TestServer::start(config).await;
    let key = widget_key(&server).await;
    let mut widget = page_chat(&server, &key, Some(SHOP)).await;

    let signature = loket::widget::identity_signature("shop-secret", "c-42");
    let started = widget.start_conversation(start_request("c-42", &signature)).await.unwrap().into_inner();
    let held = &mut page_chat(&server, &started.conversation_token, None).await;
    let shown = held.get_conversation(get(&conversation_id(&started))).await.unwrap().into_inner();
    assert_eq!(shown.customer_id, "c-42", "a verified customer keeps their id");

    // Someone else's id with this signature: refused, nothing started.
    let status = widget.start_conversation(start_request("c-43", &signature)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // Three starts a minute from one address (the refused one counted too): the fourth is one too many.
    widget.start_conversation(start_request("c-44", "")).await.expect("the third start");
    let status = widget.start_conversation(start_request("c-44", "")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The limit is the widget's: other keys are not affected.
    server.chat().await.start_conversation(start_request("c-45", "")).await.expect("a client key is not limited");
    server.stop().await;
}

#[test]
fn only_a_keyless_database_on_loopback_gets_demo_keys() {
    use loket::{FirstStart, first_start};
    let loopback: SocketAddr = "127.0.0.1:50051".parse().unwrap();
    let public: SocketAddr = "192.0.2.7:50051".parse().unwrap();
    assert_eq!(first_start(false, 0, loopback), FirstStart::DemoKeys);
    assert_eq!(first_start(false, 0, "[::1]:50051".parse().unwrap()), FirstStart::DemoKeys);
    assert_eq!(first_start(false, 0, public), FirstStart::Explain);
    assert_eq!(first_start(false, 1, loopback), FirstStart::Nothing, "a revoked key counts: not a first start");
    assert_eq!(first_start(true, 0, loopback), FirstStart::Nothing, "open mode needs no key");
}

/// Starts `loket serve` on an OS-chosen loopback port; returns it, its address and what it printed on stdout
/// before serving (logs, the address among them, go to stderr).
fn serve_binary(data_dir: &std::path::Path) -> (std::process::Child, String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-metrics", "--data-dir"])
        .arg(data_dir)
        .arg("--knowledge-dir")
        .arg(crate::harness::knowledge_dir())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn loket serve");
    let (sender, printed) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = logs.next().expect("server logged its address").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in logs {});
    // Printed before the server logs its address: all there by now, give the pipe a moment.
    let mut lines = Vec::new();
    while let Ok(line) = printed.recv_timeout(std::time::Duration::from_millis(300)) {
        lines.push(line);
    }
    (child, address, lines)
}

#[tokio::test]
async fn the_first_start_on_loopback_prints_a_working_demo_address_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address, printed) = serve_binary(dir.path());
    let demo = printed.iter().find_map(|l| l.split_once("/demo#key=")).map(|(_, key)| key.trim().to_owned());
    let key = demo.unwrap_or_else(|| panic!("a demo address in {printed:#?}"));
    let agent_key = printed.iter().find_map(|l| l.split("as \"Demo\"): ").nth(1)).expect("an agent key").trim();
    assert!(printed.iter().any(|l| l.contains(&format!("http://{address}/demo#key="))));
    assert!(printed.iter().any(|l| l.contains(&format!("http://{address}/agent "))), "the console: {printed:#?}");
    let console = http1(address.parse().unwrap(), "GET", "/agent", &[], b"").await;
    assert_eq!(console.status, 200, "the console is served there");

    // The widget key works from loket's own page; the agent key is agent demo-agent's, shown as "Demo".
    let url = format!("http://{address}");
    let channel = Channel::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let own_page = Box::leak(url.clone().into_boxed_str());
    let mut widget =
        ChatServiceClient::new(InterceptedService::new(channel.clone(), Page { token: key, origin: Some(own_page) }));
    widget.start_conversation(start_request("", "")).await.expect("the demo widget key starts a conversation");
    let mut agent =
        AgentServiceClient::new(InterceptedService::new(channel, Page { token: agent_key.into(), origin: None }));
    agent.list_handoffs(pb::ListHandoffsRequest::default()).await.expect("the demo agent key works");
    let demo = agent.get_agent(pb::GetAgentRequest::default()).await.unwrap().into_inner();
    assert_eq!((demo.agent_id.as_str(), demo.display_name.as_str()), ("demo-agent", "Demo"));
    child.kill().unwrap();
    child.wait().unwrap();

    // The next start finds keys and makes none.
    let (mut child, _, printed) = serve_binary(dir.path());
    assert!(!printed.iter().any(|l| l.contains("/demo#key=")), "{printed:#?}");
    child.kill().unwrap();
    child.wait().unwrap();
}
