//! Group commit for SQLite: one writer task takes every commit that is waiting and writes them in one
//! transaction. Each SQL statement is a round trip to sqlx's SQLite thread and commits are serialised anyway, so
//! the batch shares not only BEGIN/COMMIT but its statements: one upsert for all its conversations and one insert
//! for all its events, whatever the number of turns. That is what lets throughput grow with concurrency.
//! A batch that fails (a duplicate client message id, a hand-off changed meanwhile) is rolled back and its
//! commits are retried one by one, so each caller gets exactly its own outcome.
//! After a commit is durable, and before its caller hears so, its conversation is remembered ([`Recent`]).
//! The webhook deliverer's claims and records go through the same task, between batches: on this connection they
//! neither wait for the write lock nor make the writer wait for theirs, and do not drop its page cache.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::Claim;
use super::recent::Recent;
use super::{insert_deliveries, insert_events, insert_gap, save_conversations, save_handoff};
use crate::conversation::{Conversation, Event, Handoff, HandoffState, Turn};
use crate::knowledge::gaps::Gap;
use crate::store::{AttemptOutcome, Delivery, NewDelivery, StoreError};

/// Most commits written in one transaction.
const MAX_BATCH: usize = 64;

/// A commit as the writer task holds it.
pub(super) struct OwnedCommit {
    pub conversation: Conversation,
    pub events: Vec<Event>,
    pub turn: Option<Turn>,
    pub handoff: Option<(Handoff, Option<HandoffState>)>,
    pub gap: Option<Gap>,
    pub deliveries: Vec<NewDelivery>,
}

struct Pending {
    commit: OwnedCommit,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// What the writer task is asked to do. Not boxed: a commit is what nearly every job is, and it moves through the
/// channel once either way.
#[allow(clippy::large_enum_variant)]
enum Job {
    Commit(Pending),
    Outbox(OutboxJob),
}

/// The webhook deliverer's writes.
enum OutboxJob {
    Claim(Claim, oneshot::Sender<Result<Vec<Delivery>, StoreError>>),
    Record(Vec<AttemptOutcome>, i64, oneshot::Sender<Result<(), StoreError>>),
}

/// The connection the writer writes with.
pub(super) enum WriterConnection {
    /// Its own: no one else writes through it, so SQLite keeps its page cache between transactions (a
    /// connection's cache is dropped whenever another connection has committed).
    Own(SqliteConnection),
    /// The pool's: an in-memory database lives in its single connection.
    Pool(SqlitePool),
}

impl WriterConnection {
    /// The connection to write on now: the writer's own, or the pool's one.
    async fn acquire(&mut self) -> Result<Writing<'_>, StoreError> {
        Ok(match self {
            WriterConnection::Own(connection) => Writing::Own(connection),
            WriterConnection::Pool(pool) => Writing::Pooled(pool.acquire().await?),
        })
    }
}

/// A connection borrowed for one job of the writer task.
enum Writing<'a> {
    Own(&'a mut SqliteConnection),
    Pooled(PoolConnection<Sqlite>),
}

impl std::ops::Deref for Writing<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Writing::Own(connection) => connection,
            Writing::Pooled(connection) => connection,
        }
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Writing::Own(connection) => connection,
            Writing::Pooled(connection) => connection,
        }
    }
}

/// The handle callers submit commits through.
pub(super) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the writer task; it ends when the handle is dropped.
    pub fn start(connection: WriterConnection, recent: Arc<Recent>) -> GroupCommit {
        let (jobs, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(connection, recent, receiver));
        GroupCommit { jobs }
    }

    /// Returns once the commit is durable (or failed, with nothing of it written).
    pub async fn commit(&self, commit: OwnedCommit) -> Result<(), StoreError> {
        let (done, outcome) = oneshot::channel();
        self.submit(Job::Commit(Pending { commit, done }), outcome).await
    }

    /// Claims webhook deliveries on the writer's connection.
    pub async fn claim(&self, claim: Claim) -> Result<Vec<Delivery>, StoreError> {
        let (done, outcome) = oneshot::channel();
        self.submit(Job::Outbox(OutboxJob::Claim(claim, done)), outcome).await
    }

    /// Records webhook attempts' outcomes on the writer's connection.
    pub async fn record(&self, outcomes: Vec<AttemptOutcome>, now: i64) -> Result<(), StoreError> {
        let (done, outcome) = oneshot::channel();
        self.submit(Job::Outbox(OutboxJob::Record(outcomes, now, done)), outcome).await
    }

    async fn submit<T>(&self, job: Job, outcome: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        let stopped = || StoreError::Corrupt("the database writer stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn write_all(
    connection: &mut WriterConnection,
    recent: &Recent,
    commits: &[&OwnedCommit],
) -> Result<(), StoreError> {
    let since = recent.generation();
    let mut writing = connection.acquire().await?;
    let mut tx = writing.begin().await?;
    let conversations: Vec<&Conversation> = commits.iter().map(|c| &c.conversation).collect();
    save_conversations(&mut tx, &conversations).await?;
    let events: Vec<(&Event, Option<&Turn>)> =
        commits.iter().flat_map(|c| c.events.iter().map(|event| (event, c.turn.as_ref()))).collect();
    insert_events(&mut tx, &events).await?;
    for commit in commits {
        if let Some((handoff, expected)) = &commit.handoff {
            save_handoff(&mut tx, handoff, *expected).await?;
        }
        if let Some(gap) = &commit.gap {
            insert_gap(&mut tx, gap).await?;
        }
    }
    // After the conversations they refer to; in commit order, which is the order they are delivered in.
    let deliveries: Vec<&NewDelivery> = commits.iter().flat_map(|c| &c.deliveries).collect();
    insert_deliveries(&mut tx, &deliveries).await?;
    tx.commit().await?;
    recent.remember(since, conversations);
    Ok(())
}

async fn write_loop(mut connection: WriterConnection, recent: Arc<Recent>, mut receiver: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut batch = Vec::with_capacity(jobs.len());
        let mut outbox = Vec::new();
        for job in jobs {
            match job {
                Job::Commit(pending) => batch.push(pending),
                Job::Outbox(job) => outbox.push(job),
            }
        }
        commit_batch(&mut connection, &recent, batch).await;
        // After the turns: a claim then sees the deliveries they just stored.
        for job in outbox {
            run_outbox(&mut connection, job).await;
        }
    }
}

async fn commit_batch(connection: &mut WriterConnection, recent: &Recent, batch: Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    let commits: Vec<&OwnedCommit> = batch.iter().map(|pending| &pending.commit).collect();
    if batch.len() > 1 && write_all(connection, recent, &commits).await.is_ok() {
        for pending in batch {
            let _ = pending.done.send(Ok(()));
        }
        return;
    }
    // Alone, or the batch failed as a whole (and was rolled back): each commit on its own.
    for pending in batch {
        let outcome = write_all(connection, recent, &[&pending.commit]).await;
        let _ = pending.done.send(outcome);
    }
}

async fn run_outbox(connection: &mut WriterConnection, job: OutboxJob) {
    match job {
        OutboxJob::Claim(claim, done) => {
            let claimed = async { super::claim_deliveries(&mut *connection.acquire().await?, &claim).await };
            let _ = done.send(claimed.await);
        }
        OutboxJob::Record(outcomes, now, done) => {
            let recorded = async { super::record_attempts(&mut *connection.acquire().await?, &outcomes, now).await };
            let _ = done.send(recorded.await);
        }
    }
}
