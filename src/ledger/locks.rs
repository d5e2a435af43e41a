//! One lock per conversation being handled, so its operations (a customer's message, an agent's reply, a
//! rating) are decided and numbered one at a time; the store's lock does the same across replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::store::ConversationLock;

/// A conversation held for one operation: this process's lock, then the database's (other replicas').
pub struct Held {
    // Fields drop in order: the database's lock is let go before the in-process one.
    _shared: ConversationLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Held {
    pub(super) fn new(shared: ConversationLock, local: tokio::sync::OwnedMutexGuard<()>) -> Held {
        Held { _shared: shared, _local: local }
    }
}

/// The in-process locks of the conversations someone holds.
#[derive(Default)]
pub(super) struct Locks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Locks {
    pub(super) fn lock(&self, conversation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = locks.get(conversation_id).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget locks nobody holds any more, so the map stays as small as the set of busy conversations.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(conversation_id.to_owned(), Arc::downgrade(&lock));
        lock
    }
}
