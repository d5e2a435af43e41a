//! The embedded default store: SQLite in WAL mode in the data directory. Turns are written by one writer task
//! ([`super::group_commit`]), which batches them, and the conversations it committed are read from memory
//! ([`super::recent`]), since this process is the only one that writes them.

mod access;
mod conversations;
mod deliveries;
mod group_commit;
mod handoffs;
mod knowledge;
mod privacy;
mod recent;
mod stats;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use super::rows::{
    Columns, Content, conversation_from_row, corrupt, delivery_from_row, from_json, handoffs_from_rows,
    stored_faq_from_row, to_json,
};
use super::{
    AccessStore, ChangeFeed, ConversationStore, DeliveryStore, HandoffStore, KnowledgeStore, PrivacyStore, StatsStore,
};
use super::{AttemptOutcome, AttemptResult, AuditEntry, Delivery, Erased, NewDelivery, OutboxDepth, Redeliver};
use super::{Commit, FaqRevision, HandoffFilter, KnowledgeWrite, StatsRecords, StoreError, StoredFaq, turn_facts};
use crate::conversation::{Conversation, Event, EventBody, Handoff, HandoffState, Turn};
use crate::identity::{ApiKey, Role};
use crate::knowledge::Faq;
use crate::knowledge::gaps::Gap;
use crate::paging::Position;
use group_commit::{GroupCommit, OwnedCommit, WriterConnection};
use recent::Recent;

pub struct SqliteStore {
    pool: SqlitePool,
    writer: GroupCommit,
    recent: Arc<Recent>,
    /// Background tasks run while this lives.
    _alive: Arc<()>,
}

/// How often the write-ahead log is copied back into the database file.
/// Attempts at opening the database file before a busy one is an error.
const OPEN_ATTEMPTS: u32 = 5;

const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies the write-ahead log into the database file on a reader connection, so the writer, which every turn
/// waits for, does not stop to do it when its commit crosses SQLite's automatic checkpoint size. PASSIVE: it
/// never blocks the writer or the readers, and whatever a reader still needs is copied next time.
async fn checkpoints(pool: SqlitePool, alive: std::sync::Weak<()>) {
    // The first checkpoint waits a whole period: at once it would run while `connect` is still opening the
    // writer's connection, the only moment two of the store's own connections meet on a fresh file.
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + CHECKPOINT_EVERY, CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if alive.strong_count() == 0 {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(%error, "checkpoint of the write-ahead log failed; SQLite's own will take over");
        }
    }
}

impl SqliteStore {
    /// The database file in `data_dir`.
    pub fn file(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("loket.db")
    }

    /// Opens (creating when missing) [`Self::file`] and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| corrupt(format!("cannot create {}: {e}", data_dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(Self::file(data_dir))
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction when the process dies (kill -9); only a power
            // failure can cost the last transactions, which FULL would guard at a large write cost.
            .synchronous(SqliteSynchronous::Normal)
            // A multi-row insert inside a transaction keeps a statement journal to undo just itself; in memory,
            // not in a temporary file written on every batch.
            .pragma("temp_store", "memory")
            // Checkpoints are the background task's (see `checkpoints`); this only bounds the log if it lags.
            .pragma("wal_autocheckpoint", "16384")
            .busy_timeout(Duration::from_secs(10));
        // Opening a fresh file can meet SQLITE_BUSY once (switching it to WAL takes a lock that is not always
        // waited for: a rare "database is locked" in CI while the browser test's server started). Opening again
        // is harmless: migrations are idempotent and nothing else holds the file yet.
        let mut attempt = 1;
        loop {
            match Self::connect(options.clone()).await {
                Err(StoreError::Database(sqlx::Error::Database(error)))
                    if attempt < OPEN_ATTEMPTS && error.message().contains("database is locked") =>
                {
                    tracing::warn!(attempt, %error, "the database was busy while opening it: trying again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// A private in-memory database (tests and the `ask` command).
    pub async fn in_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<SqliteStore, StoreError> {
        let in_memory = options.get_filename() == Path::new(":memory:");
        // An in-memory database lives in one connection; a file serves several readers.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let alive = Arc::new(());
        let connection = if in_memory {
            WriterConnection::Pool(pool.clone())
        } else {
            // The writer's own connection is opened before the checkpoint task starts, so nothing else touches the
            // file while it sets its pragmas (a test once saw "database is locked" here under load).
            let own = options.connect().await?;
            tokio::spawn(checkpoints(pool.clone(), Arc::downgrade(&alive)));
            WriterConnection::Own(own)
        };
        let recent = Arc::new(Recent::default());
        let writer = GroupCommit::start(connection, recent.clone());
        Ok(SqliteStore { pool, writer, recent, _alive: alive })
    }
}

/// Appends events, each with the turn it answers when it is that turn's customer message (for idempotent replay).
/// One statement for all of them, whatever the number of conversations: every statement is a round trip to
/// sqlx's SQLite thread.
pub(super) async fn insert_events(
    tx: &mut sqlx::SqliteConnection,
    events: &[(&Event, Option<&Turn>)],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(events.len());
    for (event, turn) in events {
        let (kind, client_message_id) = match &event.body {
            EventBody::Message(message) => ("message", message.client_message_id.clone()),
            EventBody::StateChange(_) => ("state_change", None),
        };
        let turn_json = match turn {
            Some(turn) if turn.message.seq == event.seq => Some(to_json(turn)?),
            _ => None,
        };
        rows.push((event, kind, client_message_id, to_json(&event.body)?, turn_json));
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO events (conversation_id, seq, created_at, kind, client_message_id, body, turn) ",
    );
    insert.push_values(rows, |mut row, (event, kind, client_message_id, body, turn_json)| {
        row.push_bind(&event.conversation_id)
            .push_bind(event.seq as i64)
            .push_bind(event.created_at)
            .push_bind(kind)
            .push_bind(client_message_id)
            .push_bind(body)
            .push_bind(turn_json);
    });
    let result = insert.build().execute(&mut *tx).await;
    if let Err(sqlx::Error::Database(e)) = &result
        && e.is_unique_violation()
        && e.message().contains("client_message_id")
    {
        return Err(StoreError::DuplicateClientMessage);
    }
    result?;
    if let Some(mut facts) = turn_facts::insert::<sqlx::Sqlite>(events.iter().copied()) {
        facts.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Inserts or updates conversations (state, language, last_seq, memory, updated_at), all in one statement.
pub(super) async fn save_conversations(
    tx: &mut sqlx::SqliteConnection,
    conversations: &[&Conversation],
) -> Result<(), StoreError> {
    if conversations.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(conversations.len());
    for c in conversations {
        rows.push((c, to_json(&c.metadata)?, to_json(&c.memory)?));
    }
    let mut upsert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO conversations (id, customer_id, tier, channel, language, language_fixed, metadata, state, \
         created_at, updated_at, last_seq, memory, owner) ",
    );
    upsert.push_values(rows, |mut row, (c, metadata, memory)| {
        row.push_bind(&c.id)
            .push_bind(&c.customer_id)
            .push_bind(c.tier.as_str())
            .push_bind(c.channel.as_str())
            .push_bind(&c.language)
            .push_bind(c.language_fixed)
            .push_bind(metadata)
            .push_bind(c.state.as_str())
            .push_bind(c.created_at)
            .push_bind(c.updated_at)
            .push_bind(c.last_seq as i64)
            .push_bind(memory)
            .push_bind(&c.owner);
    });
    upsert.push(
        " ON CONFLICT (id) DO UPDATE SET language = excluded.language, state = excluded.state, \
         updated_at = excluded.updated_at, last_seq = excluded.last_seq, memory = excluded.memory",
    );
    upsert.build().execute(&mut *tx).await?;
    Ok(())
}

pub(super) async fn save_handoff(
    tx: &mut sqlx::SqliteConnection,
    handoff: &Handoff,
    expected: Option<HandoffState>,
) -> Result<(), StoreError> {
    let record = to_json(handoff)?;
    let rating = handoff.rating.as_ref().map(|r| i64::from(r.score));
    let result =
        match expected {
            None => sqlx::query(
                "INSERT INTO handoffs (id, conversation_id, customer_id, state, skill, priority, reason, created_at, \
                 claimed_at, resolved_at, rating, record, pickable_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&handoff.id)
            .bind(&handoff.conversation_id)
            .bind(&handoff.customer_id)
            .bind(handoff.state.as_str())
            .bind(&handoff.skill)
            .bind(handoff.priority)
            .bind(handoff.reason.as_str())
            .bind(handoff.created_at)
            .bind(handoff.claimed_at)
            .bind(handoff.resolved_at)
            .bind(rating)
            .bind(record)
            .bind(handoff.pickable_from())
            .execute(&mut *tx)
            .await?,
            Some(expected) => sqlx::query(
                "UPDATE handoffs SET state = ?, skill = ?, priority = ?, claimed_at = ?, resolved_at = ?, rating = ?, \
                 record = ? WHERE id = ? AND state = ?",
            )
            .bind(handoff.state.as_str())
            .bind(&handoff.skill)
            .bind(handoff.priority)
            .bind(handoff.claimed_at)
            .bind(handoff.resolved_at)
            .bind(rating)
            .bind(record)
            .bind(&handoff.id)
            .bind(expected.as_str())
            .execute(&mut *tx)
            .await?,
        };
    if result.rows_affected() != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

async fn insert_audit(tx: &mut sqlx::SqliteConnection, audit: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)")
        .bind(audit.at)
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(audit.detail.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_gap(tx: &mut sqlx::SqliteConnection, gap: &Gap) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO knowledge_gaps (id, conversation_id, language, text, reason, best_faq, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&gap.id)
    .bind(&gap.conversation_id)
    .bind(&gap.language)
    .bind(&gap.text)
    .bind(&gap.reason)
    .bind(&gap.best_faq)
    .bind(gap.created_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores outbound webhook deliveries in the order given (their `seq` is the delivery order), in one statement.
/// They are due at once: `next_attempt_at` 0 keeps the deliverer's clock out of what the writer records.
pub(super) async fn insert_deliveries(
    tx: &mut sqlx::SqliteConnection,
    deliveries: &[&NewDelivery],
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO webhook_deliveries (id, event_id, event, webhook, ordering_key, conversation_id, payload, \
         created_at, state, next_attempt_at, updated_at) ",
    );
    insert.push_values(deliveries, |mut row, d| {
        row.push_bind(&d.id)
            .push_bind(&d.event_id)
            .push_bind(d.event)
            .push_bind(&d.webhook)
            .push_bind(&d.ordering_key)
            .push_bind(&d.conversation_id)
            .push_bind(&*d.payload)
            .push_bind(d.created_at)
            .push_bind("pending")
            .push_bind(0_i64)
            .push_bind(d.created_at);
    });
    insert.build().execute(&mut *tx).await?;
    Ok(())
}

/// What a deliverer claims (see [`super::Store::claim_deliveries`]).
pub(super) struct Claim {
    pub owner: String,
    pub webhook: String,
    pub now: i64,
    pub lease_until: i64,
    pub limit: u32,
}

/// Claims deliveries on the writer's connection (the group-commit task runs it between its batches).
pub(super) async fn claim_deliveries(
    connection: &mut sqlx::SqliteConnection,
    claim: &Claim,
) -> Result<Vec<Delivery>, StoreError> {
    // One statement, so the claim takes the write lock at once (no read-then-write upgrade to fail).
    let rows = sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_owner = ?1, lease_until = ?2 \
         WHERE seq IN (SELECT d.seq FROM webhook_deliveries d \
             WHERE d.state = 'pending' AND d.webhook = ?5 AND d.next_attempt_at <= ?3 \
             AND (d.lease_until IS NULL OR d.lease_until <= ?3) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.state = 'pending' \
                 AND e.webhook = d.webhook AND e.ordering_key = d.ordering_key AND e.seq < d.seq) \
             ORDER BY d.seq LIMIT ?4) \
         RETURNING *",
    )
    .bind(&claim.owner)
    .bind(claim.lease_until)
    .bind(claim.now)
    .bind(i64::from(claim.limit))
    .bind(&claim.webhook)
    .fetch_all(&mut *connection)
    .await?;
    let mut claimed: Vec<(i64, Delivery)> =
        rows.iter().map(|row| Ok((row.try_get("seq")?, delivery_from_row(row)?))).collect::<Result<_, StoreError>>()?;
    claimed.sort_by_key(|(seq, _)| *seq);
    Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
}

/// Records attempts' outcomes in one transaction on the writer's connection.
pub(super) async fn record_attempts(
    connection: &mut sqlx::SqliteConnection,
    outcomes: &[AttemptOutcome],
    now: i64,
) -> Result<(), StoreError> {
    use sqlx::Connection;
    let delivered: Vec<&str> =
        outcomes.iter().filter(|o| o.result == AttemptResult::Delivered).map(|o| o.delivery_id.as_str()).collect();
    let mut tx = connection.begin().await?;
    if !delivered.is_empty() {
        sqlx::query("DELETE FROM webhook_deliveries WHERE id IN (SELECT value FROM json_each(?))")
            .bind(to_json(&delivered)?)
            .execute(&mut *tx)
            .await?;
    }
    for outcome in outcomes {
        let Some((state, next, error)) = outcome.result.kept_row() else { continue };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = ?, next_attempt_at = ?, last_error = ?, updated_at = ?, \
             lease_owner = NULL, lease_until = NULL WHERE id = ? AND attempts = ?",
        )
        .bind(state)
        .bind(next)
        .bind(error)
        .bind(now)
        .bind(&outcome.delivery_id)
        .bind(i64::from(outcome.attempt))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl ChangeFeed for SqliteStore {}

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }

    fn text_opt(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }

    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }

    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        self.try_get(column)
    }

    fn count(&self, column: &str) -> Result<u32, sqlx::Error> {
        self.try_get::<i64, _>(column).map(|n| n as u32)
    }
}
