//! Who may call what: API keys with a role (CLIENT, AGENT with skills, EDITOR, ADMIN, WIDGET), stored hashed,
//! the conversation tokens a widget key's conversations run on (`widget`), and the per-credential rate limits.
//! Knows nothing of gRPC: the transport extracts the credential and asks here.
//!
//! A key reads `lk_<id>_<secret>`. Only the SHA-256 of the secret is stored, so a copy of the database grants
//! nothing. Verification happens in memory (the [`KeyRing`]), so it costs no database round trip per request;
//! the ring is reloaded from the database when keys change through this process and periodically for changes
//! made by `loket keys` from outside.

mod caller;
mod keys;
mod limiter;

pub use caller::{ActingAgent, Caller, acting_agent};
pub use keys::{KeyRing, NewKey, new_key};
pub use limiter::RateLimiter;

use crate::clock::Clock;
use crate::error::{Error, Result};
pub use crate::identity::{ApiKey, Role};
use crate::store::{AuditEntry, Erased, Store};
use crate::widget::{ConversationGrant, TokenSigner};

/// Longest display name of an agent: a name, not a message.
const MAX_DISPLAY_NAME_BYTES: usize = 64;

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
