//! The browser side of the port: gRPC-Web over HTTP/1.1, the origin allow-list with its CORS preflight, and the
//! embedded pages. Requests are written by hand on a plain TCP connection, as a browser would send them.

use std::net::SocketAddr;

use loket::server::pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TestServer, test_config};

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
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read reply");
    parse(&raw)
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

    assert_eq!(http1(server.addr, "GET", "/no-such-page", &[], b"").await.status, 404);
    let post = http1(server.addr, "POST", "/", &[], b"x").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
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
