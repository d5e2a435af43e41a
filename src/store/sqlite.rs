//! The embedded default store: SQLite in WAL mode in the data directory. Turns are written by one writer task
//! ([`super::group_commit`]), which batches them, and the conversations it committed are read from memory
//! ([`super::recent`]), since this process is the only one that writes them.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use super::group_commit::{GroupCommit, OwnedCommit, WriterConnection};
use super::recent::Recent;
use super::{AttemptOutcome, AttemptResult, AuditEntry, Delivery, Erased, NewDelivery, OutboxDepth, Redeliver};
use super::{
    Commit, FaqRevision, HandoffFilter, KnowledgeWrite, StatsRecords, Store, StoreError, StoredFaq, TurnFacts,
};
use crate::access::{ApiKey, Role};
use crate::conversation::{Channel, Conversation, Event, EventBody, Handoff, HandoffState, State, Tier, Turn};
use crate::knowledge::gaps::Gap;
use crate::knowledge::{Faq, Translation};
use crate::paging::Position;

pub struct SqliteStore {
    pool: SqlitePool,
    writer: GroupCommit,
    recent: Arc<Recent>,
    /// Background tasks run while this lives.
    _alive: Arc<()>,
}

/// How often the write-ahead log is copied back into the database file.
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

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
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
        Self::connect(options).await
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

fn conversation_from_row(row: &SqliteRow) -> Result<Conversation, StoreError> {
    let text = |name: &str| row.try_get::<String, _>(name);
    Ok(Conversation {
        id: text("id")?,
        customer_id: text("customer_id")?,
        tier: Tier::parse(&text("tier")?).ok_or_else(|| corrupt("tier"))?,
        channel: Channel::parse(&text("channel")?).ok_or_else(|| corrupt("channel"))?,
        language: text("language")?,
        language_fixed: row.try_get::<bool, _>("language_fixed")?,
        metadata: from_json(&text("metadata")?)?,
        state: State::parse(&text("state")?).ok_or_else(|| corrupt("state"))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_seq: row.try_get::<i64, _>("last_seq")? as u64,
        memory: from_json(&text("memory")?)?,
        owner: row.try_get("owner")?,
    })
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
                 claimed_at, resolved_at, rating, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event: row.try_get("event")?,
        webhook: row.try_get("webhook")?,
        conversation_id: row.try_get("conversation_id")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        failed: row.try_get::<String, _>("state")? == "failed",
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        attempts_before: row.try_get::<i64, _>("attempts_before")? as u32,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The stored JSON of an entry's content: what varies per language.
type Content = std::collections::BTreeMap<String, Translation>;

fn stored_faq_from_row(row: &SqliteRow) -> Result<StoredFaq, StoreError> {
    let content: Content = from_json(&row.try_get::<String, _>("content")?)?;
    Ok(StoredFaq {
        faq: Faq {
            id: row.try_get("id")?,
            category: row.try_get("category")?,
            skill: row.try_get("skill")?,
            translations: content,
        },
        revision: row.try_get("revision")?,
        retired: row.try_get("retired")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn handoffs_from_rows(rows: &[SqliteRow]) -> Result<Vec<Handoff>, StoreError> {
    rows.iter().map(|row| from_json(&row.try_get::<String, _>("record")?)).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let owned = OwnedCommit {
            conversation: commit.conversation.clone(),
            events: commit.events.to_vec(),
            turn: commit.turn.cloned(),
            handoff: commit.handoff.map(|(handoff, expected)| (handoff.clone(), expected)),
            gap: commit.gap.cloned(),
            deliveries: commit.deliveries.to_vec(),
        };
        self.writer.commit(owned).await
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        if let Some(conversation) = self.recent.get(id) {
            return Ok(Some(conversation));
        }
        let row = sqlx::query("SELECT * FROM conversations WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError> {
        let row = sqlx::query("SELECT turn FROM events WHERE conversation_id = ? AND client_message_id = ?")
            .bind(conversation_id)
            .bind(client_message_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let turn: Option<String> = row.try_get("turn")?;
                turn.map(|t| from_json(&t)).transpose()
            }
        }
    }

    async fn events(&self, conversation_id: &str, after_seq: u64) -> Result<Vec<Event>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, created_at, body FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq")
                .bind(conversation_id)
                .bind(after_seq as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    conversation_id: conversation_id.to_owned(),
                    seq: row.try_get::<i64, _>("seq")? as u64,
                    created_at: row.try_get("created_at")?,
                    body: from_json(&row.try_get::<String, _>("body")?)?,
                })
            })
            .collect()
    }

    async fn conversations_of_customer(&self, customer_id: &str, limit: u32) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query("SELECT * FROM conversations WHERE customer_id = ? ORDER BY created_at DESC LIMIT ?")
            .bind(customer_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    async fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError> {
        let rows = sqlx::query("SELECT record FROM handoffs WHERE id = ?").bind(id).fetch_all(&self.pool).await?;
        Ok(handoffs_from_rows(&rows)?.pop())
    }

    async fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM handoffs WHERE conversation_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(handoffs_from_rows(&rows)?.pop())
    }

    async fn handoffs(
        &self,
        filter: &HandoffFilter,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Handoff>, StoreError> {
        // The skills travel as one JSON array, so the SQL stays static and the page is cut by LIMIT.
        let skills = match filter.skills.is_empty() {
            true => None,
            false => Some(to_json(&filter.skills)?),
        };
        let rows = sqlx::query(
            "SELECT record FROM handoffs WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR skill IN (SELECT value FROM json_each(?2))) \
             AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) \
             ORDER BY created_at DESC, id DESC LIMIT ?5",
        )
        .bind(filter.state.map(HandoffState::as_str))
        .bind(skills)
        .bind(after.map(|a| a.at))
        .bind(after.map(|a| a.id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        handoffs_from_rows(&rows)
    }

    async fn queued_ahead(&self, skill: &str, priority: i32, created_at: i64) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS ahead FROM handoffs WHERE state = 'queued' AND skill = ? \
             AND (priority > ? OR (priority = ? AND created_at < ?))",
        )
        .bind(skill)
        .bind(priority)
        .bind(priority)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("ahead")? as u64)
    }

    async fn recent_waits(&self, skill: &str, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT claimed_at - created_at AS wait FROM handoffs WHERE skill = ? AND claimed_at IS NOT NULL \
             ORDER BY claimed_at DESC LIMIT ?",
        )
        .bind(skill)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get::<i64, _>("wait")?)).collect()
    }

    async fn faqs(&self) -> Result<Vec<StoredFaq>, StoreError> {
        let rows = sqlx::query("SELECT * FROM faqs ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(stored_faq_from_row).collect()
    }

    async fn write_knowledge(&self, write: &KnowledgeWrite) -> Result<(), StoreError> {
        // Every statement writes: the transaction takes SQLite's write lock at its first statement (waiting out
        // the conversation writer), so no read-then-write upgrade can fail half-way.
        let mut tx = self.pool.begin().await?;
        for change in &write.changes {
            let entry = &change.after;
            let content = to_json(&entry.faq.translations)?;
            let result =
                match change.expected_revision {
                    None => sqlx::query(
                        "INSERT INTO faqs (id, category, skill, content, revision, retired, updated_at, updated_by) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&entry.faq.id)
                    .bind(&entry.faq.category)
                    .bind(&entry.faq.skill)
                    .bind(&content)
                    .bind(entry.revision)
                    .bind(entry.retired)
                    .bind(entry.updated_at)
                    .bind(&entry.updated_by)
                    .execute(&mut *tx)
                    .await?,
                    Some(expected) => {
                        sqlx::query(
                            "UPDATE faqs SET category = ?, skill = ?, content = ?, revision = ?, retired = ?, \
                         updated_at = ?, updated_by = ? WHERE id = ? AND revision = ?",
                        )
                        .bind(&entry.faq.category)
                        .bind(&entry.faq.skill)
                        .bind(&content)
                        .bind(entry.revision)
                        .bind(entry.retired)
                        .bind(entry.updated_at)
                        .bind(&entry.updated_by)
                        .bind(&entry.faq.id)
                        .bind(expected)
                        .execute(&mut *tx)
                        .await?
                    }
                };
            if result.rows_affected() != 1 {
                return Err(StoreError::Conflict);
            }
            let snapshot = serde_json::json!({
                "category": entry.faq.category,
                "skill": entry.faq.skill,
                "translations": entry.faq.translations,
                "retired": entry.retired,
            });
            sqlx::query(
                "INSERT INTO faq_revisions (faq_id, revision, action, author, at, snapshot) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&entry.faq.id)
            .bind(entry.revision)
            .bind(change.action.as_str())
            .bind(&entry.updated_by)
            .bind(entry.updated_at)
            .bind(snapshot.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for gap in &write.resolve_gaps {
            sqlx::query(
                "UPDATE knowledge_gaps SET resolved_at = ?, resolved_faq = ? WHERE id = ? AND resolved_at IS NULL",
            )
            .bind(write.at)
            .bind(&write.resolved_faq)
            .bind(gap)
            .execute(&mut *tx)
            .await?;
        }
        insert_deliveries(&mut tx, &write.deliveries.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn faq_revisions(
        &self,
        faq_id: Option<&str>,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FaqRevision>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM faq_revisions WHERE (?1 IS NULL OR faq_id = ?1) AND (?2 IS NULL OR version < ?2) \
             ORDER BY version DESC LIMIT ?3",
        )
        .bind(faq_id)
        .bind(before_version)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                #[derive(serde::Deserialize)]
                struct Snapshot {
                    category: String,
                    skill: String,
                    translations: Content,
                    retired: bool,
                }
                let snapshot: Snapshot = from_json(&row.try_get::<String, _>("snapshot")?)?;
                Ok(FaqRevision {
                    version: row.try_get("version")?,
                    action: row.try_get("action")?,
                    entry: StoredFaq {
                        faq: Faq {
                            id: row.try_get("faq_id")?,
                            category: snapshot.category,
                            skill: snapshot.skill,
                            translations: snapshot.translations,
                        },
                        revision: row.try_get("revision")?,
                        retired: snapshot.retired,
                        updated_at: row.try_get("at")?,
                        updated_by: row.try_get("author")?,
                    },
                })
            })
            .collect()
    }

    async fn knowledge_version(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM faq_revisions").fetch_one(&self.pool).await?;
        Ok(row.try_get("version")?)
    }

    async fn open_gaps(&self, limit: u32) -> Result<Vec<Gap>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM knowledge_gaps WHERE resolved_at IS NULL ORDER BY created_at, id LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(Gap {
                    id: row.try_get("id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    language: row.try_get("language")?,
                    text: row.try_get("text")?,
                    reason: row.try_get("reason")?,
                    best_faq: row.try_get("best_faq")?,
                    created_at: row.try_get("created_at")?,
                    resolved_at: row.try_get("resolved_at")?,
                    resolved_faq: row.try_get("resolved_faq")?,
                })
            })
            .collect()
    }

    async fn stats_records(&self, start: i64, end: i64) -> Result<StatsRecords, StoreError> {
        // Three range scans rather than one join: each row kind keeps its own shape, and conversations last
        // minutes, so the range's hand-offs and turns are few compared with the whole database.
        let rows =
            sqlx::query("SELECT * FROM conversations WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id")
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
        let conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT h.record FROM handoffs h JOIN conversations c ON c.id = h.conversation_id \
             WHERE c.created_at >= ? AND c.created_at < ? ORDER BY h.created_at, h.id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let handoffs = handoffs_from_rows(&rows)?;
        // The turns' facts, not the turns: a turn's JSON is a hundred times larger than what the KPIs read of it.
        let rows = sqlx::query(
            "SELECT f.* FROM turn_facts f JOIN conversations c ON c.id = f.conversation_id \
             WHERE c.created_at >= ? AND c.created_at < ? ORDER BY f.conversation_id, f.seq",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let turns = rows
            .iter()
            .map(|row| {
                TurnFacts::from_columns(
                    row.try_get("conversation_id")?,
                    row.try_get("created_at")?,
                    row.try_get("kind")?,
                    row.try_get("intent")?,
                    row.try_get("handoff_reason")?,
                    row.try_get("answered_faqs")?,
                    row.try_get("unanswered_text")?,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(StatsRecords { conversations, handoffs, turns })
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKey {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    display_name: row.try_get("display_name")?,
                    role: Role::parse(&row.try_get::<String, _>("role")?).ok_or_else(|| corrupt("role"))?,
                    skills: from_json(&row.try_get::<String, _>("skills")?)?,
                    secret_hash: row.try_get("secret_hash")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    async fn insert_api_key(&self, key: &ApiKey, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, skills, secret_hash, created_at, revoked_at, display_name) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(to_json(&key.skills)?)
        .bind(&key.secret_hash)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(&key.display_name)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token_secret(&self, fresh: &str, now: i64) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, secret, created_at) VALUES ('conversation_tokens', ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(fresh)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let secret = sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = 'conversation_tokens'")
            .fetch_one(&self.pool)
            .await?;
        Ok(secret)
    }

    async fn revoke_api_key(&self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(audit.at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if revoked {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn erase_customer(&self, customer_id: &str, actor: &str, at: i64) -> Result<Erased, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writes first (see write_knowledge): each DELETE reports how much it removed.
        let gaps = sqlx::query(
            "DELETE FROM knowledge_gaps WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let messages = sqlx::query(
            "DELETE FROM events WHERE kind = 'message' \
                 AND conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM events WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
        let ratings = sqlx::query("DELETE FROM handoffs WHERE customer_id = ? AND rating IS NOT NULL")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let handoffs = ratings
            + sqlx::query("DELETE FROM handoffs WHERE customer_id = ?")
                .bind(customer_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let conversations = sqlx::query("DELETE FROM conversations WHERE customer_id = ?")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let erased = Erased { conversations, messages, handoffs, ratings, gaps };
        let detail = serde_json::to_value(erased).map_err(corrupt)?;
        insert_audit(&mut tx, &AuditEntry { at, actor: actor.to_owned(), action: "erase_customer".into(), detail })
            .await?;
        tx.commit().await?;
        self.recent.forget(|conversation| conversation.customer_id == customer_id);
        Ok(erased)
    }

    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        insert_audit(&mut *self.pool.acquire().await?, audit).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    detail: serde_json::from_str(&row.try_get::<String, _>("detail")?).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn redact_before(&self, before: i64, redact: for<'t> fn(&'t str) -> String) -> Result<u64, StoreError> {
        let mut rewritten = 0;
        let mut tx = self.pool.begin().await?;
        // A write first, so the transaction holds the write lock before it reads (see write_knowledge).
        sqlx::query("UPDATE events SET turn = NULL WHERE redacted = 0 AND created_at < ? AND turn IS NOT NULL")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let events = sqlx::query(
            "SELECT conversation_id, seq, body FROM events WHERE redacted = 0 AND created_at < ? AND kind = 'message'",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for row in &events {
            let mut body: EventBody = from_json(&row.try_get::<String, _>("body")?)?;
            body.redact_text(redact);
            sqlx::query("UPDATE events SET body = ?, redacted = 1 WHERE conversation_id = ? AND seq = ?")
                .bind(to_json(&body)?)
                .bind(row.try_get::<String, _>("conversation_id")?)
                .bind(row.try_get::<i64, _>("seq")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        sqlx::query("UPDATE events SET redacted = 1 WHERE redacted = 0 AND created_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let handoffs = sqlx::query("SELECT id, record FROM handoffs WHERE redacted = 0 AND created_at < ?")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        for row in &handoffs {
            let mut handoff: Handoff = from_json(&row.try_get::<String, _>("record")?)?;
            handoff.redact_text(redact);
            sqlx::query("UPDATE handoffs SET record = ?, redacted = 1 WHERE id = ?")
                .bind(to_json(&handoff)?)
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        let conversations = sqlx::query("SELECT id, memory FROM conversations WHERE redacted = 0 AND updated_at < ?")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        for row in &conversations {
            let mut memory: crate::conversation::DialogueMemory = from_json(&row.try_get::<String, _>("memory")?)?;
            memory.redact_text(redact);
            sqlx::query("UPDATE conversations SET memory = ?, redacted = 1 WHERE id = ?")
                .bind(to_json(&memory)?)
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        // A failed delivery older than the transcripts is of no use to anyone, and may name a customer.
        sqlx::query("DELETE FROM webhook_deliveries WHERE state = 'failed' AND created_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Their memory was rewritten; which ones is not worth tracking for a daily sweep.
        self.recent.forget(|_| true);
        Ok(rewritten)
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        webhook: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let claim = Claim { owner: owner.to_owned(), webhook: webhook.to_owned(), now, lease_until, limit };
        self.writer.claim(claim).await
    }

    async fn record_attempts(&self, outcomes: &[AttemptOutcome], now: i64) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.writer.record(outcomes.to_vec(), now).await
    }

    async fn failed_deliveries(
        &self,
        webhook: Option<&str>,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE state = 'failed' AND (?1 IS NULL OR webhook = ?1) \
             AND (?2 IS NULL OR updated_at < ?2 OR (updated_at = ?2 AND id < ?3)) \
             ORDER BY updated_at DESC, id DESC LIMIT ?4",
        )
        .bind(webhook)
        .bind(after.map(|a| a.at))
        .bind(after.map(|a| a.id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn redeliver(&self, which: Redeliver<'_>, now: i64, audit: &AuditEntry) -> Result<u64, StoreError> {
        let (id, webhook) = match which {
            Redeliver::One(id) => (Some(id), None),
            Redeliver::Webhook(webhook) => (None, Some(webhook)),
        };
        let mut tx = self.pool.begin().await?;
        let count = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', attempts_before = attempts, next_attempt_at = 0, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?1 \
             WHERE state = 'failed' AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR webhook = ?3)",
        )
        .bind(now)
        .bind(id)
        .bind(webhook)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if count > 0 {
            let mut audit = audit.clone();
            audit.detail["redelivered"] = count.into();
            insert_audit(&mut tx, &audit).await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    async fn fail_unconfigured_deliveries(&self, configured: &[String], now: i64) -> Result<u64, StoreError> {
        let failed = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook is no longer configured', \
             updated_at = ?1, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'pending' AND webhook NOT IN (SELECT value FROM json_each(?2))",
        )
        .bind(now)
        .bind(to_json(&configured)?)
        .execute(&self.pool)
        .await?;
        Ok(failed.rows_affected())
    }

    async fn release_delivery_leases(&self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_until IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        let rows = sqlx::query("SELECT webhook, state, COUNT(*) AS n FROM webhook_deliveries GROUP BY webhook, state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxDepth {
                    webhook: row.try_get("webhook")?,
                    state: row.try_get("state")?,
                    count: row.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }
}
