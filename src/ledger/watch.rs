//! A conversation's events as a stream: the stored ones after a sequence number, then live ones as they are
//! committed, in order and without gaps, across replicas.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

use super::{Ledger, shutting_down};
use crate::conversation::Event;
use crate::error::Result;

impl Ledger {
    /// Every event after `after_seq`: the stored ones, then live ones as they are committed. Ends after the
    /// event that ends the conversation.
    pub async fn watch(
        self: &Arc<Self>,
        conversation_id: &str,
        after_seq: u64,
    ) -> Result<impl Stream<Item = Result<Event>> + Send + 'static> {
        self.limits.check_id("conversation_id", conversation_id)?;
        // Subscribe before reading history, so nothing committed in between is missed.
        let mut live = BroadcastStream::new(self.hub.subscribe(conversation_id));
        self.conversation(conversation_id).await?;
        let history = self.store.events(conversation_id, after_seq).await?;
        let ledger = Arc::clone(self);
        let conversation_id = conversation_id.to_owned();
        let mut closed = Box::pin(self.closed());
        Ok(async_stream::try_stream! {
            let mut last_seq = after_seq;
            let mut pending: VecDeque<Event> = history.into();
            loop {
                while let Some(event) = pending.pop_front() {
                    if event.seq <= last_seq {
                        continue;
                    }
                    if event.seq > last_seq + 1 && !pending.iter().any(|e| e.seq == last_seq + 1) {
                        // Events committed through another replica arrive by notification, possibly after later
                        // ones from here: the store has them all, in order.
                        let missed = ledger.store.events(&conversation_id, last_seq).await?;
                        if missed.first().is_some_and(|e| e.seq == last_seq + 1) {
                            pending.push_front(event);
                            for missed in missed.into_iter().rev() {
                                pending.push_front(missed);
                            }
                            continue;
                        }
                    }
                    last_seq = event.seq;
                    let ends = event.ends_conversation();
                    yield event;
                    if ends {
                        return;
                    }
                }
                let next = tokio::select! {
                    next = live.next() => Some(next),
                    () = &mut closed => None,
                };
                let Some(next) = next else {
                    Err(shutting_down())?;
                    return;
                };
                match next {
                    None => return,
                    Some(Ok(event)) => pending.push_back(event),
                    // Fell behind the live buffer: catch up from the store, which has everything.
                    Some(Err(BroadcastStreamRecvError::Lagged(_))) => {
                        pending.extend(ledger.store.events(&conversation_id, last_seq).await?);
                    }
                }
            }
        })
    }
}
