//! Whether a configuration makes sense as a whole: every error names the key and says what is wrong.

use super::{Config, ConfigError};

impl Config {
    /// Checks every key of its own. The webhook targets are checked by `webhooks::check_config` (which `App`
    /// and `loket config check` call through [`crate::check_config`]), since what a valid target is belongs to
    /// the webhooks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, reason: &str| Err(ConfigError::Invalid { key: key.to_owned(), reason: reason.to_owned() });
        if self.languages.supported.is_empty() {
            return invalid("languages.supported", "at least one language is needed");
        }
        if !self.languages.supported.contains(&self.languages.default) {
            return invalid("languages.default", "must be one of languages.supported");
        }
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        let p = &self.policy;
        for (key, value) in [
            ("policy.answer_min_score", p.answer_min_score),
            ("policy.answer_min_margin", p.answer_min_margin),
            ("policy.clarify_min_score", p.clarify_min_score),
            ("policy.intent_min_confidence", p.intent_min_confidence),
            ("policy.intent_min_margin", p.intent_min_margin),
            ("policy.intent_clarify_min", p.intent_clarify_min),
            ("policy.retrieval_agree_min", p.retrieval_agree_min),
            ("policy.conversational_min_confidence", p.conversational_min_confidence),
        ] {
            if !unit(value) {
                return invalid(key, "must be between 0 and 1");
            }
        }
        if self.server.tls_cert.as_os_str().is_empty() != self.server.tls_key.as_os_str().is_empty() {
            return invalid("server.tls_key", "tls_cert and tls_key go together");
        }
        if !self.server.tls() && !self.server.listen.ip().is_loopback() && !self.server.allow_plaintext {
            return invalid(
                "server.listen",
                "plain text is only served on loopback: set server.tls_cert and server.tls_key, or server.allow_plaintext",
            );
        }
        if !["keys", "open"].contains(&self.auth.mode.as_str()) {
            return invalid("auth.mode", "must be \"keys\" or \"open\"");
        }
        if self.auth.open() && !self.server.listen.ip().is_loopback() {
            return invalid("auth.mode", "\"open\" (no credentials) is only allowed on a loopback listen address");
        }
        if p.clarify_max_options < 2 {
            return invalid("policy.clarify_max_options", "must be at least 2");
        }
        for code in p.languages.keys() {
            if !self.languages.supported.contains(code) {
                return invalid(&format!("policy.languages.{code}"), "not a supported language");
            }
        }
        super::hours::Schedules::from_config(&self.handoff)
            .map_err(|reason| ConfigError::Invalid { key: "handoff.office_hours".into(), reason })?;
        let url = self.storage.database_url.trim();
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return invalid("storage.database_url", "must be empty (SQLite) or a postgres:// URL");
        }
        if self.storage.max_connections == 0 {
            return invalid("storage.max_connections", "must be positive");
        }
        if self.storage.acquire_timeout_ms == 0 {
            return invalid("storage.acquire_timeout_ms", "must be positive");
        }
        if self.limits.max_message_bytes == 0 {
            return invalid("limits.max_message_bytes", "must be positive");
        }
        if self.web.conversation_token_ttl_secs == 0 {
            return invalid("web.conversation_token_ttl_secs", "must be positive");
        }
        if self.web.widget_starts_per_minute_per_address.is_nan() || self.web.widget_starts_per_minute_per_address < 0.0
        {
            return invalid("web.widget_starts_per_minute_per_address", "must be 0 (no limit) or positive");
        }
        for (n, origin) in self.web.allowed_origins.iter().enumerate() {
            if let Err(reason) = check_origin(origin) {
                return invalid(&format!("web.allowed_origins[{n}]"), &reason);
            }
        }
        for (key, value) in [
            ("kpi.csat_min", self.kpi.csat_min),
            ("kpi.resolution_min", self.kpi.resolution_min),
            ("kpi.deflection_min", self.kpi.deflection_min),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return invalid(key, "must be between 0 and 1");
            }
        }
        Ok(())
    }
}

/// An origin as browsers send it: `http` or `https`, a host, an optional port, nothing else (no path, no
/// trailing slash, no wildcard), in lower case.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    let Some(authority) = rest else {
        return Err(format!("{origin:?} is not an origin: it must start with http:// or https://"));
    };
    // `[::1]:8080` keeps its brackets; only a colon after the host starts a port.
    let host_end = if authority.starts_with('[') { authority.find(']').map_or(0, |i| i + 1) } else { 0 };
    let (host, port) = match authority[host_end..].find(':') {
        Some(i) => (&authority[..host_end + i], Some(&authority[host_end + i + 1..])),
        None => (authority, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(format!("{origin:?} has an invalid port"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.[]:".contains(c);
    if host.is_empty() || !host.chars().all(allowed) {
        return Err(format!(
            "{origin:?} is not an origin: scheme://host[:port] in lower case, without path, slash or wildcard"
        ));
    }
    Ok(())
}
