//! Conversations with the bot: starting them, handling each customer message with the decision policy, storing
//! every event before it is acknowledged, and streaming events to watchers. Knows nothing of gRPC.

pub mod eval;
pub mod policy;
mod turn;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_stream::Stream;
use tracing::info;

pub use policy::{Outcome, Policy, Reply, TurnInput};

use crate::access::RateLimiter;
use crate::config::Config;
use crate::conversation::{Channel, Conversation, DialogueMemory, Event, EventBody, State, Tier, Turn};
use crate::error::{Error, Result};
use crate::handoff::{QueueHub, Schedules};
use crate::intent::LiveModel;
use crate::knowledge::{Knowledge, LiveKnowledge};
use crate::ledger::Ledger;
use crate::store::{Commit, Store};
use crate::text::Limits;
use crate::webhooks::Webhooks;

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
    ledger: Arc<Ledger>,
    store: Arc<dyn Store>,
    knowledge: Arc<LiveKnowledge>,
    model: Arc<LiveModel>,
    policy: Policy,
    config: Arc<Config>,
    limits: Limits,
    queue: Arc<QueueHub>,
    schedules: Schedules,
    /// Customer messages per conversation (`limits.messages_per_minute_per_conversation`).
    pace: RateLimiter,
    /// Outbound webhooks: the deliveries each change commits.
    webhooks: Arc<Webhooks>,
}

/// What `Dialogue` is built from: the parts of the application context it uses.
pub struct DialogueParts {
    pub ledger: Arc<Ledger>,
    pub store: Arc<dyn Store>,
    pub knowledge: Arc<LiveKnowledge>,
    pub model: Arc<LiveModel>,
    pub config: Arc<Config>,
    pub schedules: Schedules,
    pub queue: Arc<QueueHub>,
    pub webhooks: Arc<Webhooks>,
}

impl Dialogue {
    pub fn new(parts: DialogueParts) -> Self {
        let DialogueParts { ledger, store, knowledge, model, config, schedules, queue, webhooks } = parts;
        let policy = Policy::new(config.policy.clone(), config.channels.clone());
        let per_minute = config.limits.messages_per_minute_per_conversation;
        // A short burst is normal (a customer pasting several lines); the minute's budget is the bound.
        let pace = RateLimiter::new(per_minute / 60.0, (per_minute / 4.0).max(5.0));
        let limits = config.limits.bounds();
        Self { ledger, store, knowledge, model, policy, config, limits, queue, schedules, pace, webhooks }
    }

    /// The knowledge base in force right now (an edit swaps in a new one; this one stays valid while held).
    fn knowledge(&self) -> Arc<Knowledge> {
        self.knowledge.current()
    }

    pub async fn start(&self, request: StartConversation) -> Result<(Conversation, Event)> {
        let limits = &self.config.limits;
        let customer_id = request.customer_id.trim();
        self.limits.check_id("customer_id", customer_id)?;
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
        let now = self.ledger.now();
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
        let greeting_body = EventBody::bot_message(greeting_text, &conversation.language, None);
        let greeting = conversation.next_event(greeting_body);
        self.ledger.commit(Commit::new(&conversation, std::slice::from_ref(&greeting))).await?;
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
        self.limits.check_id("conversation_id", conversation_id)?;
        self.limits.check_text(text)?;
        // Optional: absent or empty means "no idempotency", anything given must be a valid id.
        let client_message_id = client_message_id.map(str::trim).filter(|id| !id.is_empty());
        if let Some(id) = client_message_id {
            self.limits.check_id("client_message_id", id)?;
        }

        self.pace.take(conversation_id).map_err(|retry_after| Error::ResourceExhausted {
            message: format!("too many messages in conversation {conversation_id}"),
            retry_after,
        })?;
        let _held = self.ledger.hold(conversation_id).await?;
        let conversation = self.ledger.conversation(conversation_id).await?;
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

        let pending = self.build_turn(conversation, text, client_message_id).await?;
        self.commit_turn(pending, text, client_message_id, started).await
    }

    /// Fails unless the conversation exists and, with `scope`, is owned by that key.
    pub async fn authorize(&self, conversation_id: &str, scope: Option<&str>) -> Result<()> {
        if scope.is_some() {
            check_scope(&self.ledger.conversation(conversation_id).await?, scope)?;
        }
        Ok(())
    }

    /// The conversation header and its whole transcript.
    pub async fn get(&self, conversation_id: &str) -> Result<(Conversation, Vec<Event>)> {
        let conversation = self.ledger.conversation(conversation_id).await?;
        let events = self.store.events(conversation_id, 0).await?;
        Ok((conversation, events))
    }

    pub async fn end(&self, conversation_id: &str) -> Result<(Conversation, Vec<Event>)> {
        let held = self.ledger.hold(conversation_id).await?;
        let mut conversation = self.ledger.conversation(conversation_id).await?;
        if conversation.state == State::Ended {
            return Err(Error::FailedPrecondition(format!("conversation {conversation_id} has already ended")));
        }
        conversation.updated_at = self.ledger.now();
        let farewell = self.knowledge().base.locale(&conversation.language).replies.ended.clone();
        let language = conversation.language.clone();
        let goodbye = conversation.next_event(EventBody::bot_message(farewell, &language, None));
        let ended = conversation.change_state(State::Ended, None, "ended by the front-end");
        let events = [goodbye, ended];
        self.ledger.commit(Commit::new(&conversation, &events)).await?;
        self.ledger.publish(&events);
        info!(conversation_id, "conversation ended");
        drop(held);
        self.get(conversation_id).await
    }

    /// Every event after `after_seq`: the stored ones, then live ones as they are committed. Ends after the
    /// event that ends the conversation.
    pub async fn watch(
        &self,
        conversation_id: &str,
        after_seq: u64,
    ) -> Result<impl Stream<Item = Result<Event>> + Send + 'static> {
        self.ledger.watch(conversation_id, after_seq).await
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

/// A CLIENT key may only touch the conversations it started.
fn check_scope(conversation: &Conversation, scope: Option<&str>) -> Result<()> {
    match scope {
        Some(owner) if conversation.owner.as_deref() != Some(owner) => {
            Err(Error::PermissionDenied(format!("conversation {} belongs to another client", conversation.id)))
        }
        _ => Ok(()),
    }
}
