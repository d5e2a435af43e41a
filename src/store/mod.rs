//! Persistence behind one small interface, so the embedded SQLite default and a shared PostgreSQL can both
//! serve it. A call that returns Ok has committed: callers acknowledge only after it.

mod api;
mod postgres;
mod rows;
mod sqlite;
mod stats;
mod turn_facts;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use api::{
    AccessStore, ChangeFeed, ConversationStore, DeliveryStore, HandoffStore, KnowledgeStore, PrivacyStore, StatsStore,
    Store,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use stats::{ConversationFacts, GapMessage, HandoffFacts, StatsDetail, StatsRecords, StatsScope};

use crate::config::StorageConfig;
use crate::conversation::{Conversation, Event, Handoff, HandoffState, Turn};
use crate::knowledge::Faq;
use crate::knowledge::gaps::Gap;

pub use crate::error::StoreError;

/// Commits `tx`. A connection lost while the commit is under way leaves its outcome unknown: the server may have
/// committed before the reply was lost. Every other failure before or at commit leaves nothing applied.
pub(crate) async fn finish<DB: sqlx::Database>(tx: sqlx::Transaction<'_, DB>) -> Result<(), StoreError> {
    tx.commit().await.map_err(|error| match StoreError::from(error) {
        StoreError::Unavailable(error) => StoreError::OutcomeUnknown(error),
        other => other,
    })
}

/// Everything one operation writes, committed atomically.
pub struct Commit<'a> {
    /// Saved (inserted or updated): state, language, last_seq, memory, updated_at.
    pub conversation: &'a Conversation,
    /// Appended.
    pub events: &'a [Event],
    /// Stored with its customer message (which must be among `events`) for idempotent replay.
    pub turn: Option<&'a Turn>,
    /// Inserted or updated. With `Some(state)` as the second member the update only applies while the stored
    /// hand-off is still in that state, else the whole commit fails with [`StoreError::Conflict`].
    pub handoff: Option<(&'a Handoff, Option<HandoffState>)>,
    /// A question the bot could not answer well, recorded with the turn that asked it.
    pub gap: Option<&'a Gap>,
    /// Outbound webhook deliveries of what this commit changes (the outbox), in the order they are to be sent.
    pub deliveries: &'a [NewDelivery],
}

impl<'a> Commit<'a> {
    pub fn new(conversation: &'a Conversation, events: &'a [Event]) -> Self {
        Commit { conversation, events, turn: None, handoff: None, gap: None, deliveries: &[] }
    }
}

/// An outbound webhook delivery to store with the change it reports: one event for one configured webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The delivery's id (header `loket-delivery`).
    pub id: String,
    /// The event's id, the same in every webhook's delivery of it (header `loket-event-id`).
    pub event_id: String,
    /// `handoff.created`, ...
    pub event: &'static str,
    /// The configured webhook's name.
    pub webhook: String,
    /// Deliveries with the same key (a conversation, an FAQ entry) reach a webhook in the order they were stored.
    pub ordering_key: String,
    /// The conversation reported on, if any: erasing its customer deletes the delivery with it.
    pub conversation_id: Option<String>,
    /// The request body, as it will be sent and signed.
    pub payload: Arc<str>,
    pub created_at: i64,
}

/// A stored delivery: pending (being tried) or failed (out of attempts).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event: String,
    pub webhook: String,
    pub conversation_id: Option<String>,
    pub payload: String,
    pub created_at: i64,
    pub failed: bool,
    /// Attempts claimed, ever; a claim numbers its attempt with the new count, so attempt ids never repeat.
    pub attempts: u32,
    /// Attempts made before the last redelivery: the attempts of this round are `attempts - attempts_before`.
    pub attempts_before: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The last attempt's end (for a failed delivery: when it failed), or its creation.
    pub updated_at: i64,
}

/// How one attempt of a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// The receiver answered 2xx: the delivery is removed.
    Delivered,
    /// Tried again from `at` (Unix milliseconds).
    Retry { at: i64, error: String },
    /// Out of attempts: kept as failed.
    Failed { error: String },
}

impl AttemptResult {
    /// The state, next attempt time and last error a delivery's row keeps after this attempt; `None` when it
    /// was delivered and its row goes.
    pub(crate) fn kept_row(&self) -> Option<(&'static str, i64, &str)> {
        match self {
            AttemptResult::Delivered => None,
            AttemptResult::Retry { at, error } => Some(("pending", *at, error)),
            AttemptResult::Failed { error } => Some(("failed", 0, error)),
        }
    }
}

/// The outcome of the attempt a claim numbered `attempt`; ignored when the delivery was claimed again since.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub delivery_id: String,
    pub attempt: u32,
    pub result: AttemptResult,
}

/// Which failed deliveries to queue again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeliver<'a> {
    One(&'a str),
    /// Every failed delivery of this webhook.
    Webhook(&'a str),
}

/// Deliveries stored for one webhook in one state (`pending` or `failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxDepth {
    pub webhook: String,
    pub state: String,
    pub count: u64,
}

/// An FAQ entry as stored: the entry and its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFaq {
    pub faq: Faq,
    /// 1 when created, +1 per change; an update names the revision it read (optimistic concurrency).
    pub revision: i64,
    /// Retired entries are kept with their history but not served.
    pub retired: bool,
    pub updated_at: i64,
    pub updated_by: String,
}

/// What a change to an entry was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaqAction {
    Create,
    Update,
    Retire,
    Import,
}

impl FaqAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaqAction::Create => "create",
            FaqAction::Update => "update",
            FaqAction::Retire => "retire",
            FaqAction::Import => "import",
        }
    }
}

/// One entry's new state. `expected_revision: None` inserts (the id must be new); `Some(r)` updates only while
/// the stored revision is still `r`, else the whole write fails with [`StoreError::Conflict`].
#[derive(Debug, Clone)]
pub struct FaqChange {
    pub after: StoredFaq,
    pub action: FaqAction,
    pub expected_revision: Option<i64>,
}

/// One recorded change, with the entry as it was after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqRevision {
    /// Orders every change to the knowledge base.
    pub version: i64,
    pub action: String,
    pub entry: StoredFaq,
}

/// FAQ changes written together: all or nothing, with the knowledge gaps they close.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeWrite {
    pub changes: Vec<FaqChange>,
    /// Open gaps to mark resolved by `resolved_faq`.
    pub resolve_gaps: Vec<String>,
    pub resolved_faq: Option<String>,
    pub at: i64,
    /// Outbound webhook deliveries of these changes, committed with them.
    pub deliveries: Vec<NewDelivery>,
}

/// What erasing a customer removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub conversations: u64,
    pub messages: u64,
    pub handoffs: u64,
    pub ratings: u64,
    pub gaps: u64,
}

/// One privileged action, recorded without personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: i64,
    /// The key id that acted.
    pub actor: String,
    pub action: String,
    /// Counts and key ids; never customer data.
    pub detail: serde_json::Value,
}

/// Which hand-offs to list.
#[derive(Debug, Clone, Default)]
pub struct HandoffFilter {
    pub state: Option<HandoffState>,
    /// Any of these skills (empty: all).
    pub skills: Vec<String>,
}

/// Something another process sharing the database committed, named by ids only: the receiver re-reads the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Events `first_seq..=last_seq` of a conversation.
    Events { conversation_id: String, first_seq: u64, last_seq: u64 },
    /// A hand-off was opened (`from: None`) or moved from one state to another. `from_skill` is the skill it
    /// had before the change.
    Handoff { handoff_id: String, from: Option<HandoffState>, to: HandoffState, from_skill: String },
    /// The knowledge base changed; `version` is the newest change.
    Knowledge { version: i64 },
    /// Changes may have been missed (the notification connection was lost and is back): re-read what is watched.
    Resync,
}

/// Held while one operation on a conversation runs; dropping it lets the next one in, on whichever replica.
/// The embedded store has one process only, so there it holds nothing (the caller's in-process lock suffices).
pub struct ConversationLock(#[allow(dead_code)] Option<Box<dyn Send>>);

impl ConversationLock {
    pub fn in_process() -> Self {
        ConversationLock(None)
    }

    pub(crate) fn holding(guard: impl Send + 'static) -> Self {
        ConversationLock(Some(Box::new(guard)))
    }
}

/// Whether the store answers, checked every `every` (each check given as long again to answer). The receiver
/// starts at `true` and changes only on a change, which is logged; the task runs until aborted.
pub fn watch_reachable(store: Arc<dyn Store>, every: Duration) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (sender, receiver) = watch::channel(true);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let reachable = matches!(tokio::time::timeout(every, store.ping()).await, Ok(Ok(())));
            if *sender.borrow() != reachable {
                match reachable {
                    true => info!("the database answers again"),
                    false => warn!("the database does not answer: calls get UNAVAILABLE, health says NOT_SERVING"),
                }
                sender.send_replace(reachable);
            }
        }
    });
    (receiver, task)
}

/// The configured store: PostgreSQL when `database_url` is set, else the embedded SQLite in `data_dir`.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StoreError> {
    if config.database_url.trim().is_empty() {
        let store = SqliteStore::open(&config.data_dir).await?;
        info!(engine = "sqlite", path = %SqliteStore::file(&config.data_dir).display(), "database ready");
        return Ok(Arc::new(store));
    }
    let acquire_timeout = std::time::Duration::from_millis(config.acquire_timeout_ms);
    let store = PgStore::connect(&config.database_url, config.max_connections, acquire_timeout).await?;
    info!(engine = "postgres", "database ready");
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable_and_refusals_are_not() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(StoreError::from(refused), StoreError::Unavailable(_)));
        assert!(matches!(StoreError::from(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        // The database answered, and said no: a bug or bad data, not an outage.
        assert!(matches!(StoreError::from(sqlx::Error::RowNotFound), StoreError::Database(_)));
        assert!(matches!(StoreError::from(sqlx::Error::ColumnNotFound("id".into())), StoreError::Database(_)));
    }
}
