//! Who may call what: API keys with a role (CLIENT, AGENT with skills, EDITOR, ADMIN), stored hashed, and the
//! per-credential rate limit. Knows nothing of gRPC: the transport extracts the key and asks here.
//!
//! A key reads `lk_<id>_<secret>`. Only the SHA-256 of the secret is stored, so a copy of the database grants
//! nothing. Verification happens in memory (the [`KeyRing`]), so it costs no database round trip per request;
//! the ring is reloaded from the database when keys change through this process and periodically for changes
//! made by `loket keys` from outside.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::{AuditEntry, Erased, Store};

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A front-end: holds conversations, only the ones it started.
    Client,
    /// A human agent: works hand-offs of its skills (all skills when it has none listed).
    Agent,
    /// A knowledge editor: maintains the FAQ and reads KPIs.
    Editor,
    /// Everything, including erasing a customer's data.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Agent => "agent",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Client, Role::Agent, Role::Editor, Role::Admin].into_iter().find(|r| r.as_str() == text)
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id (never its secret): what conversations are owned by and audits name.
    pub key_id: String,
    pub role: Role,
    /// For agents: the skills whose hand-offs they work (empty: all).
    pub skills: Vec<String>,
    /// For agent keys: the agent the key belongs to (the key's name). Everything the key does on the desk is
    /// attributed to this agent, whatever the request says.
    pub agent: Option<String>,
}

impl Caller {
    /// The caller of a server in open (demo) mode: everything is allowed.
    pub fn open() -> Caller {
        Caller { key_id: "open".into(), role: Role::Admin, skills: Vec::new(), agent: None }
    }

    /// Whether this caller works hand-offs of `skill`.
    pub fn has_skill(&self, skill: &str) -> bool {
        self.role != Role::Agent || self.skills.is_empty() || self.skills.iter().any(|s| s == skill)
    }

    /// The conversation owner a request is limited to: a client sees only what it started, others see all.
    pub fn owner_scope(&self) -> Option<&str> {
        (self.role == Role::Client).then_some(self.key_id.as_str())
    }
}

/// The agent a desk operation is done as, from [`acting_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActingAgent {
    /// Who claims, writes, transfers, resolves and signs the notes.
    pub agent_id: String,
    /// The administrator's key id when an administrator acts for the agent: the desk audits it.
    pub admin_key_id: Option<String>,
}

/// Who a desk request of `caller` acts as, given the agent id the request names (`requested`, may be empty).
/// An agent key is its agent: the request may leave the id empty or repeat it, never name another. An
/// administrator (and the open demo mode) has no agent of its own, so it must name the agent it acts for.
pub fn acting_agent(caller: &Caller, requested: &str) -> Result<ActingAgent> {
    let requested = requested.trim();
    match (caller.role, caller.agent.as_deref()) {
        (Role::Agent, Some(own)) if requested.is_empty() || requested == own => {
            Ok(ActingAgent { agent_id: own.to_owned(), admin_key_id: None })
        }
        (Role::Agent, Some(own)) => Err(Error::PermissionDenied(format!(
            "this API key belongs to agent {own:?}; it may not act as agent {requested:?}"
        ))),
        (Role::Admin, _) if requested.is_empty() => {
            Err(Error::invalid("agent_id", "is required: an admin key acts for the agent it names"))
        }
        (Role::Admin, _) => {
            Ok(ActingAgent { agent_id: requested.to_owned(), admin_key_id: Some(caller.key_id.clone()) })
        }
        (role, _) => Err(Error::PermissionDenied(format!("role {} does not act for an agent", role.as_str()))),
    }
}

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub skills: Vec<String>,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A new key: the record to store and the full key, shown once.
pub struct NewKey {
    pub record: ApiKey,
    pub token: String,
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes a key with a random secret (two v4 UUIDs: 244 random bits from the OS).
pub fn new_key(name: &str, role: Role, skills: Vec<String>, now: i64) -> NewKey {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let token = format!("lk_{id}_{secret}");
    let record = ApiKey {
        id,
        name: name.to_owned(),
        role,
        skills,
        secret_hash: hash(&secret),
        created_at: now,
        revoked_at: None,
    };
    NewKey { record, token }
}

/// Splits `lk_<id>_<secret>`.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("lk_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Compares without stopping at the first difference, so timing does not reveal how much of a hash matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The valid keys, in memory.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, ApiKey>>,
}

impl KeyRing {
    /// Replaces the ring's keys (revoked ones are dropped).
    pub fn load(&self, keys: Vec<ApiKey>) {
        let live = keys.into_iter().filter(|k| k.revoked_at.is_none()).map(|k| (k.id.clone(), k)).collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// The caller a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Caller> {
        let unknown = || Error::Unauthenticated("the API key is not valid (unknown, malformed or revoked)".into());
        let (id, secret) = parse_token(token.trim()).ok_or_else(unknown)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(id).ok_or_else(unknown)?;
        if !same(&key.secret_hash, &hash(secret)) {
            return Err(unknown());
        }
        let agent = (key.role == Role::Agent).then(|| key.name.clone());
        Ok(Caller { key_id: key.id.clone(), role: key.role, skills: key.skills.clone(), agent })
    }

    /// Whether the key with this id is live.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).contains_key(key_id)
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Buckets kept before idle ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// Token buckets per key: `rate` requests per second on average, bursts up to `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::default() }
    }

    /// Takes one token for `key`, or says how long until one is available. A rate of 0 means no limit.
    pub fn take(&self, key: &str) -> std::result::Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_BUCKETS {
            // Forget keys whose bucket has refilled: they are idle, and a fresh bucket is full anyway.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// Access control as a service: authenticates and rate-limits callers, manages keys, erases customers.
pub struct Access {
    ring: KeyRing,
    limiter: RateLimiter,
    open: bool,
    store: std::sync::Arc<dyn Store>,
    clock: std::sync::Arc<dyn Clock>,
}

impl Access {
    /// Loads the keys. `open`: no credentials needed, every caller is an administrator (demo mode).
    pub async fn new(
        store: std::sync::Arc<dyn Store>,
        clock: std::sync::Arc<dyn Clock>,
        open: bool,
        limiter: RateLimiter,
    ) -> Result<Access> {
        let access = Access { ring: KeyRing::default(), limiter, open, store, clock };
        access.reload().await?;
        Ok(access)
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Re-reads the keys from the database (picks up `loket keys` run from outside).
    pub async fn reload(&self) -> Result<()> {
        self.ring.load(self.store.api_keys().await?);
        Ok(())
    }

    pub fn live_keys(&self) -> usize {
        self.ring.len()
    }

    /// Who is calling, from the bearer token (None: no credential given), and whether they may call now.
    pub fn admit(&self, token: Option<&str>) -> Result<Caller> {
        let caller = match (self.open, token) {
            (true, _) => Caller::open(),
            (false, Some(token)) => self.ring.authenticate(token)?,
            (false, None) => {
                return Err(Error::Unauthenticated(
                    "an API key is required: send `authorization: Bearer <key>` (see `loket keys create`)".into(),
                ));
            }
        };
        self.limiter.take(&caller.key_id).map_err(|retry_after| Error::ResourceExhausted {
            message: format!("too many requests for API key {}", caller.key_id),
            retry_after,
        })?;
        Ok(caller)
    }

    /// Whether a caller admitted earlier still holds a live key: a stream opened before its key was revoked ends
    /// when this says no. Keys revoked by another process count from the ring's next reload.
    pub fn still_admitted(&self, caller: &Caller) -> Result<()> {
        if self.open || self.ring.contains(&caller.key_id) {
            return Ok(());
        }
        Err(Error::Unauthenticated(format!("API key {} was revoked", caller.key_id)))
    }

    /// Makes a key. An agent key's name is the agent's id: what the key does on the desk is attributed to it.
    pub async fn create_key(&self, name: &str, role: Role, skills: Vec<String>, actor: &str) -> Result<NewKey> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(Error::invalid("name", "1 to 128 bytes"));
        }
        crate::text::check_characters("name", name, false)?;
        if role != Role::Agent && !skills.is_empty() {
            return Err(Error::invalid("skills", "only agent keys have skills"));
        }
        skills.iter().try_for_each(|skill| crate::text::check_characters("skills", skill, false))?;
        let key = new_key(name.trim(), role, skills, self.clock.now_millis());
        let detail = serde_json::json!({ "key_id": key.record.id, "role": role.as_str() });
        let audit =
            AuditEntry { at: key.record.created_at, actor: actor.to_owned(), action: "create_key".into(), detail };
        self.store.insert_api_key(&key.record, &audit).await?;
        self.reload().await?;
        Ok(key)
    }

    pub async fn revoke_key(&self, id: &str, actor: &str) -> Result<()> {
        if id.is_empty() {
            return Err(Error::invalid("key_id", "is required"));
        }
        crate::text::check_characters("key_id", id, false)?;
        let detail = serde_json::json!({ "key_id": id });
        let audit =
            AuditEntry { at: self.clock.now_millis(), actor: actor.to_owned(), action: "revoke_key".into(), detail };
        if !self.store.revoke_api_key(id, &audit).await? {
            return Err(Error::NotFound { what: "API key", id: id.to_owned() });
        }
        self.reload().await
    }

    pub async fn keys(&self) -> Result<Vec<ApiKey>> {
        Ok(self.store.api_keys().await?)
    }

    /// Removes everything stored about a customer; the audit log records who did it and how much, not whom.
    pub async fn erase_customer(&self, customer_id: &str, actor: &str) -> Result<Erased> {
        if customer_id.trim().is_empty() {
            return Err(Error::invalid("customer_id", "is required"));
        }
        crate::text::check_characters("customer_id", customer_id, false)?;
        let erased = self.store.erase_customer(customer_id.trim(), actor, self.clock.now_millis()).await?;
        tracing::info!(actor, conversations = erased.conversations, messages = erased.messages, "customer erased");
        Ok(erased)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_authenticates_only_with_its_own_secret_and_not_after_revocation() {
        let ring = KeyRing::default();
        let key = new_key("widget", Role::Client, Vec::new(), 0);
        let other = new_key("console", Role::Agent, vec!["billing".into()], 0);
        ring.load(vec![key.record.clone(), other.record.clone()]);
        assert_eq!(ring.authenticate(&key.token).unwrap().role, Role::Client);
        let agent = ring.authenticate(&other.token).unwrap();
        assert!(agent.has_skill("billing") && !agent.has_skill("returns"));
        let (id, _) = parse_token(&key.token).unwrap();
        let (_, secret) = parse_token(&other.token).unwrap();
        assert!(ring.authenticate(&format!("lk_{id}_{secret}")).is_err(), "a secret of another key");
        assert!(ring.authenticate("Bearer nonsense").is_err());
        let mut revoked = key.record.clone();
        revoked.revoked_at = Some(1);
        ring.load(vec![revoked, other.record]);
        assert!(ring.authenticate(&key.token).is_err());
    }

    #[test]
    fn an_agent_key_acts_only_as_its_agent_and_an_admin_names_the_agent() {
        let ring = KeyRing::default();
        let anna = new_key("anna", Role::Agent, Vec::new(), 0);
        let admin = new_key("admin", Role::Admin, Vec::new(), 0);
        ring.load(vec![anna.record.clone(), admin.record.clone()]);
        let anna = ring.authenticate(&anna.token).unwrap();
        for requested in ["", "anna", " anna "] {
            let acting = acting_agent(&anna, requested).unwrap();
            assert_eq!((acting.agent_id.as_str(), acting.admin_key_id), ("anna", None), "{requested:?}");
        }
        assert!(
            matches!(acting_agent(&anna, "bob"), Err(Error::PermissionDenied(m)) if m.contains("anna") && m.contains("bob"))
        );
        let admin = ring.authenticate(&admin.token).unwrap();
        assert!(matches!(acting_agent(&admin, " "), Err(Error::InvalidArgument { field: "agent_id", .. })));
        let acting = acting_agent(&admin, "bob").unwrap();
        assert_eq!((acting.agent_id.as_str(), acting.admin_key_id), ("bob", Some(admin.key_id.clone())));
        assert!(acting_agent(&Caller::open(), "").is_err(), "the open mode names its agent too");
        let client = Caller { key_id: "c".into(), role: Role::Client, skills: Vec::new(), agent: None };
        assert!(matches!(acting_agent(&client, "anna"), Err(Error::PermissionDenied(_))));
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_asks_to_wait() {
        let limiter = RateLimiter::new(1.0, 3.0);
        for _ in 0..3 {
            assert!(limiter.take("k").is_ok());
        }
        let wait = limiter.take("k").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.take("other").is_ok(), "buckets are per key");
    }
}
