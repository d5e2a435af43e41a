//! `loket.v1.ChatService` adapter.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::{caller, while_admitted};
use super::convert::{
    channel_from_pb, conversation_to_pb, event_to_pb, message_to_pb, send_response, tier_from_pb, timestamp,
};
use super::pb;
use super::status::status_of;
use crate::access::Access;
use crate::dialogue::{Dialogue, StartConversation};
use crate::handoff::Desk;

pub struct ChatApi {
    dialogue: Arc<Dialogue>,
    desk: Arc<Desk>,
    /// Ends a watch whose key is revoked meanwhile.
    access: Arc<Access>,
}

impl ChatApi {
    pub fn new(dialogue: Arc<Dialogue>, desk: Arc<Desk>, access: Arc<Access>) -> Self {
        Self { dialogue, desk, access }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ConversationEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::chat_service_server::ChatService for ChatApi {
    async fn start_conversation(
        &self,
        request: Request<pb::StartConversationRequest>,
    ) -> Result<Response<pb::StartConversationResponse>, Status> {
        let caller = caller(&request)?;
        caller.may_start().map_err(status_of)?;
        let pb::StartConversationRequest { customer_id, tier, channel, language, metadata, customer_id_signature } =
            request.into_inner();
        let customer_id =
            self.access.customer_identity(&caller, customer_id, &customer_id_signature).map_err(status_of)?;
        let start = StartConversation {
            customer_id,
            tier: tier_from_pb(tier)?,
            channel: channel_from_pb(channel)?,
            language: Some(language),
            metadata: metadata.into_iter().collect(),
            owner: Some(caller.key_id.clone()),
        };
        let (conversation, greeting) = self.dialogue.start(start).await.map_err(status_of)?;
        let token = self.access.issue_token(&caller, &conversation.id);
        Ok(Response::new(pb::StartConversationResponse {
            conversation: Some(conversation_to_pb(&conversation, &[])),
            greeting: message_to_pb(&greeting),
            conversation_token_expire_time: token.as_ref().and_then(|t| timestamp(t.expires_at)),
            conversation_token: token.map(|t| t.token).unwrap_or_default(),
        }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = caller(&request)?;
        let pb::SendMessageRequest { conversation_id, text, client_message_id } = request.into_inner();
        let outcome = self
            .dialogue
            .send(
                &conversation_id,
                &text,
                Some(&client_message_id),
                caller.scope_for(&conversation_id).map_err(status_of)?,
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(send_response(&outcome)))
    }

    type WatchConversationStream = EventStream;

    async fn watch_conversation(
        &self,
        request: Request<pb::WatchConversationRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = caller(&request)?;
        let pb::WatchConversationRequest { conversation_id, after_seq } = request.into_inner();
        let scope = caller.scope_for(&conversation_id).map_err(status_of)?;
        self.dialogue.authorize(&conversation_id, scope).await.map_err(status_of)?;
        let events = self.dialogue.watch(&conversation_id, after_seq).await.map_err(status_of)?;
        let stream = events.map(|event| event.map(|e| event_to_pb(&e)).map_err(status_of));
        Ok(Response::new(while_admitted(Box::pin(stream), Arc::clone(&self.access), caller)))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let caller = caller(&request)?;
        let pb::GetConversationRequest { conversation_id } = request.into_inner();
        let scope = caller.scope_for(&conversation_id).map_err(status_of)?;
        self.dialogue.authorize(&conversation_id, scope).await.map_err(status_of)?;
        let (conversation, events) = self.dialogue.get(&conversation_id).await.map_err(status_of)?;
        Ok(Response::new(conversation_to_pb(&conversation, &events)))
    }

    async fn end_conversation(
        &self,
        request: Request<pb::EndConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let caller = caller(&request)?;
        let pb::EndConversationRequest { conversation_id } = request.into_inner();
        let scope = caller.scope_for(&conversation_id).map_err(status_of)?;
        self.dialogue.authorize(&conversation_id, scope).await.map_err(status_of)?;
        let (conversation, events) = self.dialogue.end(&conversation_id).await.map_err(status_of)?;
        Ok(Response::new(conversation_to_pb(&conversation, &events)))
    }

    async fn rate_conversation(
        &self,
        request: Request<pb::RateConversationRequest>,
    ) -> Result<Response<pb::RateConversationResponse>, Status> {
        let caller = caller(&request)?;
        let pb::RateConversationRequest { conversation_id, score, comment } = request.into_inner();
        let scope = caller.scope_for(&conversation_id).map_err(status_of)?;
        self.dialogue.authorize(&conversation_id, scope).await.map_err(status_of)?;
        let handoff = self.desk.rate(&conversation_id, score, &comment).await.map_err(status_of)?;
        Ok(Response::new(pb::RateConversationResponse { handoff_id: handoff.id }))
    }
}
