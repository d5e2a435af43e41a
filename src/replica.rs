//! Keeps this replica in step with the others sharing its PostgreSQL database: what they commit reaches this
//! replica's conversation watchers, agents' queues, search index and model. Notifications name ids only; the
//! rows are re-read here, and after a lost notification connection everything watched is re-read.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use crate::conversation::HandoffState;
use crate::editor::Editor;
use crate::handoff::{QueueEventKind, QueueHub};
use crate::ledger::Ledger;
use crate::store::{Change, Store, StoreError};

/// What following other replicas reads (the store) and tells (conversation watchers through the ledger, agents'
/// queues, the editor's index and model).
pub struct Follower {
    pub store: Arc<dyn Store>,
    pub ledger: Arc<Ledger>,
    pub queue: Arc<QueueHub>,
    pub editor: Arc<Editor>,
}

impl Follower {
    /// Starts following other replicas' changes: the task to run, or `None` when the store is this process's
    /// alone. Subscribes before returning, so nothing committed from here on is missed.
    pub async fn start(self) -> Result<Option<impl std::future::Future<Output = ()> + Send + 'static>, StoreError> {
        let Some(changes) = self.store.changes().await? else { return Ok(None) };
        Ok(Some(self.run(changes)))
    }

    async fn run(self, mut changes: mpsc::Receiver<Change>) {
        while let Some(change) = changes.recv().await {
            if let Err(error) = self.apply(change).await {
                // Watchers catch up from the store on their next event; the index on the next knowledge change.
                warn!(%error, "taking in another replica's change failed");
            }
        }
    }

    async fn apply(&self, change: Change) -> crate::error::Result<()> {
        let (store, ledger, editor) = (&*self.store, &self.ledger, &self.editor);
        match change {
            Change::Events { conversation_id, first_seq, last_seq } => {
                if ledger.hub().watched().contains(&conversation_id) {
                    let mut events = store.events(&conversation_id, first_seq.saturating_sub(1)).await?;
                    events.retain(|e| e.seq <= last_seq);
                    ledger.publish(&events);
                }
            }
            Change::Handoff { handoff_id, from, to, from_skill } => {
                let kind = match (from, to) {
                    (None, _) => QueueEventKind::New,
                    (Some(HandoffState::Queued), HandoffState::Claimed) => QueueEventKind::Claimed,
                    (Some(HandoffState::Claimed), HandoffState::Queued) => QueueEventKind::Transferred,
                    (Some(HandoffState::Claimed), HandoffState::Resolved) => QueueEventKind::Resolved,
                    // A rating: nothing an agent's queue shows.
                    _ => return Ok(()),
                };
                let from_skill = (kind == QueueEventKind::Transferred).then_some(from_skill);
                self.queue.publish_remote(store, kind, &handoff_id, from_skill).await?;
            }
            Change::Knowledge { .. } => editor.reload().await?,
            Change::Resync => {
                // The newest event of each watched conversation: a watcher that missed earlier ones sees the gap and
                // reads them from the store.
                for conversation_id in ledger.hub().watched() {
                    if let Some(conversation) = store.conversation(&conversation_id).await? {
                        let events = store.events(&conversation_id, conversation.last_seq.saturating_sub(1)).await?;
                        ledger.publish(&events);
                    }
                }
                self.queue.resync();
                editor.reload().await?;
            }
        }
        Ok(())
    }
}
