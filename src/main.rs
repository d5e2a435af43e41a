//! Wires the command line to the library; nothing else lives here.

use clap::Parser;
use loket::config::LogFormat;
use tracing_subscriber::EnvFilter;

// candle allocates and frees multi-MB tensors on every training step; glibc malloc returns them to the kernel each
// time and page faults dominated training (30 s -> 9 s with mimalloc, measured on CLINC150).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // candle's CPU pool spin-waits on barriers: with this model's small tensors one thread beat several by 5-10x
    // in training on 2 loaded cores (20 s -> 3.4 s on a small set). `cargo run` and `cargo test` get the same
    // from .cargo/config.toml; the binary must not depend on being started by cargo. An operator's own setting wins.
    #[allow(clippy::disallowed_methods)]
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet (logging, the runtime and candle's pool all start below), so
        // nothing can read the environment while it is written.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("CANDLE_NUM_THREADS", "1")
        };
    }
    let cli = loket::cli::Cli::parse();
    // Logs go to stderr, so what a command prints on stdout (a key, a table, an export) stays clean.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format() {
        LogFormat::Text => logs.init(),
        // Each line an object with the event's fields and its spans (the RPC's request id among them).
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(loket::cli::run(cli));
    // Dropping a runtime waits for its blocking threads; a retrain stopped at shutdown may still be preparing its
    // data for a moment. Everything acknowledged is committed by now and a model is installed by rename, so the
    // process need not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes, without a backtrace: these are user-facing errors (a bad file, a busy port).
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
