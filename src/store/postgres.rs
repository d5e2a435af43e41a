//! The shared store: PostgreSQL, for several replicas on one database. Each commit is one pooled transaction that
//! also notifies the other replicas (ids only, delivered on commit); per-conversation ordering across replicas is
//! a session advisory lock, which PostgreSQL releases itself when the holder's connection dies.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    AttemptOutcome, AttemptResult, AuditEntry, Change, Commit, ConversationLock, Delivery, Erased, FaqRevision,
    HandoffFilter, KnowledgeWrite, NewDelivery, OutboxDepth, Redeliver, StatsRecords, Store, StoreError, StoredFaq,
    TurnFacts,
};
use crate::access::{ApiKey, Role};
use crate::conversation::{Channel, Conversation, Event, EventBody, Handoff, HandoffState, State, Tier, Turn};
use crate::knowledge::gaps::Gap;
use crate::knowledge::{Faq, Translation};
use crate::paging::Position;

/// Notification channels: conversation events, hand-off changes, knowledge edits.
const EVENTS: &str = "loket_events";
const QUEUE: &str = "loket_queue";
const KNOWLEDGE: &str = "loket_knowledge";
/// The advisory lock every knowledge write takes, so revision versions commit in the order they were drawn.
const KNOWLEDGE_LOCK: i64 = 0x6c6f_6b65_746b_6221;
/// Notifications buffered for the replica's follower before the listener waits for it.
const CHANGES_BUFFER: usize = 1024;

pub struct PgStore {
    pool: PgPool,
    /// Connections that wait for and hold per-conversation locks. Apart from `pool`, so lock holders never
    /// starve the queries they are about to run.
    locks: PgPool,
    /// Names this process in its notifications, so it does not take in its own changes a second time.
    origin: String,
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

impl PgStore {
    /// Connects to `url` and brings the schema up to date (sqlx's migrator serialises concurrent starts with an
    /// advisory lock of its own). At start the database gets `STARTUP_WAIT` to come up; once running, a request
    /// waits at most `acquire_timeout` for a connection, so callers hear UNAVAILABLE fast while it is down.
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::Database)?.application_name("loket");
        let pool_options = || PgPoolOptions::new().max_connections(max_connections).acquire_timeout(acquire_timeout);
        let pool = pool_options().connect_lazy_with(options.clone());
        let locks = pool_options().connect_lazy_with(options);
        let started = std::time::Instant::now();
        while let Err(error) = sqlx::query("SELECT 1").execute(&pool).await {
            let error = StoreError::from(error);
            // A wrong password or database name will not mend by waiting.
            if started.elapsed() > STARTUP_WAIT || !matches!(error, StoreError::Unavailable(_)) {
                return Err(error);
            }
            warn!(%error, "waiting for PostgreSQL to accept connections");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool, locks, origin: uuid::Uuid::new_v4().simple().to_string() })
    }
}

/// How long a starting replica waits for the database (a cluster starting together starts in any order).
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// A session advisory lock on a pooled connection. Released on drop in the background, so dropping never blocks;
/// a connection that cannot say so is closed, which releases the lock just the same.
struct AdvisoryLock {
    connection: Option<PoolConnection<Postgres>>,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            connection.close_on_drop();
            return;
        };
        // Also right when the lock was still being waited for (a cancelled request): the unlock queues behind it.
        runtime.spawn(async move {
            if sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *connection).await.is_err() {
                connection.close_on_drop();
            }
        });
    }
}

fn conversation_from_row(row: &PgRow) -> Result<Conversation, StoreError> {
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

async fn insert_events(tx: &mut PgConnection, events: &[Event], turn: Option<&Turn>) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
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
    let mut insert = sqlx::QueryBuilder::<Postgres>::new(
        "INSERT INTO events (conversation_id, seq, created_at, kind, client_message_id, body, turn) ",
    );
    insert.push_values(rows, |mut row, (event, kind, client_message_id, body, turn_json)| {
        row.push_bind(event.conversation_id.clone())
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
        && e.constraint() == Some("events_by_client_message")
    {
        return Err(StoreError::DuplicateClientMessage);
    }
    result?;
    Ok(())
}

async fn save_conversation(tx: &mut PgConnection, c: &Conversation) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversations (id, customer_id, tier, channel, language, language_fixed, metadata, state, \
         created_at, updated_at, last_seq, memory, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (id) DO UPDATE SET language = excluded.language, state = excluded.state, \
         updated_at = excluded.updated_at, last_seq = excluded.last_seq, memory = excluded.memory",
    )
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(c.tier.as_str())
    .bind(c.channel.as_str())
    .bind(&c.language)
    .bind(c.language_fixed)
    .bind(to_json(&c.metadata)?)
    .bind(c.state.as_str())
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.last_seq as i64)
    .bind(to_json(&c.memory)?)
    .bind(&c.owner)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes the hand-off and returns the skill it had before (its own skill when new).
async fn save_handoff(
    tx: &mut PgConnection,
    handoff: &Handoff,
    expected: Option<HandoffState>,
) -> Result<String, StoreError> {
    let record = to_json(handoff)?;
    let rating = handoff.rating.as_ref().map(|r| i64::from(r.score));
    let Some(expected) = expected else {
        sqlx::query(
            "INSERT INTO handoffs (id, conversation_id, customer_id, state, skill, priority, reason, created_at, \
             claimed_at, resolved_at, rating, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .await?;
        return Ok(handoff.skill.clone());
    };
    // A conditional update: of racing claims on any replica, the first to commit wins and the others find the
    // state changed once its row lock is released, so they update nothing.
    let row = sqlx::query(
        "WITH before AS (SELECT id, skill FROM handoffs WHERE id = $8 AND state = $9 FOR UPDATE) \
         UPDATE handoffs h SET state = $1, skill = $2, priority = $3, claimed_at = $4, resolved_at = $5, \
         rating = $6, record = $7 FROM before WHERE h.id = before.id AND h.state = $9 RETURNING before.skill",
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
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some(row) => Ok(row.try_get("skill")?),
        None => Err(StoreError::Conflict),
    }
}

async fn insert_audit(tx: &mut PgConnection, audit: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4)")
        .bind(audit.at)
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(audit.detail.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn insert_gap(tx: &mut PgConnection, gap: &Gap) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO knowledge_gaps (id, conversation_id, language, text, reason, best_faq, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

/// Stores outbound webhook deliveries in the order given (their `seq` is the delivery order), in one statement,
/// due at once.
async fn insert_deliveries(tx: &mut PgConnection, deliveries: &[NewDelivery]) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<Postgres>::new(
        "INSERT INTO webhook_deliveries (id, event_id, event, webhook, ordering_key, conversation_id, payload, \
         created_at, state, next_attempt_at, updated_at) ",
    );
    insert.push_values(deliveries, |mut row, d| {
        row.push_bind(d.id.clone())
            .push_bind(d.event_id.clone())
            .push_bind(d.event)
            .push_bind(d.webhook.clone())
            .push_bind(d.ordering_key.clone())
            .push_bind(d.conversation_id.clone())
            .push_bind(d.payload.to_string())
            .push_bind(d.created_at)
            .push_bind("pending")
            .push_bind(0_i64)
            .push_bind(d.created_at);
    });
    insert.build().execute(&mut *tx).await?;
    Ok(())
}

fn delivery_from_row(row: &PgRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event: row.try_get("event")?,
        webhook: row.try_get("webhook")?,
        conversation_id: row.try_get("conversation_id")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        failed: row.try_get::<String, _>("state")? == "failed",
        attempts: row.try_get::<i32, _>("attempts")? as u32,
        attempts_before: row.try_get::<i32, _>("attempts_before")? as u32,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The stored JSON of an entry's content: what varies per language.
type Content = std::collections::BTreeMap<String, Translation>;

fn stored_faq_from_row(row: &PgRow) -> Result<StoredFaq, StoreError> {
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

fn handoffs_from_rows(rows: &[PgRow]) -> Result<Vec<Handoff>, StoreError> {
    rows.iter().map(|row| from_json(&row.try_get::<String, _>("record")?)).collect()
}

fn state_name(state: Option<HandoffState>) -> &'static str {
    state.map_or("none", HandoffState::as_str)
}

/// Reads a notification payload written by [`PgStore::commit`] or [`PgStore::write_knowledge`]: the origin,
/// then ids separated by spaces. `None` for this process's own notifications and anything unreadable.
fn parse_change(origin: &str, channel: &str, payload: &str) -> Option<Change> {
    let mut parts = payload.split(' ');
    if parts.next()? == origin {
        return None;
    }
    let change = match channel {
        EVENTS => Change::Events {
            conversation_id: parts.next()?.to_owned(),
            first_seq: parts.next()?.parse().ok()?,
            last_seq: parts.next()?.parse().ok()?,
        },
        QUEUE => {
            let handoff_id = parts.next()?.to_owned();
            let from = match parts.next()? {
                "none" => None,
                name => Some(HandoffState::parse(name)?),
            };
            let to = HandoffState::parse(parts.next()?)?;
            Change::Handoff { handoff_id, from, to, from_skill: parts.collect::<Vec<_>>().join(" ") }
        }
        KNOWLEDGE => Change::Knowledge { version: parts.next()?.parse().ok()? },
        _ => return None,
    };
    Some(change)
}

/// Forwards notifications until the receiver is dropped. After any loss of the connection, it listens again on
/// a fresh one first and then sends [`Change::Resync`], so whatever was missed meanwhile is re-read.
async fn listen(pool: PgPool, origin: String, sender: mpsc::Sender<Change>, mut listener: PgListener) {
    loop {
        let change = match listener.try_recv().await {
            Ok(Some(notification)) => parse_change(&origin, notification.channel(), notification.payload()),
            // The listener has reconnected and listens again: what was sent meanwhile is lost.
            Ok(None) => Some(Change::Resync),
            Err(error) => {
                warn!(%error, "change notifications lost: reconnecting");
                loop {
                    // Not a timeout on anything of ours: only how often to knock while the database is away.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if sender.is_closed() {
                        return;
                    }
                    match subscribe(&pool).await {
                        Ok(fresh) => {
                            listener = fresh;
                            break;
                        }
                        Err(error) => warn!(%error, "still no change notifications"),
                    }
                }
                info!("change notifications back");
                Some(Change::Resync)
            }
        };
        if let Some(change) = change
            && sender.send(change).await.is_err()
        {
            return;
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([EVENTS, QUEUE, KNOWLEDGE]).await?;
    Ok(listener)
}

#[async_trait]
impl Store for PgStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        save_conversation(&mut tx, commit.conversation).await?;
        insert_events(&mut tx, commit.events, commit.turn).await?;
        let mut handoff_change = None;
        if let Some((handoff, expected)) = commit.handoff {
            let from_skill = save_handoff(&mut tx, handoff, expected).await?;
            handoff_change = Some(format!(
                "{} {} {} {} {from_skill}",
                self.origin,
                handoff.id,
                state_name(expected),
                handoff.state.as_str()
            ));
        }
        if let Some(gap) = commit.gap {
            insert_gap(&mut tx, gap).await?;
        }
        insert_deliveries(&mut tx, commit.deliveries).await?;
        // Ids only: the other replicas re-read the rows. Delivered when (and only if) the transaction commits.
        let events = match (commit.events.first(), commit.events.last()) {
            (Some(first), Some(last)) => {
                Some(format!("{} {} {} {}", self.origin, commit.conversation.id, first.seq, last.seq))
            }
            _ => None,
        };
        if events.is_some() || handoff_change.is_some() {
            sqlx::query(
                "SELECT pg_notify($1, $2) WHERE $2 IS NOT NULL UNION ALL SELECT pg_notify($3, $4) WHERE $4 IS NOT NULL",
            )
            .bind(EVENTS)
            .bind(events)
            .bind(QUEUE)
            .bind(handoff_change)
            .execute(&mut *tx)
            .await?;
        }
        super::finish(tx).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn lock_conversation(&self, conversation_id: &str) -> Result<ConversationLock, StoreError> {
        let mut lock = AdvisoryLock { connection: Some(self.locks.acquire().await?) };
        let connection = lock.connection.as_mut().expect("just acquired");
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(conversation_id)
            .execute(&mut **connection)
            .await?;
        Ok(ConversationLock::holding(lock))
    }

    async fn changes(&self) -> Result<Option<mpsc::Receiver<Change>>, StoreError> {
        let listener = subscribe(&self.pool).await?;
        let (sender, receiver) = mpsc::channel(CHANGES_BUFFER);
        tokio::spawn(listen(self.pool.clone(), self.origin.clone(), sender, listener));
        Ok(Some(receiver))
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError> {
        let row = sqlx::query("SELECT turn FROM events WHERE conversation_id = $1 AND client_message_id = $2")
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
        let rows = sqlx::query(
            "SELECT seq, created_at, body FROM events WHERE conversation_id = $1 AND seq > $2 ORDER BY seq",
        )
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
        let rows = sqlx::query("SELECT * FROM conversations WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2")
            .bind(customer_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    async fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError> {
        let rows = sqlx::query("SELECT record FROM handoffs WHERE id = $1").bind(id).fetch_all(&self.pool).await?;
        Ok(handoffs_from_rows(&rows)?.pop())
    }

    async fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM handoffs WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
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
        let skills = (!filter.skills.is_empty()).then_some(&filter.skills);
        let rows = sqlx::query(
            "SELECT record FROM handoffs WHERE ($1::text IS NULL OR state = $1) \
             AND ($2::text[] IS NULL OR skill = ANY($2)) \
             AND ($3::bigint IS NULL OR (created_at, id) < ($3, $4::text)) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
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
            "SELECT COUNT(*) AS ahead FROM handoffs WHERE state = 'queued' AND skill = $1 \
             AND (priority > $2 OR (priority = $2 AND created_at < $3))",
        )
        .bind(skill)
        .bind(priority)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("ahead")? as u64)
    }

    async fn recent_waits(&self, skill: &str, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT claimed_at - created_at AS wait FROM handoffs WHERE skill = $1 AND claimed_at IS NOT NULL \
             ORDER BY claimed_at DESC LIMIT $2",
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
        let mut tx = self.pool.begin().await?;
        // One knowledge writer at a time across replicas: versions become visible in order, so a model stamped
        // with version v learned every change up to v.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(KNOWLEDGE_LOCK).execute(&mut *tx).await?;
        for change in &write.changes {
            let entry = &change.after;
            let content = to_json(&entry.faq.translations)?;
            let result =
                match change.expected_revision {
                    None => sqlx::query(
                        "INSERT INTO faqs (id, category, skill, content, revision, retired, updated_at, updated_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
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
                            "UPDATE faqs SET category = $1, skill = $2, content = $3, revision = $4, retired = $5, \
                         updated_at = $6, updated_by = $7 WHERE id = $8 AND revision = $9",
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
                "INSERT INTO faq_revisions (faq_id, revision, action, author, at, snapshot) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
                "UPDATE knowledge_gaps SET resolved_at = $1, resolved_faq = $2 WHERE id = $3 AND resolved_at IS NULL",
            )
            .bind(write.at)
            .bind(&write.resolved_faq)
            .bind(gap)
            .execute(&mut *tx)
            .await?;
        }
        insert_deliveries(&mut tx, &write.deliveries).await?;
        sqlx::query("SELECT pg_notify($1, $2 || ' ' || (SELECT COALESCE(MAX(version), 0) FROM faq_revisions)::text)")
            .bind(KNOWLEDGE)
            .bind(&self.origin)
            .execute(&mut *tx)
            .await?;
        super::finish(tx).await?;
        Ok(())
    }

    async fn faq_revisions(
        &self,
        faq_id: Option<&str>,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FaqRevision>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM faq_revisions WHERE ($1::text IS NULL OR faq_id = $1) \
             AND ($2::bigint IS NULL OR version < $2) ORDER BY version DESC LIMIT $3",
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
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0)::bigint AS version FROM faq_revisions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    async fn open_gaps(&self, limit: u32) -> Result<Vec<Gap>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM knowledge_gaps WHERE resolved_at IS NULL ORDER BY created_at, id LIMIT $1")
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
        let rows = sqlx::query(
            "SELECT * FROM conversations WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT h.record FROM handoffs h JOIN conversations c ON c.id = h.conversation_id \
             WHERE c.created_at >= $1 AND c.created_at < $2 ORDER BY h.created_at, h.id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let handoffs = handoffs_from_rows(&rows)?;
        // The turns' facts, not the turns: a turn's JSON is a hundred times larger than what the KPIs read of it.
        let rows = sqlx::query(
            "SELECT f.* FROM turn_facts f JOIN conversations c ON c.id = f.conversation_id \
             WHERE c.created_at >= $1 AND c.created_at < $2 ORDER BY f.conversation_id, f.seq",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
        super::finish(tx).await?;
        Ok(())
    }

    async fn token_secret(&self, fresh: &str, now: i64) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, secret, created_at) VALUES ('conversation_tokens', $1, $2) \
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
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(audit.at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if revoked {
            insert_audit(&mut tx, audit).await?;
        }
        super::finish(tx).await?;
        Ok(revoked)
    }

    async fn erase_customer(&self, customer_id: &str, actor: &str, at: i64) -> Result<Erased, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writes first (see write_knowledge): each DELETE reports how much it removed.
        let gaps = sqlx::query(
            "DELETE FROM knowledge_gaps WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = $1)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let messages = sqlx::query(
            "DELETE FROM events WHERE kind = 'message' \
                 AND conversation_id IN (SELECT id FROM conversations WHERE customer_id = $1)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM events WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = $1)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?;
        let ratings = sqlx::query("DELETE FROM handoffs WHERE customer_id = $1 AND rating IS NOT NULL")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let handoffs = ratings
            + sqlx::query("DELETE FROM handoffs WHERE customer_id = $1")
                .bind(customer_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let conversations = sqlx::query("DELETE FROM conversations WHERE customer_id = $1")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let erased = Erased { conversations, messages, handoffs, ratings, gaps };
        let detail = serde_json::to_value(erased).map_err(corrupt)?;
        insert_audit(&mut tx, &AuditEntry { at, actor: actor.to_owned(), action: "erase_customer".into(), detail })
            .await?;
        super::finish(tx).await?;
        Ok(erased)
    }

    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        insert_audit(&mut *self.pool.acquire().await?, audit).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1")
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
        sqlx::query("UPDATE events SET turn = NULL WHERE NOT redacted AND created_at < $1 AND turn IS NOT NULL")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let events = sqlx::query(
            "SELECT conversation_id, seq, body FROM events WHERE NOT redacted AND created_at < $1 AND kind = 'message'",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for row in &events {
            let mut body: EventBody = from_json(&row.try_get::<String, _>("body")?)?;
            body.redact_text(redact);
            sqlx::query("UPDATE events SET body = $1, redacted = TRUE WHERE conversation_id = $2 AND seq = $3")
                .bind(to_json(&body)?)
                .bind(row.try_get::<String, _>("conversation_id")?)
                .bind(row.try_get::<i64, _>("seq")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        sqlx::query("UPDATE events SET redacted = TRUE WHERE NOT redacted AND created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let handoffs = sqlx::query("SELECT id, record FROM handoffs WHERE NOT redacted AND created_at < $1")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        for row in &handoffs {
            let mut handoff: Handoff = from_json(&row.try_get::<String, _>("record")?)?;
            handoff.redact_text(redact);
            sqlx::query("UPDATE handoffs SET record = $1, redacted = TRUE WHERE id = $2")
                .bind(to_json(&handoff)?)
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        let conversations = sqlx::query("SELECT id, memory FROM conversations WHERE NOT redacted AND updated_at < $1")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        for row in &conversations {
            let mut memory: crate::conversation::DialogueMemory = from_json(&row.try_get::<String, _>("memory")?)?;
            memory.redact_text(redact);
            sqlx::query("UPDATE conversations SET memory = $1, redacted = TRUE WHERE id = $2")
                .bind(to_json(&memory)?)
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        // A failed delivery older than the transcripts is of no use to anyone, and may name a customer.
        sqlx::query("DELETE FROM webhook_deliveries WHERE state = 'failed' AND created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        super::finish(tx).await?;
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
        // SKIP LOCKED: replicas claiming at once take different rows instead of queueing behind each other. A row
        // another replica claimed and committed meanwhile is re-checked against its new lease and left alone.
        let rows = sqlx::query(
            "WITH due AS (SELECT d.seq FROM webhook_deliveries d \
                 WHERE d.state = 'pending' AND d.webhook = $5 AND d.next_attempt_at <= $3 \
                 AND (d.lease_until IS NULL OR d.lease_until <= $3) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.state = 'pending' \
                     AND e.webhook = d.webhook AND e.ordering_key = d.ordering_key AND e.seq < d.seq) \
                 ORDER BY d.seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE webhook_deliveries w SET attempts = w.attempts + 1, lease_owner = $1, lease_until = $2 \
             FROM due WHERE w.seq = due.seq RETURNING w.*",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .bind(webhook)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: Vec<(i64, Delivery)> = rows
            .iter()
            .map(|row| Ok((row.try_get("seq")?, delivery_from_row(row)?)))
            .collect::<Result<_, StoreError>>()?;
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
    }

    async fn record_attempts(&self, outcomes: &[AttemptOutcome], now: i64) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let delivered: Vec<String> =
            outcomes.iter().filter(|o| o.result == AttemptResult::Delivered).map(|o| o.delivery_id.clone()).collect();
        let mut tx = self.pool.begin().await?;
        // Not waiting for the flush: an outcome lost in a database crash only means the delivery is made again
        // (at least once, with a new attempt number, since its claim was flushed).
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        if !delivered.is_empty() {
            sqlx::query("DELETE FROM webhook_deliveries WHERE id = ANY($1)").bind(&delivered).execute(&mut *tx).await?;
        }
        for outcome in outcomes {
            let Some((state, next, error)) = outcome.result.kept_row() else { continue };
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, next_attempt_at = $2, last_error = $3, updated_at = $4, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $5 AND attempts = $6",
            )
            .bind(state)
            .bind(next)
            .bind(error)
            .bind(now)
            .bind(&outcome.delivery_id)
            .bind(outcome.attempt as i32)
            .execute(&mut *tx)
            .await?;
        }
        super::finish(tx).await?;
        Ok(())
    }

    async fn failed_deliveries(
        &self,
        webhook: Option<&str>,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE state = 'failed' AND ($1::text IS NULL OR webhook = $1) \
             AND ($2::bigint IS NULL OR updated_at < $2 OR (updated_at = $2 AND id < $3)) \
             ORDER BY updated_at DESC, id DESC LIMIT $4",
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
             lease_owner = NULL, lease_until = NULL, updated_at = $1 \
             WHERE state = 'failed' AND ($2::text IS NULL OR id = $2) AND ($3::text IS NULL OR webhook = $3)",
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
        super::finish(tx).await?;
        Ok(count)
    }

    async fn fail_unconfigured_deliveries(&self, configured: &[String], now: i64) -> Result<u64, StoreError> {
        let failed = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook is no longer configured', \
             updated_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'pending' AND NOT (webhook = ANY($2))",
        )
        .bind(now)
        .bind(configured)
        .execute(&self.pool)
        .await?;
        Ok(failed.rows_affected())
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        let rows =
            sqlx::query("SELECT webhook, state, COUNT(*)::bigint AS n FROM webhook_deliveries GROUP BY webhook, state")
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
