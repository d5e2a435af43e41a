//! Live fan-out of conversation events to watchers. Only committed events are published; a watcher that falls
//! behind re-reads the store, so the hub may drop events without losing any.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::conversation::Event;

/// Events buffered per conversation for slow watchers before they must catch up from the store.
const BUFFER: usize = 256;

#[derive(Default)]
pub struct EventHub {
    channels: Mutex<HashMap<String, broadcast::Sender<Event>>>,
}

impl EventHub {
    pub fn subscribe(&self, conversation_id: &str) -> broadcast::Receiver<Event> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.entry(conversation_id.to_owned()).or_insert_with(|| broadcast::channel(BUFFER).0).subscribe()
    }

    /// The conversations someone here is watching.
    pub fn watched(&self) -> Vec<String> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.iter().filter(|(_, sender)| sender.receiver_count() > 0).map(|(id, _)| id.clone()).collect()
    }

    pub fn publish(&self, events: &[Event]) {
        let Some(first) = events.first() else { return };
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = channels.get(&first.conversation_id) else { return };
        if sender.receiver_count() == 0 {
            channels.remove(&first.conversation_id);
            return;
        }
        for event in events {
            // An error only means every watcher left in the meantime.
            let _ = sender.send(event.clone());
        }
    }
}
