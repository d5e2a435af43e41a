//! The agents' desk: the live queue per skill and every operation an agent performs on a hand-off. Each
//! operation takes the conversation's lock and commits conversation events and the hand-off together.

use std::sync::Arc;

use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};
use tracing::info;

use crate::access::{ActingAgent, Caller};
use crate::config::Config;
use crate::conversation::{Author, DialogueMemory, Event, EventBody, Handoff, HandoffState, Message, State};
use crate::error::{Error, Result};
use crate::knowledge::LiveKnowledge;
use crate::ledger::Ledger;
use crate::paging::{self, Pager, Position};
use crate::store::{AuditEntry, Commit, HandoffFilter, NewDelivery, Store, StoreError};
use crate::text::Limits;
use crate::webhooks::{EventType, Webhooks, payload};

use super::queue::{HandoffPackage, QueueEvent, QueueEventKind, QueueHub, bare, package};

/// The agents' desk: what it is built from are the parts of the application context it uses.
pub struct Desk {
    ledger: Arc<Ledger>,
    store: Arc<dyn Store>,
    knowledge: Arc<LiveKnowledge>,
    config: Arc<Config>,
    limits: Limits,
    queue: Arc<QueueHub>,
    webhooks: Arc<Webhooks>,
}

impl Desk {
    pub fn new(
        ledger: Arc<Ledger>,
        store: Arc<dyn Store>,
        knowledge: Arc<LiveKnowledge>,
        config: Arc<Config>,
        queue: Arc<QueueHub>,
        webhooks: Arc<Webhooks>,
    ) -> Self {
        let limits = config.limits.bounds();
        Self { ledger, store, knowledge, config, limits, queue, webhooks }
    }

    fn store(&self) -> &dyn Store {
        &*self.store
    }

    async fn load(&self, handoff_id: &str) -> Result<Handoff> {
        self.limits.check_id("handoff_id", handoff_id)?;
        self.store()
            .handoff(handoff_id)
            .await?
            .ok_or_else(|| Error::NotFound { what: "hand-off", id: handoff_id.to_owned() })
    }

    /// The open queue for `skills` now, then every change, filtered to those skills.
    pub async fn watch_queue(
        &self,
        agent: &ActingAgent,
        skills: Vec<String>,
    ) -> Result<impl Stream<Item = Result<QueueEvent>> + Send + 'static> {
        let agent_id = agent.agent_id.as_str();
        self.limits.check_id("agent_id", agent_id)?;
        if skills.is_empty() || skills.iter().any(|s| s.trim().is_empty()) {
            return Err(Error::invalid("skills", "name at least one skill, none empty"));
        }
        skills.iter().try_for_each(|skill| self.limits.check_id("skills", skill))?;
        self.audit_acting(agent, "watch_queue", None).await?;
        // Subscribe first so nothing committed while the snapshot is read is lost.
        let mut live = BroadcastStream::new(self.queue.sender.subscribe());
        let filter = HandoffFilter { state: Some(HandoffState::Queued), skills: skills.clone() };
        let mut snapshot = Vec::new();
        for handoff in self.store().handoffs(&filter, None, 10_000).await? {
            snapshot.push(package(self.store(), handoff).await?);
        }
        let store = Arc::clone(&self.store);
        info!(agent_id, skills = ?skills, queued = snapshot.len(), "agent watching queue");
        let connected = crate::metrics::AgentConnected::connect();
        let mut closed = Box::pin(self.ledger.closed());
        Ok(async_stream::try_stream! {
            // Counted as connected until the agent's stream is dropped.
            let _connected = connected;
            // Oldest first: the order an agent works in.
            snapshot.reverse();
            for package in snapshot {
                yield QueueEvent { kind: QueueEventKind::Snapshot, package: Some(package), from_skill: None };
            }
            yield QueueEvent { kind: QueueEventKind::Synced, package: None, from_skill: None };
            loop {
                let next = tokio::select! {
                    next = live.next() => Some(next),
                    () = &mut closed => None,
                };
                let Some(next) = next else {
                    Err(crate::ledger::shutting_down())?;
                    return;
                };
                let Some(event) = next else { break };
                match event {
                    Ok(Some(event)) => {
                        let relevant = event.package.as_ref().is_some_and(|p| skills.contains(&p.handoff.skill))
                            || event.from_skill.as_ref().is_some_and(|from| skills.contains(from));
                        if relevant {
                            yield event;
                        }
                    }
                    // Fell behind, or changes from other replicas were missed: re-send the queue as it is now
                    // rather than lose changes.
                    Ok(None) | Err(BroadcastStreamRecvError::Lagged(_)) => {
                        for handoff in store.handoffs(&filter, None, 10_000).await? {
                            let package = package(&*store, handoff).await?;
                            yield QueueEvent { kind: QueueEventKind::Snapshot, package: Some(package), from_skill: None };
                        }
                        yield QueueEvent { kind: QueueEventKind::Synced, package: None, from_skill: None };
                    }
                }
            }
        })
    }

    /// Claims a queued hand-off; exactly one of several racing agents wins.
    pub async fn claim(&self, handoff_id: &str, agent: &ActingAgent) -> Result<HandoffPackage> {
        let agent_id = agent.agent_id.as_str();
        self.limits.check_id("agent_id", agent_id)?;
        let found = self.load(handoff_id).await?;
        let _held = self.ledger.hold(&found.conversation_id).await?;
        let mut handoff = self.load(handoff_id).await?;
        if handoff.state != HandoffState::Queued {
            let by = handoff.agent_id.clone().unwrap_or_default();
            return Err(Error::FailedPrecondition(format!(
                "hand-off {handoff_id} is {} ({by})",
                handoff.state.as_str()
            )));
        }
        self.audit_acting(agent, "claim", Some(handoff_id)).await?;
        let now = self.ledger.now();
        handoff.state = HandoffState::Claimed;
        handoff.agent_id = Some(agent_id.to_owned());
        handoff.claimed_at = handoff.claimed_at.or(Some(now));
        let detail = format!("claimed by agent {agent_id}");
        let data = || payload::handoff_claimed(&handoff, now);
        let deliveries = self.deliveries(EventType::HandoffClaimed, &handoff, now, data);
        self.transition(&handoff, HandoffState::Queued, State::Agent, &detail, false, &deliveries).await?;
        info!(handoff_id, agent_id, wait_ms = handoff.wait_millis().unwrap_or(0), "hand-off claimed");
        let package = package(self.store(), handoff).await?;
        self.queue.publish(QueueEventKind::Claimed, bare(package.handoff.clone()));
        Ok(package)
    }

    /// A message from the agent who holds the hand-off to its customer.
    pub async fn send(&self, handoff_id: &str, agent: &ActingAgent, text: &str) -> Result<Event> {
        let agent_id = agent.agent_id.as_str();
        self.limits.check_id("agent_id", agent_id)?;
        self.limits.check_text(text)?;
        let found = self.load(handoff_id).await?;
        let _held = self.ledger.hold(&found.conversation_id).await?;
        let handoff = self.held_by(handoff_id, agent_id).await?;
        self.audit_acting(agent, "send", Some(handoff_id)).await?;
        let mut conversation = self.ledger.conversation(&handoff.conversation_id).await?;
        conversation.updated_at = self.ledger.now();
        let body = EventBody::Message(Message {
            id: uuid::Uuid::new_v4().to_string(),
            author: Author::Agent,
            text: text.to_owned(),
            language: conversation.language.clone(),
            client_message_id: None,
            faq_id: None,
            author_name: Some(agent.display_name.clone()).filter(|name| !name.is_empty()),
        });
        let event = conversation.next_event(body);
        let events = [event.clone()];
        self.store().commit(Commit::new(&conversation, &events)).await?;
        self.ledger.publish(&events);
        Ok(event)
    }

    /// Back to the queue, routed to `skill`, with a note for the next agent.
    pub async fn transfer(&self, handoff_id: &str, agent: &ActingAgent, skill: &str, note: &str) -> Result<Handoff> {
        let agent_id = agent.agent_id.as_str();
        self.limits.check_id("agent_id", agent_id)?;
        self.limits.check_id("skill", skill)?;
        self.limits.check_text_limit("note", note)?;
        let found = self.load(handoff_id).await?;
        let _held = self.ledger.hold(&found.conversation_id).await?;
        let mut handoff = self.held_by(handoff_id, agent_id).await?;
        self.audit_acting(agent, "transfer", Some(handoff_id)).await?;
        let from = handoff.skill.clone();
        handoff.state = HandoffState::Queued;
        handoff.agent_id = None;
        handoff.skill = skill.trim().to_owned();
        handoff.notes.push(format!("transferred by {agent_id} from {from} to {skill}: {}", note.trim()));
        let detail = format!("transferred from {from} to {skill}");
        let data = || payload::handoff_transferred(&handoff, &from, agent_id, note);
        let deliveries = self.deliveries(EventType::HandoffTransferred, &handoff, self.ledger.now(), data);
        self.transition(&handoff, HandoffState::Claimed, State::Queued, &detail, false, &deliveries).await?;
        let package = package(self.store(), handoff).await?;
        let event =
            QueueEvent { kind: QueueEventKind::Transferred, package: Some(package.clone()), from_skill: Some(from) };
        self.queue.send(event);
        Ok(package.handoff)
    }

    /// Resolves the hand-off; the bot takes the conversation back and asks for a rating.
    pub async fn resolve(&self, handoff_id: &str, agent: &ActingAgent, note: &str) -> Result<Handoff> {
        let agent_id = agent.agent_id.as_str();
        self.limits.check_id("agent_id", agent_id)?;
        self.limits.check_text_limit("note", note)?;
        let found = self.load(handoff_id).await?;
        let _held = self.ledger.hold(&found.conversation_id).await?;
        let mut handoff = self.held_by(handoff_id, agent_id).await?;
        self.audit_acting(agent, "resolve", Some(handoff_id)).await?;
        handoff.state = HandoffState::Resolved;
        handoff.resolved_at = Some(self.ledger.now());
        if !note.trim().is_empty() {
            handoff.notes.push(format!("resolved by {agent_id}: {}", note.trim()));
        }
        let data = || payload::handoff_resolved(&handoff, note);
        let at = handoff.resolved_at.unwrap_or_default();
        let deliveries = self.deliveries(EventType::HandoffResolved, &handoff, at, data);
        let detail = "resolved by the agent";
        self.transition(&handoff, HandoffState::Claimed, State::Resolved, detail, true, &deliveries).await?;
        info!(handoff_id, agent_id, "hand-off resolved");
        self.queue.publish(QueueEventKind::Resolved, bare(handoff.clone()));
        Ok(handoff)
    }

    /// The answer of FAQ entry `faq_id` in `language` as the knowledge base holds it now (None: retired, or not
    /// in that language): what an agent may insert into a reply from a hand-off's candidates.
    pub fn candidate_answer(&self, faq_id: &str, language: &str) -> Option<String> {
        let knowledge = self.knowledge.current();
        let faq = knowledge.base.faq(faq_id)?;
        faq.translations.get(language).map(|t| t.answer.clone())
    }

    /// Every skill hand-offs are routed to now, sorted (see [`super::known_skills`]).
    pub fn known_skills(&self) -> Vec<String> {
        super::known_skills(&self.config.handoff, &self.knowledge.current().base.faqs).into_iter().collect()
    }

    /// An agent key limited to some skills may only act on hand-offs of those skills. A missing id is left to the
    /// operation, which says so precisely.
    pub async fn check_skill(&self, caller: &Caller, handoff_id: &str) -> Result<()> {
        if caller.skills.is_empty() || handoff_id.trim().is_empty() {
            return Ok(());
        }
        caller.check_skill(&self.load(handoff_id).await?.skill)
    }

    pub async fn get(&self, handoff_id: &str) -> Result<HandoffPackage> {
        let handoff = self.load(handoff_id).await?;
        Ok(package(self.store(), handoff).await?)
    }

    /// A page of hand-offs, newest first, and the next page's token (empty on the last page).
    pub async fn list(
        &self,
        filter: HandoffFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Handoff>, String)> {
        let size = paging::page_size(page_size)?;
        filter.skills.iter().try_for_each(|skill| self.limits.check_id("skill", skill))?;
        let pager = Pager::new("handoffs", &format!("{:?} {:?}", filter.state, filter.skills));
        let after = pager.after(page_token)?;
        let mut page = self.store().handoffs(&filter, after.as_ref(), size as u32 + 1).await?;
        let next = pager.next(&mut page, size, |h| Position::new(h.created_at, &h.id));
        Ok((page, next))
    }

    /// Stores the customer's rating of the hand-off `Dialogue::handoff_to_rate` names; once.
    pub async fn rate(&self, conversation_id: &str, score: i32, comment: &str) -> Result<Handoff> {
        if !(1..=5).contains(&score) {
            return Err(Error::invalid("score", "must be 1 to 5"));
        }
        self.limits.check_text_limit("comment", comment)?;
        let _held = self.ledger.hold(conversation_id).await?;
        let mut conversation = self.ledger.conversation(conversation_id).await?;
        let Some(mut handoff) = self.ledger.handoff_to_rate(&conversation).await? else {
            return Err(Error::FailedPrecondition("the conversation was never handed to a person".into()));
        };
        super::rate(&mut handoff, score, comment, self.ledger.now())?;
        conversation.memory.rating_handoff = None;
        conversation.memory.pending_rating = false;
        let at = handoff.rating.as_ref().map_or(0, |r| r.created_at);
        let deliveries =
            self.deliveries(EventType::ConversationRated, &handoff, at, || payload::conversation_rated(&handoff));
        let commit = Commit {
            handoff: Some((&handoff, Some(HandoffState::Resolved))),
            deliveries: &deliveries,
            ..Commit::new(&conversation, &[])
        };
        self.ledger.commit(commit).await.map_err(conflict_is_precondition)?;
        info!(conversation_id, score, "conversation rated");
        Ok(handoff)
    }

    /// The hand-off, which must be claimed by `agent_id`.
    async fn held_by(&self, handoff_id: &str, agent_id: &str) -> Result<Handoff> {
        let handoff = self.load(handoff_id).await?;
        match not_held(&handoff, agent_id) {
            None => Ok(handoff),
            Some(why) => Err(Error::FailedPrecondition(why)),
        }
    }

    /// The conversation of a hand-off, live, for the agent who holds it: the events after `after_seq` (customer,
    /// bot and agent messages, state changes), then each as it is committed. It ends after the event that takes
    /// the conversation from the agent (a transfer or the resolution) with PERMISSION_DENIED, unless the agent
    /// holds the hand-off again by then; watching a hand-off one does not hold is PERMISSION_DENIED.
    pub async fn watch_handoff(
        &self,
        handoff_id: &str,
        agent: &ActingAgent,
        after_seq: u64,
    ) -> Result<impl Stream<Item = Result<Event>> + Send + 'static> {
        self.limits.check_id("handoff_id", handoff_id)?;
        self.limits.check_id("agent_id", &agent.agent_id)?;
        let handoff = self.load(handoff_id).await?;
        if let Some(why) = not_held(&handoff, &agent.agent_id) {
            return Err(Error::PermissionDenied(why));
        }
        self.audit_acting(agent, "watch_handoff", Some(handoff_id)).await?;
        // The watch reads history after subscribing, so a transfer committed since the check above is among its
        // events and the stream still ends at it. Boxed as a trait object: the opaque stream type would otherwise
        // still borrow the conversation id it was given.
        let mut events: std::pin::Pin<Box<dyn Stream<Item = Result<Event>> + Send>> =
            Box::pin(self.ledger.watch(&handoff.conversation_id, after_seq).await?);
        let store = Arc::clone(&self.store);
        let (handoff_id, agent_id) = (handoff_id.to_owned(), agent.agent_id.clone());
        info!(handoff_id, agent_id, after_seq, "agent watching hand-off");
        Ok(async_stream::try_stream! {
            while let Some(event) = events.next().await {
                let event = event?;
                let leaves_agent = matches!(&event.body, EventBody::StateChange(change) if change.from == State::Agent);
                yield event;
                if !leaves_agent {
                    continue;
                }
                // An earlier hand-off of the same conversation also left AGENT: only the hand-off's own state
                // says whether this agent still holds it.
                let now = store.handoff(&handoff_id).await?;
                let why = match &now {
                    None => Some(format!("hand-off {handoff_id} no longer exists")),
                    Some(now) => not_held(now, &agent_id),
                };
                if let Some(why) = why {
                    Err(Error::PermissionDenied(why))?;
                }
            }
        })
    }

    /// Records an administrator acting for an agent, before the operation is committed, so no such operation
    /// goes unrecorded (one that then fails is recorded too). An agent's own key is not audited.
    async fn audit_acting(&self, agent: &ActingAgent, operation: &str, handoff_id: Option<&str>) -> Result<()> {
        let Some(admin_key_id) = &agent.admin_key_id else { return Ok(()) };
        let detail =
            serde_json::json!({ "agent_id": agent.agent_id, "operation": operation, "handoff_id": handoff_id });
        let entry =
            AuditEntry { at: self.ledger.now(), actor: admin_key_id.clone(), action: "act_for_agent".into(), detail };
        self.store().record_audit(&entry).await?;
        info!(admin_key_id, agent_id = agent.agent_id, operation, "admin acting for agent");
        Ok(())
    }

    /// The webhook deliveries of `event` about `handoff` at `at`, in its conversation's order.
    fn deliveries(
        &self,
        event: EventType,
        handoff: &Handoff,
        at: i64,
        data: impl FnOnce() -> serde_json::Value,
    ) -> Vec<NewDelivery> {
        let mut deliveries = Vec::new();
        let conversation = handoff.conversation_id.as_str();
        self.webhooks.record(&mut deliveries, event, Some(conversation), conversation, at, data);
        deliveries
    }

    /// Commits the hand-off (if still in `expected`) with the conversation moving to `to`, and the webhook
    /// deliveries reporting it. On resolution (`back_to_bot`) the conversation goes on to the bot, which asks for
    /// a rating.
    async fn transition(
        &self,
        handoff: &Handoff,
        expected: HandoffState,
        to: State,
        detail: &str,
        back_to_bot: bool,
        deliveries: &[NewDelivery],
    ) -> Result<()> {
        let mut conversation = self.ledger.conversation(&handoff.conversation_id).await?;
        conversation.updated_at = self.ledger.now();
        let mut events = vec![conversation.change_state(to, Some(handoff.reason), detail)];
        if back_to_bot {
            events.push(conversation.change_state(State::Bot, None, "the bot takes over again"));
            conversation.memory = DialogueMemory::after_resolution(&handoff.id);
            let question = self.knowledge.current().base.locale(&conversation.language).replies.rating_question.clone();
            let language = conversation.language.clone();
            let body = EventBody::bot_message(question, &language, None);
            events.push(conversation.next_event(body));
        }
        let commit =
            Commit { handoff: Some((handoff, Some(expected))), deliveries, ..Commit::new(&conversation, &events) };
        self.ledger.commit(commit).await.map_err(conflict_is_precondition)?;
        self.ledger.publish(&events);
        Ok(())
    }
}

/// Why `agent_id` does not hold `handoff` now (None: it does). The same words serve a refused operation
/// (FAILED_PRECONDITION) and an ended or refused watch (PERMISSION_DENIED).
fn not_held(handoff: &Handoff, agent_id: &str) -> Option<String> {
    let id = &handoff.id;
    match (handoff.state, handoff.agent_id.as_deref()) {
        (HandoffState::Claimed, Some(holder)) if holder == agent_id => None,
        (HandoffState::Claimed, Some(holder)) => Some(format!("hand-off {id} is claimed by agent {holder}")),
        // A claim time survives a transfer: a queued hand-off that has one was transferred.
        (HandoffState::Queued, _) if handoff.claimed_at.is_some() => {
            Some(format!("hand-off {id} was transferred to skill {} and is queued, not claimed", handoff.skill))
        }
        (HandoffState::Resolved, _) => Some(format!("hand-off {id} was resolved")),
        (state, _) => Some(format!("hand-off {id} is {}, not claimed", state.as_str())),
    }
}

fn conflict_is_precondition(error: StoreError) -> Error {
    match error {
        StoreError::Conflict => Error::FailedPrecondition("the hand-off was changed by someone else first".into()),
        other => other.into(),
    }
}
