//! Service configuration in layers: built-in defaults < TOML file < `LOKET_SECTION__KEY` environment variables <
//! command-line settings. Owns no behaviour; every threshold, limit and target is read from here so operators
//! tune without a rebuild. Unknown keys are errors that name the key, in every layer.

mod conversation;
pub mod hours;
mod service;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use conversation::*;
pub use service::*;
pub use validate::check_origin;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Receivers of outbound webhooks (`[[webhooks]]`); none by default.
    pub webhooks: Vec<WebhookConfig>,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub knowledge: KnowledgeConfig,
    pub languages: LanguageConfig,
    pub policy: PolicyConfig,
    pub limits: LimitsConfig,
    pub channels: ChannelsConfig,
    pub handoff: HandoffConfig,
    pub intent: IntentConfig,
    pub metrics: MetricsConfig,
    pub kpi: KpiConfig,
    pub auth: AuthConfig,
    pub privacy: PrivacyConfig,
    pub log: LogConfig,
    pub web: WebConfig,
    pub webhook_delivery: WebhookDeliveryConfig,
}

/// Prefix of the environment variables that set configuration keys.
const ENV_PREFIX: &str = "LOKET_";
/// The environment variable naming the file (the command line's `--config`), not a key.
pub const ENV_CONFIG_FILE: &str = "LOKET_CONFIG";

/// Where a configuration came from, for `loket config check` and the startup summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    pub file: Option<PathBuf>,
    /// Keys set by `LOKET_*` environment variables.
    pub env: Vec<String>,
    /// Keys set on the command line.
    pub command_line: Vec<String>,
}

impl Config {
    /// Built-in defaults overlaid by `path` when given; validated.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Ok(Self::load_layered(path, std::iter::empty(), &[])?.0)
    }

    /// Built-in defaults < the file at `path` < `env` (`LOKET_SECTION__KEY=value`, nested sections joined by `__`,
    /// case-insensitive) < `settings` (`section.key=value`, from the command line). Every `LOKET_*` variable but
    /// `LOKET_CONFIG` must name a key. A value is read as TOML (`0.6`, `true`, `["nl", "en"]`); a key holding a
    /// string takes the text as it is, and a list also takes `a,b,c`. Validated as a whole at the end.
    pub fn load_layered(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        settings: &[(String, String)],
    ) -> Result<(Config, Sources), ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?
            }
        };
        let mut sources = Sources { file: path.map(Path::to_owned), ..Sources::default() };
        let mut env: Vec<(String, String)> =
            env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX) && name != ENV_CONFIG_FILE).collect();
        // The environment has no order; sorting makes the first error reported the same on every run.
        env.sort();
        let mut layers = Vec::new();
        for (name, value) in env {
            let key = name[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
            sources.env.push(key.clone());
            layers.push((key, value, name));
        }
        for (key, value) in settings {
            sources.command_line.push(key.clone());
            layers.push((key.clone(), value.clone(), "the command line".to_owned()));
        }
        if layers.is_empty() {
            config.validate()?;
            return Ok((config, sources));
        }
        let mut tree = toml::Value::try_from(&config)
            .map_err(|e| ConfigError::Invalid { key: "(all)".into(), reason: e.to_string() })?;
        for (key, value, origin) in layers {
            let invalid = |reason: String| ConfigError::Invalid { key: format!("{key} (from {origin})"), reason };
            set_key(&mut tree, &key, &value).map_err(invalid)?;
            // Checked key by key, so the error names the key that broke it.
            tree.clone().try_into::<Config>().map_err(|e| invalid(e.message().to_owned()))?;
        }
        let config: Config = tree.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
            key: "(all)".into(),
            reason: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok((config, sources))
    }
}

/// Sets the dotted `key` in `tree` to `value`, read as the type the key holds now (or as TOML where it holds
/// nothing yet, as in a new `policy.languages.<code>` entry). Unknown keys are left for deserialisation to name.
fn set_key(tree: &mut toml::Value, key: &str, value: &str) -> Result<(), String> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("not a key: expected section.key".into());
    }
    let (leaf, parents) = segments.split_last().expect("split yields at least one segment");
    let mut table = tree.as_table_mut().ok_or("the configuration is not a table")?;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table.entry(segment.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("{} is a value, not a section", segments[..=depth].join(".")))?;
    }
    let parsed = || toml::from_str::<toml::Table>(&format!("v = {value}")).ok().and_then(|mut t| t.remove("v"));
    let new = match table.get(*leaf) {
        Some(toml::Value::String(_)) => toml::Value::String(value.to_owned()),
        Some(toml::Value::Array(_)) => parsed().unwrap_or_else(|| {
            toml::Value::Array(
                value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(|v| v.to_owned().into()).collect(),
            )
        }),
        Some(toml::Value::Table(_)) => return Err("is a section: set one of its keys".into()),
        _ => parsed().unwrap_or_else(|| toml::Value::String(value.to_owned())),
    };
    table.insert(leaf.to_string(), new);
    Ok(())
}
