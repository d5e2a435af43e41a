//! Who may call what: API keys with a role (CLIENT, AGENT with skills, EDITOR, ADMIN, WIDGET), stored hashed,
//! the conversation tokens a widget key's conversations run on (`widget`), and the per-credential rate limits.
//! Knows nothing of gRPC: the transport extracts the credential and asks here.
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
use crate::widget::{ConversationGrant, TokenSigner};

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
    /// A web widget's publishable key: it only starts conversations, from a page of an allowed origin; the page
    /// holds each conversation through the conversation token the start returned.
    Widget,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Agent => "agent",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Widget => "widget",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Client, Role::Agent, Role::Editor, Role::Admin, Role::Widget].into_iter().find(|r| r.as_str() == text)
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
    /// For agent keys: the name customers see on the agent's messages (empty: none set).
    pub display_name: String,
    /// For a conversation token (role WIDGET): the one conversation it may hold.
    pub conversation: Option<String>,
}

impl Caller {
    /// The caller of a server in open (demo) mode: everything is allowed.
    pub fn open() -> Caller {
        Caller::with_role("open", Role::Admin)
    }

    /// A caller of `role` with nothing else: no skills, agent or conversation.
    fn with_role(key_id: &str, role: Role) -> Caller {
        Caller {
            key_id: key_id.to_owned(),
            role,
            skills: Vec::new(),
            agent: None,
            display_name: String::new(),
            conversation: None,
        }
    }

    /// Whether this caller works hand-offs of `skill`.
    pub fn has_skill(&self, skill: &str) -> bool {
        self.role != Role::Agent || self.skills.is_empty() || self.skills.iter().any(|s| s == skill)
    }

    /// The conversation owner a request on `conversation_id` is limited to: a client sees only what it started, a
    /// conversation token only its conversation, others see all. A widget key itself holds no conversation.
    pub fn scope_for(&self, conversation_id: &str) -> Result<Option<&str>> {
        match (self.role, self.conversation.as_deref()) {
            (Role::Client, _) => Ok(Some(self.key_id.as_str())),
            (Role::Widget, Some(own)) if own == conversation_id.trim() => Ok(Some(self.key_id.as_str())),
            (Role::Widget, Some(_)) => Err(Error::PermissionDenied(
                "this conversation token is for another conversation: use the token its StartConversation returned"
                    .into(),
            )),
            (Role::Widget, None) => Err(Error::PermissionDenied(
                "a widget key may only start conversations: send the conversation token StartConversation returned"
                    .into(),
            )),
            _ => Ok(None),
        }
    }

    /// Whether this caller may start a conversation (a conversation token holds the one it has).
    pub fn may_start(&self) -> Result<()> {
        match self.conversation {
            Some(_) => Err(Error::PermissionDenied(
                "a conversation token holds one conversation: start another with the widget key".into(),
            )),
            None => Ok(()),
        }
    }
}

/// The agent a desk operation is done as, from [`acting_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActingAgent {
    /// Who claims, writes, transfers, resolves and signs the notes.
    pub agent_id: String,
    /// The administrator's key id when an administrator acts for the agent: the desk audits it.
    pub admin_key_id: Option<String>,
    /// The name the customer sees on the agent's messages: the agent key's display name (empty when it has none,
    /// and when an administrator acts for the agent).
    pub display_name: String,
}

/// Who a desk request of `caller` acts as, given the agent id the request names (`requested`, may be empty).
/// An agent key is its agent: the request may leave the id empty or repeat it, never name another. An
/// administrator (and the open demo mode) has no agent of its own, so it must name the agent it acts for.
pub fn acting_agent(caller: &Caller, requested: &str) -> Result<ActingAgent> {
    let requested = requested.trim();
    match (caller.role, caller.agent.as_deref()) {
        (Role::Agent, Some(own)) if requested.is_empty() || requested == own => {
            Ok(ActingAgent { agent_id: own.to_owned(), admin_key_id: None, display_name: caller.display_name.clone() })
        }
        (Role::Agent, Some(own)) => Err(Error::PermissionDenied(format!(
            "this API key belongs to agent {own:?}; it may not act as agent {requested:?}"
        ))),
        (Role::Admin, _) if requested.is_empty() => {
            Err(Error::invalid("agent_id", "is required: an admin key acts for the agent it names"))
        }
        (Role::Admin, _) => {
            let admin_key_id = Some(caller.key_id.clone());
            Ok(ActingAgent { agent_id: requested.to_owned(), admin_key_id, display_name: String::new() })
        }
        (role, _) => Err(Error::PermissionDenied(format!("role {} does not act for an agent", role.as_str()))),
    }
}

/// Longest display name of an agent: a name, not a message.
const MAX_DISPLAY_NAME_BYTES: usize = 64;

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// Agent keys: the name customers see on the agent's messages (empty: none, the customer sees "agent").
    pub display_name: String,
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
    crate::text::hex(&Sha256::digest(secret.as_bytes()))
}

/// Makes a key with a random secret (two v4 UUIDs: 244 random bits from the OS).
pub fn new_key(name: &str, role: Role, skills: Vec<String>, now: i64) -> NewKey {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let token = format!("lk_{id}_{secret}");
    let record = ApiKey {
        id,
        name: name.to_owned(),
        display_name: String::new(),
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
        Ok(Caller {
            key_id: key.id.clone(),
            role: key.role,
            skills: key.skills.clone(),
            agent,
            display_name: key.display_name.clone(),
            conversation: None,
        })
    }

    /// Whether `id` is a live key of `role`.
    pub fn is_live(&self, id: &str, role: Role) -> bool {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).get(id).is_some_and(|k| k.role == role)
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

/// What the transport knows of a request besides its credential.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The origin of the web page that sent it, when a browser did and the origin is allowed (the web layer
    /// refuses the others before they get here).
    pub page_origin: Option<String>,
    /// The client's address (for a widget key's per-address limit).
    pub client_address: Option<std::net::IpAddr>,
}

/// How widget keys and their conversation tokens behave (`[web]`).
pub struct WidgetSettings {
    /// How long a conversation token is accepted, in milliseconds.
    pub token_ttl_ms: i64,
    /// Conversation starts per client address.
    pub starts_per_address: RateLimiter,
    /// The secret the shop's backend signs customer ids with; empty: identity verification off.
    pub identity_secret: String,
}

impl WidgetSettings {
    pub fn from_config(web: &crate::config::WebConfig) -> WidgetSettings {
        let per_minute = web.widget_starts_per_minute_per_address;
        WidgetSettings {
            token_ttl_ms: i64::try_from(web.conversation_token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            starts_per_address: RateLimiter::new(per_minute / 60.0, per_minute.max(1.0)),
            identity_secret: web.identity_secret.clone(),
        }
    }
}

/// A conversation token as handed to the page, with when it stops being accepted.
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

/// Access control as a service: authenticates and rate-limits callers, manages keys, erases customers.
pub struct Access {
    ring: KeyRing,
    limiter: RateLimiter,
    open: bool,
    store: std::sync::Arc<dyn Store>,
    clock: std::sync::Arc<dyn Clock>,
    signer: TokenSigner,
    widgets: WidgetSettings,
}

impl Access {
    /// Loads the keys and the token signing secret. `open`: no credentials needed, every caller is an
    /// administrator (demo mode).
    pub async fn new(
        store: std::sync::Arc<dyn Store>,
        clock: std::sync::Arc<dyn Clock>,
        open: bool,
        limiter: RateLimiter,
    ) -> Result<Access> {
        let secret = store.token_secret(&crate::widget::fresh_secret(), clock.now_millis()).await?;
        let signer = TokenSigner::new(secret.as_bytes());
        let widgets = WidgetSettings::from_config(&crate::config::WebConfig::default());
        let access = Access { ring: KeyRing::default(), limiter, open, store, clock, signer, widgets };
        access.reload().await?;
        Ok(access)
    }

    /// Widget keys and conversation tokens behave as `settings` say (the defaults otherwise).
    pub fn with_widget_settings(mut self, settings: WidgetSettings) -> Access {
        self.widgets = settings;
        self
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

    /// Who is calling, from the bearer token (None: no credential given), and whether they may call now. A
    /// conversation token is checked (signature, expiry, its widget key still live) and limited per
    /// conversation; a widget key is accepted only from a web page and limited per client address; any other
    /// key is limited per key.
    pub fn admit(&self, token: Option<&str>, request: &RequestInfo) -> Result<Caller> {
        let caller = match (self.open, token) {
            (true, _) => Caller::open(),
            (false, Some(token)) if token.starts_with(crate::widget::TOKEN_PREFIX) => {
                let grant = self.signer.verify(token, self.clock.now_millis())?;
                if !self.ring.is_live(&grant.key_id, Role::Widget) {
                    return Err(Error::Unauthenticated(
                        "the widget key that started this conversation was revoked".into(),
                    ));
                }
                let mut caller = Caller::with_role(&grant.key_id, Role::Widget);
                caller.conversation = Some(grant.conversation_id);
                caller
            }
            (false, Some(token)) => self.ring.authenticate(token)?,
            (false, None) => {
                return Err(Error::Unauthenticated(
                    "an API key is required: send `authorization: Bearer <key>` (see `loket keys create`)".into(),
                ));
            }
        };
        match (caller.role, caller.conversation.as_deref()) {
            (Role::Widget, Some(conversation)) => self.take(&self.limiter, &format!("conversation {conversation}"))?,
            (Role::Widget, None) => {
                if request.page_origin.is_none() {
                    return Err(Error::PermissionDenied(
                        "a widget key is accepted only from a web page of an allowed origin (web.allowed_origins)"
                            .into(),
                    ));
                }
                let address = request.client_address.map(|a| a.to_string()).unwrap_or_default();
                self.take(&self.widgets.starts_per_address, &format!("address {address}"))?;
            }
            _ => self.take(&self.limiter, &format!("API key {}", caller.key_id))?,
        }
        Ok(caller)
    }

    /// Whether a caller admitted earlier still holds a live key: a stream opened before its key was revoked ends
    /// when this says no. Keys revoked by another process count from the ring's next reload.
    pub fn still_admitted(&self, caller: &Caller) -> Result<()> {
        if self.open || self.ring.is_live(&caller.key_id, caller.role) {
            return Ok(());
        }
        Err(Error::Unauthenticated(format!("API key {} was revoked", caller.key_id)))
    }

    fn take(&self, limiter: &RateLimiter, bucket: &str) -> Result<()> {
        limiter.take(bucket).map_err(|retry_after| Error::ResourceExhausted {
            message: format!("too many requests for {bucket}"),
            retry_after,
        })
    }

    /// The conversation token for a conversation `caller` just started: only a widget key gets one.
    pub fn issue_token(&self, caller: &Caller, conversation_id: &str) -> Option<IssuedToken> {
        if caller.role != Role::Widget {
            return None;
        }
        let expires_at = self.clock.now_millis().saturating_add(self.widgets.token_ttl_ms);
        let grant = ConversationGrant {
            conversation_id: conversation_id.to_owned(),
            key_id: caller.key_id.clone(),
            expires_at,
        };
        Some(IssuedToken { token: self.signer.issue(&grant), expires_at })
    }

    /// The customer id a conversation `caller` starts is stored under. Keys other than widget keys are trusted
    /// with it. A widget's visitor keeps the id only with the shop's signature of it (`identity_secret`);
    /// without one they are an anonymous `visitor-<random>`, so nobody joins another customer's history by
    /// typing their id.
    pub fn customer_identity(&self, caller: &Caller, customer_id: String, signature: &str) -> Result<String> {
        if caller.role != Role::Widget {
            return Ok(customer_id);
        }
        if signature.trim().is_empty() {
            return Ok(format!("visitor-{}", uuid::Uuid::new_v4().simple()));
        }
        if self.widgets.identity_secret.is_empty() {
            return Err(Error::FailedPrecondition(
                "identity verification is off: the operator sets web.identity_secret to accept customer_id_signature"
                    .into(),
            ));
        }
        if !crate::widget::identity_verified(&self.widgets.identity_secret, &customer_id, signature) {
            return Err(Error::PermissionDenied(
                "customer_id_signature is not the HMAC-SHA256 of customer_id under the shop's identity secret".into(),
            ));
        }
        Ok(customer_id)
    }

    /// Makes a key. An agent key's name is the agent's id: what the key does on the desk is attributed to it; its
    /// display name (optional) is what customers see on its messages.
    pub async fn create_key(
        &self,
        name: &str,
        role: Role,
        skills: Vec<String>,
        display_name: &str,
        actor: &str,
    ) -> Result<NewKey> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(Error::invalid("name", "1 to 128 bytes"));
        }
        crate::text::check_characters("name", name, false)?;
        if role != Role::Agent && !skills.is_empty() {
            return Err(Error::invalid("skills", "only agent keys have skills"));
        }
        skills.iter().try_for_each(|skill| crate::text::check_characters("skills", skill, false))?;
        if role != Role::Agent && !display_name.trim().is_empty() {
            return Err(Error::invalid("display_name", "only agent keys have a display name"));
        }
        if display_name.len() > MAX_DISPLAY_NAME_BYTES {
            return Err(Error::invalid("display_name", format!("at most {MAX_DISPLAY_NAME_BYTES} bytes")));
        }
        crate::text::check_characters("display_name", display_name, false)?;
        let mut key = new_key(name.trim(), role, skills, self.clock.now_millis());
        key.record.display_name = display_name.trim().to_owned();
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
        let client = Caller::with_role("c", Role::Client);
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
