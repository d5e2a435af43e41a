//! `loket config check`: loads the layered configuration without starting and says where each part came from.

use clap::Subcommand;

use super::Common;

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate the layered configuration (file, environment, --set) without starting; names any bad key.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

pub(super) fn run(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { common } = command;
    let (config, sources) = common.config_with(Vec::new())?;
    let file = sources.file.as_ref().map_or("built-in defaults".into(), |f| f.display().to_string());
    println!("configuration ok: {file}");
    if !sources.env.is_empty() {
        println!("  from the environment: {}", sources.env.join(", "));
    }
    if !sources.command_line.is_empty() {
        println!("  from the command line: {}", sources.command_line.join(", "));
    }
    let metrics = if config.metrics.enabled { config.metrics.listen.to_string() } else { "off".into() };
    let kpi = &config.kpi;
    println!("  gRPC        {}", config.server.listen);
    println!("  metrics     {metrics}");
    println!("  data dir    {}", config.storage.data_dir.display());
    println!("  knowledge   {}", config.knowledge.dir.display());
    println!("  model       {}", config.intent.model_dir.display());
    println!("  languages   {} (default {})", config.languages.supported.join(", "), config.languages.default);
    let webhooks: Vec<String> =
        config.webhooks.iter().map(|w| format!("{} ({} events)", w.name, w.events.len())).collect();
    let webhooks = if webhooks.is_empty() { "none".to_owned() } else { webhooks.join(", ") };
    println!("  webhooks    {webhooks}");
    println!(
        "  KPI targets median wait <= {} s, CSAT >= {}%, resolution >= {}%, deflection >= {}%",
        kpi.median_wait_secs,
        kpi.csat_min * 100.0,
        kpi.resolution_min * 100.0,
        kpi.deflection_min * 100.0
    );
    Ok(())
}
