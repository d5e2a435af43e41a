//! `loket.v1.AgentService` adapter.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::{caller, while_admitted};
use super::convert::{
    channel_to_pb, conversation_to_pb, event_to_pb, faq_match_to_pb, handoff_reason_to_pb, intent_to_pb, message_to_pb,
    state_to_pb, tier_to_pb, timestamp,
};
use super::pb;
use super::status::status_of;
use crate::access::{Access, Caller, acting_agent};
use crate::conversation::{FaqMatch, Handoff, HandoffState};
use crate::error::Error;
use crate::handoff::{Desk, HandoffPackage, QueueEvent, QueueEventKind};
use crate::store::HandoffFilter;

pub struct AgentApi {
    desk: Arc<Desk>,
    /// Ends a watch whose key is revoked meanwhile.
    access: Arc<Access>,
}

impl AgentApi {
    pub fn new(desk: Arc<Desk>, access: Arc<Access>) -> Self {
        Self { desk, access }
    }

    /// An agent key limited to some skills may only act on hand-offs of those skills.
    async fn check_handoff(&self, caller: &Caller, handoff_id: &str) -> Result<(), Status> {
        self.desk.check_skill(caller, handoff_id).await.map_err(status_of)
    }
}

fn handoff_state_to_pb(state: HandoffState) -> pb::HandoffState {
    match state {
        HandoffState::Queued => pb::HandoffState::Queued,
        HandoffState::Claimed => pb::HandoffState::Claimed,
        HandoffState::Resolved => pb::HandoffState::Resolved,
    }
}

fn handoff_state_from_pb(value: i32) -> Result<Option<HandoffState>, Status> {
    match pb::HandoffState::try_from(value) {
        Ok(pb::HandoffState::Unspecified) => Ok(None),
        Ok(pb::HandoffState::Queued) => Ok(Some(HandoffState::Queued)),
        Ok(pb::HandoffState::Claimed) => Ok(Some(HandoffState::Claimed)),
        Ok(pb::HandoffState::Resolved) => Ok(Some(HandoffState::Resolved)),
        Err(_) => Err(status_of(Error::invalid("state", format!("unknown value {value}")))),
    }
}

/// A hand-off for the wire; its FAQ candidates carry their answers as the knowledge base holds them now.
fn handoff_to_pb(desk: &Desk, h: &Handoff) -> pb::Handoff {
    let candidate = |m: &FaqMatch| {
        let answer = desk.candidate_answer(&m.faq_id, &h.language).unwrap_or_default();
        pb::FaqMatch { answer, ..faq_match_to_pb(m) }
    };
    pb::Handoff {
        handoff_id: h.id.clone(),
        conversation_id: h.conversation_id.clone(),
        state: handoff_state_to_pb(h.state).into(),
        reason: handoff_reason_to_pb(Some(h.reason)).into(),
        reason_detail: h.reason_detail.clone(),
        skill: h.skill.clone(),
        priority: h.priority,
        language: h.language.clone(),
        channel: channel_to_pb(h.channel).into(),
        customer_id: h.customer_id.clone(),
        tier: tier_to_pb(h.tier).into(),
        summary_first_ask: h.first_ask.clone(),
        summary_last_message: h.last_message.clone(),
        intents: h.intents.iter().map(intent_to_pb).collect(),
        faq_candidates: h.faq_candidates.iter().map(candidate).collect(),
        transcript: Vec::new(),
        earlier_conversations: Vec::new(),
        callback: h.callback,
        expected_pickup_time: timestamp(h.expected_pickup_at),
        agent_id: h.agent_id.clone().unwrap_or_default(),
        notes: h.notes.clone(),
        create_time: timestamp(h.created_at),
        claim_time: h.claimed_at.and_then(timestamp),
        resolve_time: h.resolved_at.and_then(timestamp),
        wait_seconds: h.wait_millis().map_or(0.0, |ms| ms as f64 / 1000.0),
        rating: h.rating.as_ref().map_or(0, |r| i32::from(r.score)),
        rating_comment: h.rating.as_ref().map(|r| r.comment.clone()).unwrap_or_default(),
    }
}

fn package_to_pb(desk: &Desk, package: &HandoffPackage) -> pb::Handoff {
    let mut handoff = handoff_to_pb(desk, &package.handoff);
    handoff.transcript = package.transcript.iter().filter_map(message_to_pb).collect();
    handoff.earlier_conversations = package
        .earlier
        .iter()
        .map(|e| {
            let summary = conversation_to_pb(&e.conversation, &[]);
            pb::EarlierConversation {
                conversation_id: summary.conversation_id,
                channel: summary.channel,
                state: state_to_pb(e.conversation.state).into(),
                create_time: summary.create_time,
                first_ask: e.first_ask.clone(),
                last_messages: e.last_messages.iter().filter_map(message_to_pb).collect(),
            }
        })
        .collect();
    handoff
}

fn queue_event_to_pb(desk: &Desk, event: &QueueEvent) -> pb::QueueEvent {
    let kind = match event.kind {
        QueueEventKind::Snapshot => pb::QueueEventKind::Snapshot,
        QueueEventKind::Synced => pb::QueueEventKind::Synced,
        QueueEventKind::New => pb::QueueEventKind::New,
        QueueEventKind::Claimed => pb::QueueEventKind::Claimed,
        QueueEventKind::Transferred => pb::QueueEventKind::Transferred,
        QueueEventKind::Resolved => pb::QueueEventKind::Resolved,
    };
    pb::QueueEvent { kind: kind.into(), handoff: event.package.as_ref().map(|p| package_to_pb(desk, p)) }
}

type QueueStream = Pin<Box<dyn Stream<Item = Result<pb::QueueEvent, Status>> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ConversationEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentApi {
    type WatchQueueStream = QueueStream;

    async fn watch_queue(&self, request: Request<pb::WatchQueueRequest>) -> Result<Response<QueueStream>, Status> {
        let caller = caller(&request)?;
        let pb::WatchQueueRequest { agent_id, skills } = request.into_inner();
        let agent = acting_agent(&caller, &agent_id).map_err(status_of)?;
        let skills = caller.skills_within(skills).map_err(status_of)?;
        let events = self.desk.watch_queue(&agent, skills).await.map_err(status_of)?;
        let desk = Arc::clone(&self.desk);
        let stream = events.map(move |event| event.map(|e| queue_event_to_pb(&desk, &e)).map_err(status_of));
        Ok(Response::new(while_admitted(Box::pin(stream), Arc::clone(&self.access), caller)))
    }

    type WatchHandoffStream = EventStream;

    async fn watch_handoff(&self, request: Request<pb::WatchHandoffRequest>) -> Result<Response<EventStream>, Status> {
        let caller = caller(&request)?;
        let pb::WatchHandoffRequest { handoff_id, agent_id, after_seq } = request.into_inner();
        let agent = acting_agent(&caller, &agent_id).map_err(status_of)?;
        self.check_handoff(&caller, &handoff_id).await?;
        let events = self.desk.watch_handoff(&handoff_id, &agent, after_seq).await.map_err(status_of)?;
        let stream = events.map(|event| event.map(|e| event_to_pb(&e)).map_err(status_of));
        Ok(Response::new(while_admitted(Box::pin(stream), Arc::clone(&self.access), caller)))
    }

    async fn claim_handoff(&self, request: Request<pb::ClaimHandoffRequest>) -> Result<Response<pb::Handoff>, Status> {
        let caller = caller(&request)?;
        let pb::ClaimHandoffRequest { handoff_id, agent_id } = request.into_inner();
        let agent = acting_agent(&caller, &agent_id).map_err(status_of)?;
        self.check_handoff(&caller, &handoff_id).await?;
        let package = self.desk.claim(&handoff_id, &agent).await.map_err(status_of)?;
        Ok(Response::new(package_to_pb(&self.desk, &package)))
    }

    async fn send_agent_message(
        &self,
        request: Request<pb::SendAgentMessageRequest>,
    ) -> Result<Response<pb::Message>, Status> {
        let caller = caller(&request)?;
        let pb::SendAgentMessageRequest { handoff_id, agent_id, text } = request.into_inner();
        let agent = acting_agent(&caller, &agent_id).map_err(status_of)?;
        self.check_handoff(&caller, &handoff_id).await?;
        let event = self.desk.send(&handoff_id, &agent, &text).await.map_err(status_of)?;
        message_to_pb(&event).map(Response::new).ok_or_else(|| Status::internal("agent message was not a message"))
    }

    async fn transfer_handoff(
        &self,
        request: Request<pb::TransferHandoffRequest>,
    ) -> Result<Response<pb::Handoff>, Status> {
        let caller = caller(&request)?;
        let pb::TransferHandoffRequest { handoff_id, agent_id, skill, note } = request.into_inner();
        let agent = acting_agent(&caller, &agent_id).map_err(status_of)?;
        self.check_handoff(&caller, &handoff_id).await?;
        let handoff = self.desk.transfer(&handoff_id, &agent, &skill, &note).await.map_err(status_of)?;
        Ok(Response::new(handoff_to_pb(&self.desk, &handoff)))
    }

    async fn resolve_handoff(
        &self,
        request: Request<pb::ResolveHandoffRequest>,
    ) -> Result<Response<pb::Handoff>, Status> {
        let caller = caller(&request)?;
        let pb::ResolveHandoffRequest { handoff_id, agent_id, note } = request.into_inner();
        let agent = acting_agent(&caller, &agent_id).map_err(status_of)?;
        self.check_handoff(&caller, &handoff_id).await?;
        let handoff = self.desk.resolve(&handoff_id, &agent, &note).await.map_err(status_of)?;
        Ok(Response::new(handoff_to_pb(&self.desk, &handoff)))
    }

    async fn list_handoffs(
        &self,
        request: Request<pb::ListHandoffsRequest>,
    ) -> Result<Response<pb::ListHandoffsResponse>, Status> {
        let caller = caller(&request)?;
        let pb::ListHandoffsRequest { state, skill, page_size, page_token } = request.into_inner();
        let skills =
            caller.skills_within(if skill.trim().is_empty() { Vec::new() } else { vec![skill] }).map_err(status_of)?;
        let filter = HandoffFilter { state: handoff_state_from_pb(state)?, skills };
        let (page, next_page_token) = self.desk.list(filter, page_size, &page_token).await.map_err(status_of)?;
        Ok(Response::new(pb::ListHandoffsResponse {
            handoffs: page.iter().map(|h| handoff_to_pb(&self.desk, h)).collect(),
            next_page_token,
        }))
    }

    async fn get_handoff(&self, request: Request<pb::GetHandoffRequest>) -> Result<Response<pb::Handoff>, Status> {
        let caller = caller(&request)?;
        let pb::GetHandoffRequest { handoff_id } = request.into_inner();
        self.check_handoff(&caller, &handoff_id).await?;
        let package = self.desk.get(&handoff_id).await.map_err(status_of)?;
        Ok(Response::new(package_to_pb(&self.desk, &package)))
    }

    async fn get_agent(&self, request: Request<pb::GetAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let caller = caller(&request)?;
        let agent = acting_agent(&caller, &request.get_ref().agent_id).map_err(status_of)?;
        let known_skills = self.desk.known_skills();
        let skills = if caller.skills.is_empty() { known_skills.clone() } else { sorted(caller.skills) };
        Ok(Response::new(pb::Agent {
            agent_id: agent.agent_id,
            display_name: agent.display_name,
            skills,
            known_skills,
        }))
    }
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list.dedup();
    list
}
