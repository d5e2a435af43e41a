//! Persistence behind one small interface, so the embedded SQLite default and a shared PostgreSQL can both
//! serve it. A call that returns Ok has committed: callers acknowledge only after it.

mod group_commit;
mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteStore;

use crate::conversation::{Conversation, Event, Handoff, HandoffState, Turn};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A customer message with this client message id is already stored (a concurrent retry won).
    #[error("duplicate client message id")]
    DuplicateClientMessage,
    /// The hand-off was no longer in the expected state: someone else changed it first.
    #[error("hand-off changed concurrently")]
    Conflict,
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
}

impl<'a> Commit<'a> {
    pub fn new(conversation: &'a Conversation, events: &'a [Event]) -> Self {
        Commit { conversation, events, turn: None, handoff: None }
    }
}

/// What the KPIs are computed from: the conversations started in a time range, with their hand-offs and turns.
#[derive(Debug, Clone, Default)]
pub struct StatsRecords {
    pub conversations: Vec<Conversation>,
    /// Every hand-off of those conversations, whenever it was opened.
    pub handoffs: Vec<Handoff>,
    /// Every customer message of those conversations with its decision, in order per conversation.
    pub turns: Vec<Turn>,
}

/// Which hand-offs to list.
#[derive(Debug, Clone, Default)]
pub struct HandoffFilter {
    pub state: Option<HandoffState>,
    /// Any of these skills (empty: all).
    pub skills: Vec<String>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError>;

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;

    /// The customer's conversations, newest first.
    async fn conversations_of_customer(&self, customer_id: &str, limit: u32) -> Result<Vec<Conversation>, StoreError>;

    /// The stored outcome of the customer message with this client message id, if any.
    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError>;

    /// Events with a sequence number greater than `after_seq`, in order.
    async fn events(&self, conversation_id: &str, after_seq: u64) -> Result<Vec<Event>, StoreError>;

    async fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError>;

    /// The most recent hand-off of a conversation.
    async fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError>;

    /// Hand-offs matching `filter`, newest first, skipping `offset`.
    async fn handoffs(&self, filter: &HandoffFilter, offset: u64, limit: u32) -> Result<Vec<Handoff>, StoreError>;

    /// Queued hand-offs of `skill` that come before one with this priority and creation time.
    async fn queued_ahead(&self, skill: &str, priority: i32, created_at: i64) -> Result<u64, StoreError>;

    /// Waits (claim minus creation, milliseconds) of the most recently claimed hand-offs of `skill`.
    async fn recent_waits(&self, skill: &str, limit: u32) -> Result<Vec<i64>, StoreError>;

    /// The conversations created in `[start, end)` (Unix milliseconds) with their hand-offs and turns.
    async fn stats_records(&self, start: i64, end: i64) -> Result<StatsRecords, StoreError>;
}
