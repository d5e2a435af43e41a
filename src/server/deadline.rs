//! A tower layer that gives every RPC until the sooner of `limits.request_timeout_secs` and the client's
//! `grpc-timeout`, and then answers DEADLINE_EXCEEDED. tonic's own `Server::timeout` answers CANCELLED ("Timeout
//! expired"), which tells a client the call was abandoned by someone rather than that time ran out. Streams are
//! timed until their response starts, not for their whole life, as tonic does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

/// tonic applies the client's `grpc-timeout` too, outside our layers, and answers CANCELLED when it fires. We
/// fire a tenth of the client's budget earlier (between 2 and 250 ms), so the client hears DEADLINE_EXCEEDED from
/// us first even when a busy machine polls both timers late: with only 2 ms ahead, tonic won on a loaded 2-core
/// machine.
fn ahead_of_tonic(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(2), Duration::from_millis(250))
}

#[derive(Clone)]
pub struct DeadlineLayer {
    /// The server's limit (`None`: only the client's deadline applies).
    limit: Option<Duration>,
}

impl DeadlineLayer {
    pub fn new(limit: Option<Duration>) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner, limit: self.limit }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S, B, R> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let client = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| grpc_timeout(value.to_str().ok()?))
            .map(|timeout| timeout.saturating_sub(ahead_of_tonic(timeout)));
        let budget = match (self.limit, client) {
            (Some(limit), Some(client)) => Some(limit.min(client)),
            (limit, client) => limit.or(client),
        };
        let response = self.inner.call(request);
        let Some(budget) = budget else { return Box::pin(response) };
        Box::pin(async move {
            match tokio::time::timeout(budget, response).await {
                Ok(response) => response,
                Err(_) => {
                    let message = format!("the request did not complete within {} ms", budget.as_millis());
                    Ok(tonic::Status::deadline_exceeded(message).into_http())
                }
            }
        })
    }
}

/// The `grpc-timeout` header: at most 8 digits and a unit (gRPC over HTTP/2, "Timeout").
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeout_headers_parse() {
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("123456789S"), None);
        assert_eq!(grpc_timeout("S"), None);
        assert_eq!(grpc_timeout("5x"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
