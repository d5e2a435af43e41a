//! `loket serve`: the gRPC service (and its web pages and metrics) until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Common, data_dir_flag};
use crate::App;

#[derive(Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// Address to listen on (default 127.0.0.1:50051).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the embedded database (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the Prometheus `/metrics` listener (default 127.0.0.1:9464; port 0 picks one).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Do not expose metrics.
    #[arg(long, conflicts_with = "metrics_listen")]
    no_metrics: bool,
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut flags = data_dir_flag(args.data_dir);
    if let Some(listen) = args.listen {
        flags.push(("server.listen".into(), listen.to_string()));
    }
    if let Some(listen) = args.metrics_listen {
        flags.push(("metrics.listen".into(), listen.to_string()));
        flags.push(("metrics.enabled".into(), "true".into()));
    }
    if args.no_metrics {
        flags.push(("metrics.enabled".into(), "false".into()));
    }
    let (config, sources) = args.common.config_with(flags)?;
    let file = sources.file.as_ref().map_or("built-in defaults".into(), |f| f.display().to_string());
    tracing::info!(%file, env = ?sources.env, command_line = ?sources.command_line, "configuration loaded");
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let metrics = match config.metrics.enabled {
        true => Some(
            tokio::net::TcpListener::bind(config.metrics.listen)
                .await
                .with_context(|| format!("cannot listen for metrics on {}", config.metrics.listen))?,
        ),
        false => None,
    };
    let app = App::build(config).await?;
    app.welcome(listener.local_addr()?).await?;
    app.serve_with_metrics(listener, metrics, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}
