//! `loket stats`: the KPIs of the stored conversations against the configured targets, as a table.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{ChannelArg, Common, TierArg, data_dir_flag};
use crate::clock::{Clock, SystemClock};
use crate::knowledge::KnowledgeBase;
use crate::stats::{KpiQuery, faq_skills, kpis, render};

#[derive(Args)]
pub(super) struct StatsArgs {
    #[command(flatten)]
    common: Common,
    /// Start of the range: a duration before now (`7d`, `24h`, `30m`) or a time (`2026-11-01T00:00:00Z`).
    #[arg(long, default_value = "7d")]
    since: String,
    /// End of the range (default now), in the same forms.
    #[arg(long)]
    until: Option<String>,
    /// Directory of the database (default: the configured one).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only this channel.
    #[arg(long, value_enum)]
    channel: Option<ChannelArg>,
    /// Only this support tier.
    #[arg(long, value_enum)]
    tier: Option<TierArg>,
    /// Only this language.
    #[arg(long)]
    language: Option<String>,
    /// Only this skill.
    #[arg(long)]
    skill: Option<String>,
}

pub(super) async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let (config, _) = args.common.config_with(data_dir_flag(args.data_dir))?;
    let now = SystemClock.now_millis();
    let end = match args.until {
        Some(until) => parse_moment(&until, now)?,
        None => now,
    };
    let query = KpiQuery {
        start: parse_moment(&args.since, end)?,
        end,
        channel: args.channel.map(ChannelArg::channel),
        tier: args.tier.map(TierArg::tier),
        language: args.language,
        skill: args.skill,
    };
    // Skills of FAQ entries, for conversations the bot answered; without the knowledge base only hand-offs carry a
    // skill.
    let skills = match KnowledgeBase::load(&config.knowledge.dir, &config.languages.supported) {
        Ok(base) => faq_skills(&base),
        Err(error) => {
            eprintln!("warning: knowledge base not loaded, answered conversations have no skill: {error}");
            Default::default()
        }
    };
    // Reading statistics never creates a database: a mistyped directory would report zeros.
    let embedded = config.storage.database_url.trim().is_empty();
    let database = crate::store::SqliteStore::file(&config.storage.data_dir);
    if embedded && !database.exists() {
        anyhow::bail!("no loket database at {} (check --data-dir or storage.data_dir)", database.display());
    }
    let store = crate::store::open(&config.storage).await?;
    let kpis = kpis(&*store, &query, &config.kpi, &skills, now).await?;
    let moment = |ms: i64| jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default();
    println!("{} from {} to {}", config.storage.data_dir.display(), moment(query.start), moment(query.end));
    print!("{}", render(&kpis));
    Ok(())
}

/// `7d`, `24h`, `30m`, `90s` before `relative_to`, or an RFC 3339 time; Unix milliseconds.
fn parse_moment(text: &str, relative_to: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    let unit = |suffix: char, millis: i64| -> Option<i64> {
        let number: i64 = text.strip_suffix(suffix)?.parse().ok()?;
        Some(relative_to - number * millis)
    };
    if let Some(ms) = unit('d', 86_400_000).or_else(|| unit('h', 3_600_000)).or_else(|| unit('m', 60_000)) {
        return Ok(ms);
    }
    if let Some(ms) = unit('s', 1000) {
        return Ok(ms);
    }
    let time: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("{text:?}: expected a duration like 7d or a time like 2026-11-01T00:00:00Z"))?;
    Ok(time.as_millisecond())
}
