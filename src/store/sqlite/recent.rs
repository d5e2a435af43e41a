//! The conversations this process committed last, kept so that the read every turn starts with needs no round
//! trip to the database. Only the embedded SQLite store keeps them: no other process writes its conversations.
//! Replicas on PostgreSQL write each other's conversations, so they always read.
//!
//! The writer task remembers a conversation after its commit is durable and before the caller hears of it, so a
//! caller holding the conversation's lock always finds the latest state. Writes outside the writer task (erasing
//! a customer, retention) forget what they touched and bump a generation; a batch whose transaction began before
//! such a write drops its conversations instead of remembering them, since it cannot know which of the two
//! writes came last. Forgetting is always safe: the next read goes to the database.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::conversation::Conversation;

/// Beyond this many conversations the memory starts over (a miss only costs a read).
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(super) struct Recent {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    conversations: HashMap<String, Conversation>,
}

impl Recent {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Conversation> {
        self.inner().conversations.get(id).cloned()
    }

    /// To be read before a batch's transaction begins and handed to [`Recent::remember`] after it committed.
    pub fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// Keeps the committed state of these conversations, unless another write came in between (see the module).
    pub fn remember<'a>(&self, since: u64, committed: impl IntoIterator<Item = &'a Conversation>) {
        let mut inner = self.inner();
        let unchanged = inner.generation == since;
        for conversation in committed {
            if !unchanged {
                inner.conversations.remove(&conversation.id);
                continue;
            }
            if inner.conversations.len() >= CAPACITY && !inner.conversations.contains_key(&conversation.id) {
                inner.conversations.clear();
            }
            inner.conversations.insert(conversation.id.clone(), conversation.clone());
        }
    }

    /// After a write outside the writer task: forgets the conversations it may have changed.
    pub fn forget(&self, touched: impl Fn(&Conversation) -> bool) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.conversations.retain(|_, conversation| !touched(conversation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Channel, DialogueMemory, State, Tier};

    fn conversation(id: &str, customer: &str, last_seq: u64) -> Conversation {
        Conversation {
            id: id.into(),
            customer_id: customer.into(),
            tier: Tier::Standard,
            channel: Channel::Chat,
            language: "nl".into(),
            language_fixed: false,
            metadata: Default::default(),
            state: State::Bot,
            created_at: 0,
            updated_at: 0,
            last_seq,
            memory: DialogueMemory::default(),
            owner: None,
        }
    }

    #[test]
    fn a_batch_that_began_before_an_outside_write_is_forgotten_not_remembered() {
        let recent = Recent::default();
        let since = recent.generation();
        recent.remember(since, [&conversation("c1", "alice", 1)]);
        assert_eq!(recent.get("c1").map(|c| c.last_seq), Some(1));

        // A batch begins, then the customer is erased, then the batch commits: c1 must be read again.
        let since = recent.generation();
        recent.forget(|c| c.customer_id == "bob");
        recent.remember(since, [&conversation("c1", "alice", 2)]);
        assert!(recent.get("c1").is_none());

        let since = recent.generation();
        recent.remember(since, [&conversation("c1", "alice", 3), &conversation("c2", "bob", 1)]);
        recent.forget(|c| c.customer_id == "bob");
        assert_eq!(recent.get("c1").map(|c| c.last_seq), Some(3));
        assert!(recent.get("c2").is_none());
    }
}
