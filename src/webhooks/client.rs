//! The HTTP client webhooks are posted with: HTTP/1.1 over TCP, or TLS with rustls (ring) and Mozilla's root
//! certificates (webpki-roots, compiled in: no system library or store). Connections are pooled per host. The
//! connector resolves the host itself, refuses internal addresses ([`super::ssrf`]) unless allowed, and connects
//! to the very address it checked. Redirects are never followed: the caller sees the 3xx.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much of a receiver's answer is read (and thrown away) so its connection can be used again.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Location` of a redirect, for the failure reason.
    pub location: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

impl Client {
    /// With `allow_private_addresses`, loopback and other internal addresses may be reached (tests).
    pub fn new(allow_private_addresses: bool, max_idle_per_host: usize) -> Client {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = Connector { tls: TlsConnector::from(Arc::new(tls)), allow_private_addresses };
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(max_idle_per_host)
            .build(connector);
        Client { inner }
    }

    /// Posts `body` to `url` with `headers`, all within `timeout` (connecting, sending, and reading the answer).
    /// An error is a reason fit for the failed-delivery list.
    pub async fn post(
        &self,
        url: &Uri,
        headers: &[(&str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut request = Request::post(url.clone());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(body)).map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| reason(&e))?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).chars().take(200).collect());
            // Read so the connection can be reused; a longer answer just closes it.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await;
            Ok(Answer { status, location })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} ms (the webhook's timeout_ms)", timeout.as_millis())),
        }
    }
}

/// The error and its causes in one line: the client's own words ("client error (Connect)") say little alone.
fn reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
    allow_private_addresses: bool,
}

impl tower::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(uri).await })
    }
}

impl Connector {
    async fn connect(&self, uri: Uri) -> Result<Stream, BoxError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{uri}: only https:// (and http:// in tests) is posted to").into()),
        };
        let host = uri.host().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("{host} resolves to no address").into());
        }
        if !self.allow_private_addresses {
            // Any internal address refuses the host: a name that resolves to both must not get a second chance.
            for address in &addresses {
                if let Some(kind) = super::ssrf::forbidden(address.ip()) {
                    return Err(format!(
                        "{host} resolves to {}, a {kind} address: refused (server-side request forgery; \
                         webhook_delivery.allow_private_addresses is off)",
                        address.ip()
                    )
                    .into());
                }
            }
        }
        let mut failures = Vec::new();
        let mut connected = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(tcp) => {
                    connected = Some(tcp);
                    break;
                }
                Err(e) => failures.push(format!("{address}: {e}")),
            }
        }
        let tcp = connected.ok_or_else(|| format!("cannot connect to {host}: {}", failures.join("; ")))?;
        // Small requests: without it the body waits for the header's acknowledgement.
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok(Stream::Plain(TokioIo::new(tcp)));
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host} is not a name a certificate can be checked for: {e}"))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| format!("TLS with {host}: {e}"))?;
        Ok(Stream::Tls(Box::new(TokioIo::new(tls))))
    }
}

/// A connection to a receiver, plain or TLS.
enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Stream::Tls(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Stream::Tls(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_flush(cx),
            Stream::Tls(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Stream::Tls(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_addresses_are_refused_before_connecting() {
        let client = Client::new(false, 1);
        let url: Uri = "http://127.0.0.1:9/hook".parse().unwrap();
        let error = client.post(&url, &[], Bytes::new(), Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("127.0.0.1, a loopback address: refused"), "{error}");
        let url: Uri = "https://localhost:9/hook".parse().unwrap();
        let error = client.post(&url, &[], Bytes::new(), Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("a loopback address: refused"), "{error}");
    }

    #[tokio::test]
    async fn a_receiver_without_a_trusted_certificate_is_a_tls_failure() {
        // A TCP listener that is no TLS server: the handshake fails, and the reason says so.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let client = Client::new(true, 1);
        let url: Uri = format!("https://localhost:{port}/hook").parse().unwrap();
        let error = client.post(&url, &[], Bytes::new(), Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("TLS with localhost"), "{error}");
    }
}
