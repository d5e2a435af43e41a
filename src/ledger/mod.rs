//! The conversation ledger: what every service that changes a conversation shares. It loads a conversation, holds
//! it for one operation (in this process and on every replica), commits its events (waking the webhook deliverer
//! when the commit carries deliveries), publishes them to live watchers, and streams them. The bot's turns
//! (`dialogue`) and the agents' desk (`handoff`) both write through it; it knows neither.

mod hub;
mod locks;
mod watch;

use std::sync::Arc;

pub use hub::EventHub;
pub use locks::Held;

use crate::clock::Clock;
use crate::conversation::{Conversation, Event, Handoff};
use crate::error::{Error, Result};
use crate::store::{Commit, Store, StoreError};
use crate::text::Limits;
use crate::webhooks::Webhooks;

pub struct Ledger {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    hub: EventHub,
    locks: locks::Locks,
    webhooks: Arc<Webhooks>,
    /// Set when the server shuts down: open streams end so the transport can drain.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Ledger {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, limits: Limits, webhooks: Arc<Webhooks>) -> Self {
        Self {
            store,
            clock,
            limits,
            hub: EventHub::default(),
            locks: locks::Locks::default(),
            webhooks,
            closing: tokio::sync::watch::Sender::new(false),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// The conversation a caller names; its id is checked first, so an empty one is INVALID_ARGUMENT, not
    /// NOT_FOUND.
    pub async fn conversation(&self, id: &str) -> Result<Conversation> {
        self.limits.check_id("conversation_id", id)?;
        self.store.conversation(id).await?.ok_or_else(|| Error::NotFound { what: "conversation", id: id.to_owned() })
    }

    /// Holds the conversation for one operation, in this process and on every replica sharing the database.
    pub async fn hold(&self, conversation_id: &str) -> Result<Held> {
        let local = self.locks.lock(conversation_id).lock_owned().await;
        let shared = self.store.lock_conversation(conversation_id).await?;
        Ok(Held::new(shared, local))
    }

    /// Commits, then wakes the webhook deliverer when the commit carried deliveries.
    pub async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let deliveries = !commit.deliveries.is_empty();
        self.store.commit(commit).await?;
        if deliveries {
            self.webhooks.wake();
        }
        Ok(())
    }

    /// Hands committed events to live watchers (here; other replicas learn of them from the store's change feed).
    pub fn publish(&self, events: &[Event]) {
        self.hub.publish(events);
    }

    /// The live fan-out, for the replica follower that republishes other replicas' events.
    pub fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// The hand-off a rating of `conversation` is for: the one the bot asked about, else the latest. A later
    /// hand-off of the same conversation does not take the rating away from the one that was resolved.
    pub async fn handoff_to_rate(&self, conversation: &Conversation) -> Result<Option<Handoff>> {
        if let Some(id) = conversation.memory.rating_handoff.as_deref()
            && let Some(asked) = self.store.handoff(id).await?
        {
            return Ok(Some(asked));
        }
        Ok(self.store.latest_handoff(&conversation.id).await?)
    }

    /// Ends every open watch stream with UNAVAILABLE (the server is shutting down; clients resume elsewhere with
    /// their last sequence number). Unary requests in flight are not affected.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once `close_streams` was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }
}

/// What a stream ends with when the server shuts down.
pub fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down: reconnect (a watch resumes from its last sequence number)".into())
}
