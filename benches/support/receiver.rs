//! A webhook receiver for the benchmarks: HTTP/1.1 on a loopback port, answering 204 to every request and counting
//! them (and the distinct event ids, to tell a redelivery from a new event).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[derive(Default)]
pub struct Counts {
    pub requests: u64,
    pub events: HashSet<String>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub counts: Arc<Mutex<Counts>>,
}

impl Receiver {
    /// Serves on the current runtime until it stops.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = Arc::clone(&counts);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let counts = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let counts = Arc::clone(&counts);
                        async move {
                            let event = request.headers().get("loket-event-id").map(|v| v.as_bytes().to_vec());
                            let _ = request.into_body().collect().await;
                            let mut counts = counts.lock().unwrap();
                            counts.requests += 1;
                            if let Some(event) = event {
                                counts.events.insert(String::from_utf8_lossy(&event).into_owned());
                            }
                            let response = hyper::Response::builder().status(204).body(Full::new(Bytes::new()));
                            Ok::<_, Infallible>(response.unwrap())
                        }
                    });
                    let io = TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Ok(Receiver { addr, counts })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Requests received and distinct events among them.
    pub fn counts(&self) -> (u64, usize) {
        let counts = self.counts.lock().unwrap();
        (counts.requests, counts.events.len())
    }
}
