//! Persistence behind one small interface, so the embedded SQLite default and a shared PostgreSQL can both
//! serve it. A call that returns Ok has committed: callers acknowledge only after it.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteStore;

use crate::conversation::{Conversation, Event, Turn};

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
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new conversation with its first events.
    async fn create_conversation(&self, conversation: &Conversation, events: &[Event]) -> Result<(), StoreError>;

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;

    /// The stored outcome of the customer message with this client message id, if any.
    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError>;

    /// Atomically appends `events` and saves the conversation header (state, last_seq, memory). When `turn` is
    /// given it is stored with its customer message, which must be among `events`.
    async fn append(
        &self,
        conversation: &Conversation,
        events: &[Event],
        turn: Option<&Turn>,
    ) -> Result<(), StoreError>;

    /// Events with a sequence number greater than `after_seq`, in order.
    async fn events(&self, conversation_id: &str, after_seq: u64) -> Result<Vec<Event>, StoreError>;
}
