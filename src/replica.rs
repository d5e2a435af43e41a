//! Keeps this replica in step with the others sharing its PostgreSQL database: what they commit reaches this
//! replica's conversation watchers, agents' queues, search index and model. Notifications name ids only; the
//! rows are re-read here, and after a lost notification connection everything watched is re-read.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use crate::conversation::HandoffState;
use crate::dialogue::Dialogue;
use crate::editor::Editor;
use crate::handoff::QueueEventKind;
use crate::store::{Change, StoreError};

/// Starts following other replicas' changes; `None` when the store is this process's alone.
pub async fn follow(
    dialogue: Arc<Dialogue>,
    editor: Arc<Editor>,
) -> Result<Option<tokio::task::JoinHandle<()>>, StoreError> {
    let Some(changes) = dialogue.store().changes().await? else { return Ok(None) };
    Ok(Some(tokio::spawn(run(dialogue, editor, changes))))
}

async fn run(dialogue: Arc<Dialogue>, editor: Arc<Editor>, mut changes: mpsc::Receiver<Change>) {
    while let Some(change) = changes.recv().await {
        if let Err(error) = apply(&dialogue, &editor, change).await {
            // Watchers catch up from the store on their next event; the index on the next knowledge change.
            warn!(%error, "taking in another replica's change failed");
        }
    }
}

async fn apply(dialogue: &Dialogue, editor: &Editor, change: Change) -> crate::error::Result<()> {
    let store = dialogue.store();
    match change {
        Change::Events { conversation_id, first_seq, last_seq } => {
            if dialogue.hub().watched().contains(&conversation_id) {
                let mut events = store.events(&conversation_id, first_seq.saturating_sub(1)).await?;
                events.retain(|e| e.seq <= last_seq);
                dialogue.publish(&events);
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
            dialogue.queue().publish_remote(store, kind, &handoff_id, from_skill).await?;
        }
        Change::Knowledge { .. } => editor.reload().await?,
        Change::Resync => {
            // The newest event of each watched conversation: a watcher that missed earlier ones sees the gap and
            // reads them from the store.
            for conversation_id in dialogue.hub().watched() {
                if let Some(conversation) = store.conversation(&conversation_id).await? {
                    let events = store.events(&conversation_id, conversation.last_seq.saturating_sub(1)).await?;
                    dialogue.publish(&events);
                }
            }
            dialogue.queue().resync();
            editor.reload().await?;
        }
    }
    Ok(())
}
