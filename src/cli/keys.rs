//! `loket keys create|revoke|list`: API keys on the configured database, without a running server.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::Common;
use crate::access::{Access, RateLimiter, Role};

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Create an API key and print it (once: only a hash of its secret is stored).
    Create {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Who holds it ("web widget"); for an agent key, the agent's id ("anna"), to which its work is attributed.
        #[arg(long)]
        name: String,
        /// Agents only: the skills whose hand-offs the key may work, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Agents only: the name customers see on the agent's messages ("Anna"; default: none, they see "agent").
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a key by its id (a running server notices within `auth.reload_secs`).
    Revoke {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List the keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum RoleArg {
    Client,
    Agent,
    Editor,
    Admin,
    /// A web widget's publishable key: only starts conversations, from pages of allowed origins.
    Widget,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Client => Role::Client,
            RoleArg::Agent => Role::Agent,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
            RoleArg::Widget => Role::Widget,
        }
    }
}

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { common, role, name, skills, display_name, data_dir } => {
            let access = offline_access(&common, data_dir).await?;
            let skills = skills.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            let key = access.create_key(&name, role.role(), skills, &display_name, "cli").await?;
            eprintln!(
                "created key {} ({}); keep it secret, it is not shown again:",
                key.record.id,
                key.record.role.as_str()
            );
            println!("{}", key.token);
        }
        KeysCommand::Revoke { common, id, data_dir } => {
            offline_access(&common, data_dir).await?.revoke_key(&id, "cli").await?;
            println!("revoked {id}");
        }
        KeysCommand::List { common, data_dir } => {
            for key in offline_access(&common, data_dir).await?.keys().await? {
                let state = if key.revoked_at.is_some() { "revoked" } else { "live" };
                let shown =
                    if key.display_name.is_empty() { String::new() } else { format!(" ({})", key.display_name) };
                let (id, role, name, skills) = (&key.id, key.role.as_str(), &key.name, key.skills.join(","));
                println!("{id}  {role:<7} {state:<7} {name}{shown}  [{skills}]");
            }
        }
    }
    Ok(())
}

/// Access control on the configured database, without serving.
async fn offline_access(common: &Common, data_dir: Option<PathBuf>) -> anyhow::Result<Access> {
    let config = common.config_in(data_dir)?;
    let store = crate::store::open(&config.storage).await?;
    let clock = std::sync::Arc::new(crate::clock::SystemClock);
    Ok(Access::new(store, clock, false, RateLimiter::new(0.0, 1.0)).await?)
}
