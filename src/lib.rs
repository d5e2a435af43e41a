//! loket: a support chatbot service. A front-end sends a customer's message over gRPC; loket searches the FAQ
//! knowledge base, decides to answer, clarify or hand off, stores everything, and replies.
//! See ARCHITECTURE.md for the map.

#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod dialogue;
pub mod error;
pub mod handoff;
pub mod knowledge;
pub mod server;
pub mod store;
pub mod text;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::dialogue::Dialogue;
use crate::knowledge::Knowledge;
use crate::store::{SqliteStore, Store};

/// Everything a running loket needs, built from a [`Config`]; tests build one and serve it on their own listener.
pub struct App {
    pub config: Arc<Config>,
    pub dialogue: Arc<Dialogue>,
}

impl App {
    /// Opens the embedded database in the configured data directory and loads the knowledge base.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = SqliteStore::open(&config.storage.data_dir).await?;
        Self::build_with(config, Arc::new(store), Arc::new(SystemClock)).await
    }

    /// Like [`App::build`] with the store and clock given.
    pub async fn build_with(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let dir = config.knowledge.dir.clone();
        let languages = config.languages.supported.clone();
        // Parsing and indexing are CPU work: keep them off the async workers.
        let knowledge = tokio::task::spawn_blocking(move || Knowledge::load(&dir, &languages)).await??;
        info!(
            entries = knowledge.base.faqs.len(),
            examples = knowledge.index.len(),
            languages = ?config.languages.supported,
            "knowledge base loaded"
        );
        let config = Arc::new(config);
        let dialogue = Arc::new(Dialogue::new(store, Arc::new(knowledge), Arc::clone(&config), clock)?);
        Ok(App { config, dialogue })
    }

    /// Serves the gRPC API on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        server::serve(self.dialogue, listener, shutdown).await?;
        Ok(())
    }
}
