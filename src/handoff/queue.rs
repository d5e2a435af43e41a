//! The agents' live queue: what a hand-off's package holds (transcript, earlier conversations), and the fan-out
//! of queue changes to every agent watching, across replicas.

use tokio::sync::broadcast;

use crate::conversation::{Author, Conversation, Event, Handoff};
use crate::store::{Store, StoreError};

/// Earlier conversations shown in a package.
const EARLIER_CONVERSATIONS: u32 = 5;
/// Messages shown per earlier conversation.
const EARLIER_MESSAGES: usize = 3;
/// Live queue events buffered for a slow watcher before it re-reads the queue.
const QUEUE_BUFFER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEventKind {
    Snapshot,
    Synced,
    New,
    Claimed,
    Transferred,
    Resolved,
}

#[derive(Debug, Clone)]
pub struct QueueEvent {
    pub kind: QueueEventKind,
    pub package: Option<HandoffPackage>,
    /// For a transfer: the skill the hand-off left, whose watchers see it go.
    pub from_skill: Option<String>,
}

/// A hand-off with the context an agent needs.
#[derive(Debug, Clone)]
pub struct HandoffPackage {
    pub handoff: Handoff,
    /// The conversation so far (empty in list results and in claim/resolve queue events).
    pub transcript: Vec<Event>,
    pub earlier: Vec<EarlierConversation>,
}

#[derive(Debug, Clone)]
pub struct EarlierConversation {
    pub conversation: Conversation,
    pub first_ask: String,
    pub last_messages: Vec<Event>,
}

/// Fan-out of queue changes to every agent's WatchQueue; each watcher filters by its skills. `None` tells
/// watchers that changes may have been missed, so they re-read the queue.
pub struct QueueHub {
    pub(super) sender: broadcast::Sender<Option<QueueEvent>>,
}

impl Default for QueueHub {
    fn default() -> Self {
        Self { sender: broadcast::channel(QUEUE_BUFFER).0 }
    }
}

impl QueueHub {
    /// Whether any agent watches the queue.
    fn watched(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub fn publish(&self, kind: QueueEventKind, package: HandoffPackage) {
        self.send(QueueEvent { kind, package: Some(package), from_skill: None });
    }

    /// Publishes a committed change of `handoff`, whole (transcript, earlier conversations) for the kinds an
    /// agent must read it for. Only when an agent watches: a package costs several reads, and one who starts
    /// watching later finds the hand-off in their snapshot, since they subscribe before reading it.
    pub async fn announce(
        &self,
        store: &dyn Store,
        kind: QueueEventKind,
        handoff: Handoff,
        from_skill: Option<String>,
    ) -> Result<(), StoreError> {
        if !self.watched() {
            return Ok(());
        }
        let package = match kind {
            QueueEventKind::New | QueueEventKind::Transferred => package(store, handoff).await?,
            _ => bare(handoff),
        };
        self.send(QueueEvent { kind, package: Some(package), from_skill });
        Ok(())
    }

    /// A change committed through another replica, told by id: re-read and published as if made here.
    pub async fn publish_remote(
        &self,
        store: &dyn Store,
        kind: QueueEventKind,
        handoff_id: &str,
        from_skill: Option<String>,
    ) -> Result<(), StoreError> {
        if !self.watched() {
            return Ok(());
        }
        let Some(handoff) = store.handoff(handoff_id).await? else { return Ok(()) };
        self.announce(store, kind, handoff, from_skill).await
    }

    /// Changes may have been missed (notifications from other replicas were lost): every watcher re-reads.
    pub fn resync(&self) {
        let _ = self.sender.send(None);
    }

    pub(super) fn send(&self, event: QueueEvent) {
        // An error only means nobody is watching.
        let _ = self.sender.send(Some(event));
    }
}

/// The full package of a hand-off: transcript and the customer's earlier conversations.
pub async fn package(store: &dyn Store, handoff: Handoff) -> Result<HandoffPackage, StoreError> {
    let transcript = store.events(&handoff.conversation_id, 0).await?;
    let mut earlier = Vec::new();
    for conversation in store.conversations_of_customer(&handoff.customer_id, EARLIER_CONVERSATIONS + 1).await? {
        if conversation.id == handoff.conversation_id || earlier.len() as u32 >= EARLIER_CONVERSATIONS {
            continue;
        }
        let events = store.events(&conversation.id, 0).await?;
        let messages: Vec<Event> = events.into_iter().filter(|e| e.message().is_some()).collect();
        let first_ask = messages
            .iter()
            .filter_map(Event::message)
            .find(|m| m.author == Author::Customer)
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let last_messages = messages[messages.len().saturating_sub(EARLIER_MESSAGES)..].to_vec();
        earlier.push(EarlierConversation { conversation, first_ask, last_messages });
    }
    Ok(HandoffPackage { handoff, transcript, earlier })
}

/// A package without transcript or history: what list results and claim/resolve events carry.
pub(super) fn bare(handoff: Handoff) -> HandoffPackage {
    HandoffPackage { handoff, transcript: Vec::new(), earlier: Vec::new() }
}
