//! Conversations survive a server restart on the same data directory.

use loket::server::pb;

use crate::harness::*;

#[tokio::test]
async fn conversations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let id = conversation_id(&start_conversation(&mut chat, "nl").await);
    let answered = send(&mut chat, &id, "hoe snel wordt mijn bestelling bezorgd").await;
    let before =
        chat.get_conversation(pb::GetConversationRequest { conversation_id: id.clone() }).await.unwrap().into_inner();
    drop(chat);
    server.stop().await;

    let server = TestServer::start(test_config(dir.path())).await;
    let mut chat = server.chat().await;
    let after =
        chat.get_conversation(pb::GetConversationRequest { conversation_id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(before, after);
    assert_eq!(after.messages.len(), 2 + answered.replies.len());

    // The conversation goes on where it stopped.
    let next = send(&mut chat, &id, "bedankt").await;
    assert_eq!(next.message.unwrap().seq, after.messages.last().unwrap().seq + 1);
    server.stop().await;
}
