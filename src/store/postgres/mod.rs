//! The shared store: PostgreSQL, for several replicas on one database. Each commit is one pooled transaction that
//! also notifies the other replicas (ids only, delivered on commit); per-conversation ordering across replicas is
//! a session advisory lock, which PostgreSQL releases itself when the holder's connection dies.

mod access;
mod conversations;
mod deliveries;
mod feed;
mod handoffs;
mod knowledge;
mod privacy;
mod stats;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::rows::{
    Columns, Content, conversation_from_row, corrupt, delivery_from_row, from_json, handoffs_from_rows,
    stored_faq_from_row, to_json,
};
use super::{
    AccessStore, ChangeFeed, ConversationStore, DeliveryStore, HandoffStore, KnowledgeStore, PrivacyStore, StatsStore,
};
use super::{
    AttemptOutcome, AttemptResult, AuditEntry, Change, Commit, ConversationLock, Delivery, Erased, FaqRevision,
    HandoffFilter, KnowledgeWrite, NewDelivery, OutboxDepth, Redeliver, StatsRecords, StoreError, StoredFaq,
    turn_facts,
};
use crate::conversation::{Conversation, Event, EventBody, Handoff, HandoffState, Turn};
use crate::identity::{ApiKey, Role};
use crate::knowledge::Faq;
use crate::knowledge::gaps::Gap;
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
    if let Some(mut facts) = turn_facts::insert::<Postgres>(events.iter().map(|event| (event, turn))) {
        facts.build().execute(&mut *tx).await?;
    }
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
             claimed_at, resolved_at, rating, record, pickable_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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

impl Columns for PgRow {
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
        self.try_get::<i32, _>(column).map(|n| n as u32)
    }
}
