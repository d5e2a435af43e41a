//! What the store does, by area: one trait per area, so a service can say (and be handed) only the part it
//! uses, and each backend implements each area in a file of its own. [`Store`] is all of them.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::*;
use crate::conversation::{Conversation, Event, Handoff, Turn};
use crate::identity::ApiKey;
use crate::knowledge::gaps::Gap;
use crate::paging::Position;

/// Everything loket stores: every area. Backends implement the areas; this follows.
pub trait Store:
    ConversationStore
    + HandoffStore
    + KnowledgeStore
    + AccessStore
    + PrivacyStore
    + StatsStore
    + DeliveryStore
    + ChangeFeed
    + 'static
{
}

impl<T> Store for T where
    T: ConversationStore
        + HandoffStore
        + KnowledgeStore
        + AccessStore
        + PrivacyStore
        + StatsStore
        + DeliveryStore
        + ChangeFeed
        + 'static
{
}

/// Conversations and their turns and events: committing a turn, reading them back, and holding one conversation while it is changed.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError>;

    /// Waits until no other process sharing the database works on this conversation, and keeps it so until
    /// the lock is dropped. Callers take their in-process lock first. If the process dies, the database frees it.
    async fn lock_conversation(&self, _conversation_id: &str) -> Result<ConversationLock, StoreError> {
        Ok(ConversationLock::in_process())
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError>;

    /// The customer's conversations, newest first.
    async fn conversations_of_customer(&self, customer_id: &str, limit: u32) -> Result<Vec<Conversation>, StoreError>;

    /// The stored outcome of the customer message with this client message id, if any.
    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError>;

    /// Events with a sequence number greater than `after_seq`, in order.
    async fn events(&self, conversation_id: &str, after_seq: u64) -> Result<Vec<Event>, StoreError>;
}

/// Hand-offs: one, the latest of a conversation, pages of them, and what the queue looks like for an estimate.
#[async_trait]
pub trait HandoffStore: Send + Sync {
    async fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError>;

    /// The most recent hand-off of a conversation.
    async fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError>;

    /// Hand-offs matching `filter`, newest first (by creation time, then id), starting after `after` (the
    /// position of the previous page's last one): a keyset, so hand-offs opened meanwhile never shift a page.
    async fn handoffs(
        &self,
        filter: &HandoffFilter,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Handoff>, StoreError>;

    /// Queued hand-offs of `skill` that come before one with this priority and creation time.
    async fn queued_ahead(&self, skill: &str, priority: i32, created_at: i64) -> Result<u64, StoreError>;

    /// Waits (claim minus creation, milliseconds) of the most recently claimed hand-offs of `skill`.
    async fn recent_waits(&self, skill: &str, limit: u32) -> Result<Vec<i64>, StoreError>;
}

/// The FAQ entries with their revisions, the knowledge version, and the open knowledge gaps.
#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// Every FAQ entry ever stored, retired ones included, by id.
    async fn faqs(&self) -> Result<Vec<StoredFaq>, StoreError>;

    /// Applies FAQ changes atomically, recording each as a revision.
    async fn write_knowledge(&self, write: &KnowledgeWrite) -> Result<(), StoreError>;

    /// Recorded changes, newest first: of one entry or of all, older than `before_version` when given.
    async fn faq_revisions(
        &self,
        faq_id: Option<&str>,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FaqRevision>, StoreError>;

    /// The version of the newest change (0 before any): what a trained model is stamped with.
    async fn knowledge_version(&self) -> Result<i64, StoreError>;

    /// Knowledge gaps not yet resolved, oldest first, at most `limit`.
    async fn open_gaps(&self, limit: u32) -> Result<Vec<Gap>, StoreError>;
}

/// API keys, the conversation-token secret, and the audit log.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Every API key, revoked ones included.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Stores a new key and audits it, atomically.
    async fn insert_api_key(&self, key: &ApiKey, audit: &AuditEntry) -> Result<(), StoreError>;

    /// The secret conversation tokens are signed with: `fresh` is stored when there is none yet, and the stored
    /// one is returned, so every replica (and every restart) signs alike.
    async fn token_secret(&self, fresh: &str, now: i64) -> Result<String, StoreError>;

    /// Revokes a key (false when there is no such live key) and audits it, atomically.
    async fn revoke_api_key(&self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError>;

    /// Appends one entry to the audit log, on its own.
    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StoreError>;

    /// The newest audit entries first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// A customer's erasure and the redaction of transcripts past their retention.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Deletes every conversation, message, hand-off, rating and knowledge gap of a customer, and records the
    /// counts (not the customer) in the audit log, atomically.
    async fn erase_customer(&self, customer_id: &str, actor: &str, at: i64) -> Result<Erased, StoreError>;

    /// Replaces the free text (messages, hand-off summaries and notes, rating comments, what the dialogue
    /// remembers) of everything older than `before` with `redact(text)`, once; drops the stored replay of those
    /// turns. Returns how many rows were rewritten.
    async fn redact_before(&self, before: i64, redact: for<'t> fn(&'t str) -> String) -> Result<u64, StoreError>;
}

/// What the KPIs are computed from.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// The conversations of `scope` with their hand-offs, and with [`StatsDetail::TopLists`] their top lists'
    /// makings.
    async fn stats_records(&self, scope: &StatsScope, detail: StatsDetail) -> Result<StatsRecords, StoreError>;
}

/// The webhook outbox: claiming deliveries, recording attempts, and the administrators' view of failures.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Claims up to `limit` deliveries to `webhook` that are due at `now`, not leased, and first in line for their
    /// ordering key (no earlier delivery of the key still pending), oldest first: each is leased to `owner` until
    /// `lease_until` and its attempt count raised, so no other deliverer takes it meanwhile and no attempt number
    /// is used twice. With PostgreSQL several replicas claim at once; each delivery goes to one.
    async fn claim_deliveries(
        &self,
        owner: &str,
        webhook: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Marks the pending deliveries of every webhook not in `configured` as failed (the webhook was removed from
    /// the configuration), so they are listed and can be redelivered once it is back. Returns how many.
    async fn fail_unconfigured_deliveries(&self, configured: &[String], now: i64) -> Result<u64, StoreError>;

    /// Records how attempts ended, all in one transaction: delivered ones are removed, the others rescheduled or
    /// kept as failed (with `now` as their time), each only if no later claim numbered another attempt meanwhile.
    async fn record_attempts(&self, outcomes: &[AttemptOutcome], now: i64) -> Result<(), StoreError>;

    /// Failed deliveries (of `webhook` when given), newest failure first (by `updated_at`, then id), after `after`.
    async fn failed_deliveries(
        &self,
        webhook: Option<&str>,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Queues failed deliveries again with a fresh round of attempts, due at once, and audits it, atomically.
    /// Returns how many there were.
    async fn redeliver(&self, which: Redeliver<'_>, now: i64, audit: &AuditEntry) -> Result<u64, StoreError>;

    /// Frees every delivery lease: called by the one deliverer of a store no other process delivers from (the
    /// embedded one) when it starts, so what a killed process had claimed is sent at once. Shared stores leave
    /// leases to expire, since another replica may hold them.
    async fn release_delivery_leases(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How many deliveries are stored, per webhook and state.
    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError>;
}

/// The database as replicas share it: whether it answers, and what the others commit.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Answers when the database can be reached (the embedded one always can).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// What other processes commit from now on; `None` when no other process can write (the embedded store).
    async fn changes(&self) -> Result<Option<mpsc::Receiver<Change>>, StoreError> {
        Ok(None)
    }
}
