//! A real `loket serve` process killed with SIGKILL loses no acknowledged message or hand-off.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use loket::server::pb;
use loket::server::pb::agent_service_client::AgentServiceClient;
use loket::server::pb::chat_service_client::ChatServiceClient;

use crate::harness::*;

/// Starts the binary on an OS-chosen loopback port and returns it with the address it printed.
fn spawn_server(data_dir: &Path) -> (Child, String) {
    // Metrics are on by default in serve: an OS-chosen port, so parallel runs never collide.
    spawn_loket(data_dir, &["--metrics-listen", "127.0.0.1:0"])
}

/// Starts `loket serve` with `args` besides its own on an OS-chosen loopback port; returns it with its address.
pub fn spawn_loket(data_dir: &Path, args: &[&str]) -> (Child, String) {
    let (child, url, _logs) = spawn_loket_logged(data_dir, args, "info");
    (child, url)
}

/// Like [`spawn_loket`] with `RUST_LOG=log_levels`, also handing over its log lines (stderr) as they come.
pub fn spawn_loket_logged(
    data_dir: &Path,
    args: &[&str],
    log_levels: &str,
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--knowledge-dir")
        .arg(knowledge_dir())
        .env("RUST_LOG", log_levels)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loket serve");
    // Logs go to stderr; the address is in the "serving gRPC" line, as text or as JSON.
    let logs = child.stderr.take().unwrap();
    let mut lines = BufReader::new(logs).lines();
    let address = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().trim_start_matches("Some(").trim_end_matches(')').to_owned();
        }
        if let Some(rest) = line.split("\"address\":\"").nth(1) {
            break rest.split('"').next().unwrap().to_owned();
        }
    };
    // Keep draining the pipe so the server never blocks on a full stderr, whether or not anyone listens.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    (child, format!("http://{address}"), receiver)
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_message_or_handoff() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_key_with_cli(dir.path(), "admin");
    let (mut child, url) = spawn_server(dir.path());
    let mut chat = ChatServiceClient::new(connect_authed(&url, &admin).await);
    let mut acknowledged = Vec::new();
    let mut handed_off = Vec::new();
    for n in 0..10 {
        let id = conversation_id(&start_conversation(&mut chat, "en").await);
        let text = if n % 3 == 0 {
            "I want to talk to a person".to_string()
        } else {
            format!("how long does delivery take {n}")
        };
        let response = send(&mut chat, &id, &text).await;
        if response.state() == pb::ConversationState::Queued {
            handed_off.push(id.clone());
        }
        acknowledged.push((id, text, response.replies.len()));
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();

    let (mut child, url) = spawn_server(dir.path());
    let mut chat = ChatServiceClient::new(connect_authed(&url, &admin).await);
    for (id, text, replies) in &acknowledged {
        let conversation = chat
            .get_conversation(pb::GetConversationRequest { conversation_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(conversation.messages.iter().any(|m| &m.text == text), "{text} lost");
        assert_eq!(conversation.messages.len(), 2 + replies, "greeting, message, replies of {id}");
    }
    let mut agent = AgentServiceClient::new(connect_authed(&url, &admin).await);
    let queued = agent
        .list_handoffs(pb::ListHandoffsRequest { state: pb::HandoffState::Queued.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .handoffs;
    assert_eq!(queued.len(), handed_off.len());
    for id in &handed_off {
        assert!(queued.iter().any(|h| &h.conversation_id == id));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
