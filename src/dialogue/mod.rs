//! Conversations with the bot: starting them, handling each customer message with the decision policy, storing
//! every event before it is acknowledged, and streaming events to watchers. Knows nothing of gRPC.

pub mod eval;
mod events;
pub mod policy;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tracing::info;

pub use events::EventHub;
pub use policy::{Outcome, Policy, Reply, TurnInput};

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::conversation::{
    Author, Channel, Conversation, Decision, DecisionKind, DialogueMemory, Event, EventBody, Handoff, HandoffReason,
    HandoffState, Message, State, StateChange, Tier, Turn,
};
use crate::error::{Error, Result};
use crate::handoff::{self, QueueEventKind, QueueHub, Schedules};
use crate::intent::LiveModel;
use crate::knowledge::gaps::Gap;
use crate::knowledge::{Knowledge, LiveKnowledge};
use crate::store::{Commit, ConversationLock, Store, StoreError};
use crate::webhooks::{EventType, Webhooks, payload};

/// A conversation held for one operation: this process's lock, then the database's (other replicas').
pub(crate) struct Held {
    // Fields drop in order: the database's lock is let go before the in-process one.
    _shared: ConversationLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

/// What a front-end gives to start a conversation.
#[derive(Debug, Clone, Default)]
pub struct StartConversation {
    pub customer_id: String,
    pub tier: Option<Tier>,
    pub channel: Option<Channel>,
    pub language: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The key starting it (access control), which alone may touch it if it is a CLIENT key.
    pub owner: Option<String>,
}

/// The outcome of `send`, and whether it was replayed from an earlier identical request.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub turn: Turn,
    pub replayed: bool,
}

pub struct Dialogue {
    store: Arc<dyn Store>,
    knowledge: Arc<LiveKnowledge>,
    model: Arc<LiveModel>,
    policy: Policy,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    hub: EventHub,
    queue: QueueHub,
    schedules: Schedules,
    /// Set when the server shuts down: open streams end so the transport can drain.
    closing: tokio::sync::watch::Sender<bool>,
    /// Customer messages per conversation (`limits.messages_per_minute_per_conversation`).
    pace: crate::access::RateLimiter,
    /// One lock per conversation being handled, so its messages are decided and numbered one at a time.
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Outbound webhooks: the deliveries each change commits, and the deliverer they wake.
    webhooks: Arc<Webhooks>,
}

impl Dialogue {
    pub fn new(
        store: Arc<dyn Store>,
        knowledge: Arc<LiveKnowledge>,
        model: Arc<LiveModel>,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let policy = Policy::new(config.policy.clone(), config.channels.clone());
        let per_minute = config.limits.messages_per_minute_per_conversation;
        // A short burst is normal (a customer pasting several lines); the minute's budget is the bound.
        let pace = crate::access::RateLimiter::new(per_minute / 60.0, (per_minute / 4.0).max(5.0));
        let schedules = Schedules::from_config(&config.handoff)
            .map_err(|reason| ConfigError::Invalid { key: "handoff.office_hours".into(), reason })?;
        crate::webhooks::check_config(&config.webhooks, &config.webhook_delivery)
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        let webhooks =
            Webhooks::new(Arc::clone(&store), Arc::clone(&clock), &config.webhooks, &config.webhook_delivery);
        Ok(Self {
            store,
            knowledge,
            model,
            policy,
            config,
            clock,
            hub: EventHub::default(),
            queue: QueueHub::default(),
            schedules,
            pace,
            closing: tokio::sync::watch::Sender::new(false),
            locks: Mutex::default(),
            webhooks: Arc::new(webhooks),
        })
    }

    /// The outbound webhooks.
    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.webhooks
    }

    /// Commits, then wakes the webhook deliverer when the commit carried deliveries.
    pub(crate) async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let deliveries = !commit.deliveries.is_empty();
        self.store.commit(commit).await?;
        if deliveries {
            self.webhooks.wake();
        }
        Ok(())
    }

    /// The intent model in use (swapped in place when a new one is trained).
    pub fn model(&self) -> &LiveModel {
        &self.model
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub(crate) fn queue(&self) -> &QueueHub {
        &self.queue
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Ends every open watch stream with UNAVAILABLE (the server is shutting down; clients resume elsewhere with
    /// their last sequence number). Unary requests in flight are not affected.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once `close_streams` was called.
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    pub(crate) fn publish(&self, events: &[Event]) {
        self.hub.publish(events);
    }

    pub(crate) fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// A message text must have content and fit the configured limit.
    pub(crate) fn check_text(&self, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Err(Error::invalid("text", "is empty"));
        }
        self.check_text_limit("text", text)
    }

    /// An id from a caller (conversation, hand-off, customer, client message, agent, skill) must be given, fit
    /// the configured limit and be one line without control characters.
    pub(crate) fn check_id(&self, field: &'static str, value: &str) -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        let limit = self.config.limits.max_id_bytes;
        if value.len() > limit {
            return Err(Error::invalid(field, format!("longer than {limit} bytes")));
        }
        crate::text::check_characters(field, value, false)
    }

    /// Free text from a caller (a message, a comment, a note) fits the configured limit and carries no control
    /// characters but tab and line breaks.
    pub(crate) fn check_text_limit(&self, field: &'static str, text: &str) -> Result<()> {
        let limit = self.config.limits.max_message_bytes;
        if text.len() > limit {
            return Err(Error::invalid(field, format!("longer than {limit} bytes")));
        }
        crate::text::check_characters(field, text, true)
    }

    /// The knowledge base in force right now (an edit swaps in a new one; this one stays valid while held).
    pub fn knowledge(&self) -> Arc<Knowledge> {
        self.knowledge.current()
    }

    /// Where knowledge edits swap in a rebuilt knowledge base.
    pub fn live_knowledge(&self) -> &LiveKnowledge {
        &self.knowledge
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub async fn start(&self, request: StartConversation) -> Result<(Conversation, Event)> {
        let limits = &self.config.limits;
        let customer_id = request.customer_id.trim();
        self.check_id("customer_id", customer_id)?;
        if request.metadata.len() > limits.max_metadata_entries {
            return Err(Error::invalid("metadata", format!("more than {} entries", limits.max_metadata_entries)));
        }
        if request.metadata.iter().any(|(k, v)| k.len() > 256 || v.len() > limits.max_message_bytes) {
            return Err(Error::invalid("metadata", "a key longer than 256 bytes or a value longer than a message"));
        }
        for (key, value) in &request.metadata {
            crate::text::check_characters("metadata", key, false)?;
            crate::text::check_characters("metadata", value, true)?;
        }
        let language = match request.language.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            Some(code) => Some(self.supported_language(code)?),
            None => None,
        };
        let now = self.clock.now_millis();
        let language_fixed = language.is_some();
        let language = language.unwrap_or_else(|| self.config.languages.default.clone());
        let mut conversation = Conversation {
            id: uuid::Uuid::new_v4().to_string(),
            customer_id: customer_id.to_owned(),
            tier: request.tier.unwrap_or(Tier::Standard),
            channel: request.channel.unwrap_or(Channel::Chat),
            language_fixed,
            metadata: request.metadata,
            state: State::Bot,
            created_at: now,
            updated_at: now,
            last_seq: 0,
            memory: DialogueMemory::default(),
            owner: request.owner,
            language,
        };
        let greeting_text = self.knowledge().base.locale(&conversation.language).greeting.clone();
        let greeting_body = bot_message(greeting_text, &conversation.language, None);
        let greeting = self.next_event(&mut conversation, greeting_body);
        self.store.commit(Commit::new(&conversation, std::slice::from_ref(&greeting))).await?;
        info!(conversation_id = %conversation.id, tier = conversation.tier.as_str(), channel = conversation.channel.as_str(), language = %conversation.language, "conversation started");
        Ok((conversation, greeting))
    }

    /// Handles one customer message. With `scope`, the conversation must be owned by that key.
    pub async fn send(
        &self,
        conversation_id: &str,
        text: &str,
        client_message_id: Option<&str>,
        scope: Option<&str>,
    ) -> Result<SendOutcome> {
        let started = std::time::Instant::now();
        self.check_id("conversation_id", conversation_id)?;
        self.check_text(text)?;
        // Optional: absent or empty means "no idempotency", anything given must be a valid id.
        let client_message_id = client_message_id.map(str::trim).filter(|id| !id.is_empty());
        if let Some(id) = client_message_id {
            self.check_id("client_message_id", id)?;
        }

        self.pace.take(conversation_id).map_err(|retry_after| Error::ResourceExhausted {
            message: format!("too many messages in conversation {conversation_id}"),
            retry_after,
        })?;
        let _held = self.hold(conversation_id).await?;
        let mut conversation = self.conversation(conversation_id).await?;
        check_scope(&conversation, scope)?;
        if conversation.state == State::Ended {
            // A retry of a message stored before the end still gets its answer.
            if let Some(id) = client_message_id
                && let Some(turn) = self.store.turn(conversation_id, id).await?
            {
                return replay(turn, id, text);
            }
            return Err(Error::FailedPrecondition(format!("conversation {conversation_id} has ended")));
        }
        // Retries are not looked up first: the unique client message id makes the commit fail and the stored
        // turn is returned then. That keeps a database round trip off every first attempt.

        // Held for this message only: an edit or a model swapped in meanwhile applies from the next message on.
        let knowledge = self.knowledge.current();
        let language = message_language(&knowledge, &conversation, text);
        // The conversation follows the customer into another served language.
        conversation.language = language.clone();
        conversation.updated_at = self.clock.now_millis();
        let customer = Message {
            id: uuid::Uuid::new_v4().to_string(),
            author: Author::Customer,
            text: text.to_owned(),
            language: language.clone(),
            client_message_id: client_message_id.map(str::to_owned),
            faq_id: None,
            author_name: None,
        };
        let message = self.next_event(&mut conversation, EventBody::Message(customer));
        let mut events = vec![message.clone()];
        let mut opened = None;
        let mut rated = None;
        let mut gap = None;
        let (decision, replies) = if conversation.state.human_owned() {
            (silent_decision(&language), Vec::new())
        } else {
            let model = self.model.current();
            let outcome = self.policy.decide(
                &knowledge,
                model.as_deref(),
                &TurnInput {
                    text,
                    language: &language,
                    tier: conversation.tier,
                    channel: conversation.channel,
                    memory: &conversation.memory,
                },
            );
            conversation.memory = outcome.memory;
            if let Some(score) = outcome.rating {
                rated = self.typed_rating(&mut conversation, score).await?;
            }
            gap = knowledge_gap(&conversation, &outcome.decision, text, conversation.updated_at);
            let mut texts = outcome.replies;
            if outcome.decision.handoff_reason.is_some() {
                let locale = knowledge.base.locale(&language);
                let opening = handoff::open(
                    &*self.store,
                    &self.config.handoff,
                    &self.schedules,
                    locale,
                    &conversation,
                    &outcome.decision,
                    text,
                    conversation.updated_at,
                )
                .await?;
                // One message, not a hand-off notice stacked on an out-of-office notice.
                if let Some(last) = texts.last_mut() {
                    let joined = format!("{} {}", last.text, opening.notice);
                    last.text = crate::text::shorten(&joined, self.policy.reply_limit(conversation.channel));
                }
                opened = Some(opening.handoff);
            }
            let replies: Vec<Event> = texts
                .into_iter()
                .map(|reply| self.next_event(&mut conversation, bot_message(reply.text, &language, reply.faq_id)))
                .collect();
            events.extend(replies.iter().cloned());
            if let Some(reason) = outcome.decision.handoff_reason {
                events.push(self.change_state(
                    &mut conversation,
                    State::Queued,
                    Some(reason),
                    &outcome.decision.explanation,
                ));
            }
            (outcome.decision, replies)
        };
        let turn = Turn { message, replies, decision, state: conversation.state };
        // A turn opens a hand-off or rates a resolved one, never both (a rating is a whole turn of its own).
        let handoff = opened.as_ref().map(|h| (h, None)).or(rated.as_ref().map(|h| (h, Some(HandoffState::Resolved))));
        let deliveries = self.turn_deliveries(&conversation, opened.as_ref(), rated.as_ref(), gap.as_ref());
        let commit = Commit {
            turn: Some(&turn),
            handoff,
            gap: gap.as_ref(),
            deliveries: &deliveries,
            ..Commit::new(&conversation, &events)
        };
        match self.commit(commit).await {
            Ok(()) => {}
            // Another replica or a racing retry stored the same client message first: answer as it did.
            Err(StoreError::DuplicateClientMessage) => {
                let id = client_message_id.unwrap_or_default();
                let turn =
                    self.store.turn(conversation_id, id).await?.ok_or_else(|| {
                        Error::Store(StoreError::Corrupt(format!("turn of client message {id} missing")))
                    })?;
                return replay(turn, id, text);
            }
            // The hand-off was rated through `RateConversation` between reading and committing.
            Err(StoreError::Conflict) if rated.is_some() => {
                return Err(Error::Aborted("the hand-off was rated meanwhile; send the message again".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.hub.publish(&events);
        metrics::counter!(crate::metrics::DECISIONS, "kind" => turn.decision.kind.as_str()).increment(1);
        if let Some(handoff) = opened {
            // The skill comes from the knowledge base or the configuration, never from the request.
            metrics::counter!(crate::metrics::HANDOFFS, "reason" => handoff.reason.as_str(), "skill" => handoff.skill.clone())
                .increment(1);
            info!(conversation_id, handoff_id = %handoff.id, skill = %handoff.skill, reason = handoff.reason.as_str(), callback = handoff.callback, "handed off");
            // The hand-off is committed; failing to build the package for live watchers loses nothing,
            // as they see it on their next snapshot.
            if let Err(error) = self.queue.announce(&*self.store, QueueEventKind::New, handoff, None).await {
                tracing::warn!(%error, "hand-off package for watchers failed");
            }
        }
        info!(
            conversation_id,
            decision = turn.decision.kind.as_str(),
            language = %turn.decision.language,
            latency_us = started.elapsed().as_micros() as u64,
            "message handled"
        );
        Ok(SendOutcome { turn, replayed: false })
    }

    /// The webhook deliveries of what a turn changed: a hand-off opened, a rating typed, a knowledge gap.
    fn turn_deliveries(
        &self,
        conversation: &Conversation,
        opened: Option<&Handoff>,
        rated: Option<&Handoff>,
        gap: Option<&Gap>,
    ) -> Vec<crate::store::NewDelivery> {
        let mut deliveries = Vec::new();
        let (id, at) = (conversation.id.as_str(), conversation.updated_at);
        let webhooks = &self.webhooks;
        if let Some(handoff) = rated {
            let data = || payload::conversation_rated(handoff);
            webhooks.record(&mut deliveries, EventType::ConversationRated, Some(id), id, at, data);
        }
        if let Some(handoff) = opened {
            let data = || payload::handoff_created(handoff);
            webhooks.record(&mut deliveries, EventType::HandoffCreated, Some(id), id, at, data);
        }
        if let Some(gap) = gap {
            let data = || payload::knowledge_gap_created(gap);
            webhooks.record(&mut deliveries, EventType::KnowledgeGapCreated, Some(id), id, at, data);
        }
        deliveries
    }

    /// Fails unless the conversation exists and, with `scope`, is owned by that key.
    pub async fn authorize(&self, conversation_id: &str, scope: Option<&str>) -> Result<()> {
        if scope.is_some() {
            check_scope(&self.conversation(conversation_id).await?, scope)?;
        }
        Ok(())
    }

    /// The conversation header and its whole transcript.
    pub async fn get(&self, conversation_id: &str) -> Result<(Conversation, Vec<Event>)> {
        let conversation = self.conversation(conversation_id).await?;
        let events = self.store.events(conversation_id, 0).await?;
        Ok((conversation, events))
    }

    pub async fn end(&self, conversation_id: &str) -> Result<(Conversation, Vec<Event>)> {
        let held = self.hold(conversation_id).await?;
        let mut conversation = self.conversation(conversation_id).await?;
        if conversation.state == State::Ended {
            return Err(Error::FailedPrecondition(format!("conversation {conversation_id} has already ended")));
        }
        conversation.updated_at = self.clock.now_millis();
        let farewell = self.knowledge().base.locale(&conversation.language).replies.ended.clone();
        let language = conversation.language.clone();
        let goodbye = self.next_event(&mut conversation, bot_message(farewell, &language, None));
        let ended = self.change_state(&mut conversation, State::Ended, None, "ended by the front-end");
        let events = [goodbye, ended];
        self.store.commit(Commit::new(&conversation, &events)).await?;
        self.hub.publish(&events);
        info!(conversation_id, "conversation ended");
        drop(held);
        self.get(conversation_id).await
    }

    /// Every event after `after_seq`: the stored ones, then live ones as they are committed. Ends after the
    /// event that ends the conversation.
    pub async fn watch(
        self: &Arc<Self>,
        conversation_id: &str,
        after_seq: u64,
    ) -> Result<impl Stream<Item = Result<Event>> + Send + 'static> {
        self.check_id("conversation_id", conversation_id)?;
        // Subscribe before reading history, so nothing committed in between is missed.
        let mut live = BroadcastStream::new(self.hub.subscribe(conversation_id));
        self.conversation(conversation_id).await?;
        let history = self.store.events(conversation_id, after_seq).await?;
        let dialogue = Arc::clone(self);
        let conversation_id = conversation_id.to_owned();
        let mut closed = Box::pin(self.closed());
        Ok(async_stream::try_stream! {
            let mut last_seq = after_seq;
            let mut pending: VecDeque<Event> = history.into();
            loop {
                while let Some(event) = pending.pop_front() {
                    if event.seq <= last_seq {
                        continue;
                    }
                    if event.seq > last_seq + 1 && !pending.iter().any(|e| e.seq == last_seq + 1) {
                        // Events committed through another replica arrive by notification, possibly after later
                        // ones from here: the store has them all, in order.
                        let missed = dialogue.store.events(&conversation_id, last_seq).await?;
                        if missed.first().is_some_and(|e| e.seq == last_seq + 1) {
                            pending.push_front(event);
                            for missed in missed.into_iter().rev() {
                                pending.push_front(missed);
                            }
                            continue;
                        }
                    }
                    last_seq = event.seq;
                    let ends = event.ends_conversation();
                    yield event;
                    if ends {
                        return;
                    }
                }
                let next = tokio::select! {
                    next = live.next() => Some(next),
                    () = &mut closed => None,
                };
                let Some(next) = next else {
                    Err(shutting_down())?;
                    return;
                };
                match next {
                    None => return,
                    Some(Ok(event)) => pending.push_back(event),
                    // Fell behind the live buffer: catch up from the store, which has everything.
                    Some(Err(BroadcastStreamRecvError::Lagged(_))) => {
                        pending.extend(dialogue.store.events(&conversation_id, last_seq).await?);
                    }
                }
            }
        })
    }

    /// The conversation a caller names; its id is checked first, so an empty one is INVALID_ARGUMENT, not
    /// NOT_FOUND.
    pub(crate) async fn conversation(&self, id: &str) -> Result<Conversation> {
        self.check_id("conversation_id", id)?;
        self.store.conversation(id).await?.ok_or_else(|| Error::NotFound { what: "conversation", id: id.to_owned() })
    }

    fn supported_language(&self, code: &str) -> Result<String> {
        let code = code.to_ascii_lowercase();
        if self.config.languages.supported.contains(&code) {
            Ok(code)
        } else {
            let supported = self.config.languages.supported.join(", ");
            Err(Error::invalid("language", format!("{code:?} is not served (served: {supported})")))
        }
    }

    /// Puts a rating typed in reply to the rating question on the hand-off it was asked for, by the same rule as
    /// `RateConversation`. A rating that cannot be stored (already given through the API, the hand-off gone) is
    /// still thanked for; the turn is not failed over it.
    async fn typed_rating(&self, conversation: &mut Conversation, score: u8) -> Result<Option<Handoff>> {
        let handoff = self.handoff_to_rate(conversation).await?;
        conversation.memory.rating_handoff = None;
        let Some(mut handoff) = handoff else { return Ok(None) };
        match handoff::rate(&mut handoff, i32::from(score), "", conversation.updated_at) {
            Ok(()) => {
                info!(conversation_id = %conversation.id, score, "conversation rated in a message");
                Ok(Some(handoff))
            }
            Err(error) => {
                info!(conversation_id = %conversation.id, %error, "typed rating not stored");
                Ok(None)
            }
        }
    }

    /// The hand-off a rating of `conversation` is for: the one the bot asked about, else the latest. A later
    /// hand-off of the same conversation does not take the rating away from the one that was resolved.
    pub(crate) async fn handoff_to_rate(&self, conversation: &Conversation) -> Result<Option<Handoff>> {
        if let Some(id) = conversation.memory.rating_handoff.as_deref()
            && let Some(asked) = self.store.handoff(id).await?
        {
            return Ok(Some(asked));
        }
        Ok(self.store.latest_handoff(&conversation.id).await?)
    }

    /// Holds the conversation for one operation, in this process and on every replica sharing the database.
    pub(crate) async fn hold(&self, conversation_id: &str) -> Result<Held> {
        let local = self.lock(conversation_id).lock_owned().await;
        let shared = self.store.lock_conversation(conversation_id).await?;
        Ok(Held { _shared: shared, _local: local })
    }

    pub(crate) fn lock(&self, conversation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(conversation_id).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget locks nobody holds any more, so the map stays as small as the set of busy conversations.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(conversation_id.to_owned(), Arc::downgrade(&lock));
        lock
    }

    pub(crate) fn next_event(&self, conversation: &mut Conversation, body: EventBody) -> Event {
        conversation.last_seq += 1;
        Event {
            conversation_id: conversation.id.clone(),
            seq: conversation.last_seq,
            created_at: conversation.updated_at,
            body,
        }
    }

    pub(crate) fn change_state(
        &self,
        conversation: &mut Conversation,
        to: State,
        reason: Option<HandoffReason>,
        detail: &str,
    ) -> Event {
        let change = StateChange { from: conversation.state, to, handoff_reason: reason, detail: detail.to_owned() };
        conversation.state = to;
        self.next_event(conversation, EventBody::StateChange(change))
    }
}

/// The language to handle a message in: the conversation's, unless the message is clearly written in another
/// served language (then the conversation follows it, even when the front-end gave a language at start).
pub fn message_language(knowledge: &Knowledge, conversation: &Conversation, text: &str) -> String {
    language_of(knowledge, text, &conversation.language, conversation.language_fixed)
}

/// The language for `text` in a conversation now in `current`: a `fixed` language (one the front-end gave) yields
/// only to a message clearly written in another; otherwise whatever the message is detected to be written in.
pub fn language_of(knowledge: &Knowledge, text: &str, current: &str, fixed: bool) -> String {
    let detected = match fixed {
        true => knowledge.index.clearly_other_language(text, current),
        false => knowledge.index.detect_language(text),
    };
    detected.unwrap_or_else(|| current.to_owned())
}

/// The stored outcome of a retry, unless the client message id was first used for another text.
fn replay(turn: Turn, client_message_id: &str, text: &str) -> Result<SendOutcome> {
    let first = turn.message.message().map(|m| m.text.as_str()).unwrap_or_default();
    if first != text {
        return Err(Error::AlreadyExists(format!(
            "client_message_id {client_message_id:?} was already used for another message in this conversation; \
             use a new id for a new message"
        )));
    }
    Ok(SendOutcome { turn, replayed: true })
}

pub(crate) fn bot_message(text: String, language: &str, faq_id: Option<String>) -> EventBody {
    EventBody::Message(Message {
        id: uuid::Uuid::new_v4().to_string(),
        author: Author::Bot,
        text,
        language: language.to_owned(),
        client_message_id: None,
        faq_id,
        author_name: None,
    })
}

fn silent_decision(language: &str) -> Decision {
    Decision {
        kind: DecisionKind::Silent,
        language: language.to_owned(),
        explanation: "a person owns this conversation; the message is kept for them".into(),
        faq_matches: Vec::new(),
        intents: Vec::new(),
        clarify_options: Vec::new(),
        handoff_reason: None,
        answer_faq_id: None,
    }
}

/// A question the bot could not answer well, for the editors' gap list: handed off because nothing matched (not
/// because the customer asked for a person or sounded upset), or met with a clarifying question. Redacted here,
/// so personal data never reaches the gap list.
fn knowledge_gap(conversation: &Conversation, decision: &Decision, text: &str, at: i64) -> Option<Gap> {
    let reason = match (decision.kind, decision.handoff_reason) {
        (_, Some(reason @ (HandoffReason::LowConfidence | HandoffReason::RepeatedFailure))) => reason.as_str(),
        (DecisionKind::Clarify, _) => "clarify",
        _ => return None,
    };
    Some(Gap {
        id: uuid::Uuid::new_v4().to_string(),
        conversation_id: conversation.id.clone(),
        language: decision.language.clone(),
        text: crate::privacy::redact(text.trim()),
        reason: reason.to_owned(),
        best_faq: decision.faq_matches.first().map(|m| m.faq_id.clone()),
        created_at: at,
        resolved_at: None,
        resolved_faq: None,
    })
}

/// A CLIENT key may only touch the conversations it started.
fn check_scope(conversation: &Conversation, scope: Option<&str>) -> Result<()> {
    match scope {
        Some(owner) if conversation.owner.as_deref() != Some(owner) => {
            Err(Error::PermissionDenied(format!("conversation {} belongs to another client", conversation.id)))
        }
        _ => Ok(()),
    }
}

pub(crate) fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down: reconnect (a watch resumes from its last sequence number)".into())
}
