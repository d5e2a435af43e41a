//! Prometheus metrics: `/metrics` scraped over HTTP on loopback, parsed, and its counters and gauges moved by
//! traffic. The recorder is process-wide and other tests run alongside, so counters are compared as deltas of
//! at least what this test caused; the gauges are read from this server's own state at each scrape.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use loket::server::pb::{self, DecisionKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::harness::*;

/// One scrape: series (name and labels as rendered) to value.
type Scrape = BTreeMap<String, f64>;

async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    parse(body)
}

/// The text exposition format: `name{label="value",...} number` lines, `#` comments.
fn parse(body: &str) -> Scrape {
    let mut series = Scrape::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        series.insert(name.to_owned(), value);
    }
    series
}

/// The value of the series `name` whose labels include every one of `labels` (0 when absent).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .iter()
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .filter(|(series, _)| labels.iter().all(|(k, v)| series.contains(&format!("{k}=\"{v}\""))))
        .map(|(_, value)| *value)
        .sum()
}

#[tokio::test]
async fn metrics_are_scraped_over_http_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_metrics(test_config(dir.path())).await;
    let addr = server.metrics_addr.unwrap();
    let before = scrape(addr).await;
    // Everything about the service itself is there before any traffic.
    assert_eq!(value(&before, "loket_knowledge_entries", &[]), 45.0);
    assert!(value(&before, "loket_index_examples", &[]) > 45.0 * 2.0);
    let model = loket::metrics::ModelVersion::of_dir(&test_config(dir.path()).intent.model_dir).unwrap();
    assert_eq!(value(&before, "loket_intent_model_info", &[("version", &model.version)]), 1.0);
    assert!(value(&before, "loket_intent_model_written_timestamp_seconds", &[]) > 1.7e9);
    assert_eq!(value(&before, "loket_queue_length", &[("skill", "returns")]), 0.0);

    let mut chat = server.chat().await;
    let mut agent = server.agent_as("alice").await;
    let mut queue = agent
        .watch_queue(pb::WatchQueueRequest { agent_id: "alice".into(), skills: vec!["returns".into()] })
        .await
        .unwrap()
        .into_inner();
    queue.message().await.unwrap().expect("SYNCED");
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    assert_eq!(kind(&send(&mut chat, &id, "hoe stuur ik een artikel retour").await), DecisionKind::Answer);
    assert_eq!(kind(&send(&mut chat, &id, "ik wil een medewerker spreken").await), DecisionKind::Handoff);
    assert_eq!(kind(&send(&mut chat, &id, "mijn e-mail is jan@example.com").await), DecisionKind::Silent);
    let unknown = pb::SendMessageRequest { conversation_id: "nope".into(), text: "hallo".into(), ..Default::default() };
    assert_eq!(chat.send_message(unknown).await.unwrap_err().code(), Code::NotFound);
    server.clock.advance(30_000);

    let after = scrape(addr).await;
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    // Service and method are labels of their own, as the common gRPC interceptors have them, and the code is
    // gRPC's canonical name.
    let chat_service = ("grpc_service", "loket.v1.ChatService");
    let send_rpc = [chat_service, ("grpc_method", "SendMessage")];
    assert!(moved("loket_rpc_requests_total", &[send_rpc[0], send_rpc[1], ("code", "OK")]) >= 2.0);
    assert!(moved("loket_rpc_requests_total", &[send_rpc[0], send_rpc[1], ("code", "NOT_FOUND")]) >= 1.0);
    assert!(moved("loket_rpc_requests_total", &[chat_service, ("grpc_method", "StartConversation")]) >= 1.0);
    assert!(moved("loket_rpc_duration_seconds_count", &send_rpc) >= 3.0);
    assert!(value(&after, "loket_rpc_duration_seconds_bucket", &[send_rpc[0], send_rpc[1], ("le", "+Inf")]) >= 3.0);
    for (series, _) in after.iter().filter(|(series, _)| series.starts_with("loket_rpc_")) {
        assert!(series.contains("grpc_service=\"") && series.contains("grpc_method=\""), "{series}");
        assert!(!series.contains("rpc=\"ChatService") && !series.contains("code=\"Ok\""), "{series}");
    }
    assert!(moved("loket_decisions_total", &[("kind", "answer")]) >= 1.0);
    assert!(moved("loket_decisions_total", &[("kind", "handoff")]) >= 1.0);
    assert!(moved("loket_handoffs_total", &[("reason", "customer_request"), ("skill", "returns")]) >= 1.0);
    assert!(value(&after, "loket_agents_connected", &[]) >= 1.0);
    // This server's queue, read at the scrape: one hand-off, waiting 30 s.
    assert_eq!(value(&after, "loket_queue_length", &[("skill", "returns")]), 1.0);
    assert_eq!(value(&after, "loket_queue_oldest_wait_seconds", &[("skill", "returns")]), 30.0);

    // No personal data or ids in any label value.
    let text: String = after.keys().cloned().collect::<Vec<_>>().join("\n");
    for private in ["jan@example.com", "customer-1", id.as_str(), "alice", "nope"] {
        assert!(!text.contains(private), "{private:?} appears in the metrics");
    }
    drop(queue);
    server.stop().await;
}
