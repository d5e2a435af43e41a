//! Outbound webhooks: what happens in loket (hand-offs, ratings, knowledge gaps, FAQ changes) posted to the
//! operator's receivers, signed, at least once, in order per conversation. The domain code that makes a change
//! asks [`Webhooks::record`] for the deliveries of its event and commits them with the change (the outbox); the
//! deliverer (`deliver`) posts them afterwards, so a receiver never slows or blocks a conversation. Knows nothing
//! of gRPC.

mod client;
mod deliver;
pub mod payload;
pub mod sign;
pub mod ssrf;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::{WebhookConfig, WebhookDeliveryConfig};
use crate::error::{Error, Result};
use crate::paging::{self, Pager, Position};
use crate::store::{AuditEntry, Delivery, NewDelivery, Redeliver, Store};

pub use client::{Answer, Client};

/// The events a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    HandoffCreated,
    HandoffClaimed,
    HandoffTransferred,
    HandoffResolved,
    ConversationRated,
    KnowledgeGapCreated,
    FaqChanged,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::HandoffCreated,
        EventType::HandoffClaimed,
        EventType::HandoffTransferred,
        EventType::HandoffResolved,
        EventType::ConversationRated,
        EventType::KnowledgeGapCreated,
        EventType::FaqChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::HandoffCreated => "handoff.created",
            EventType::HandoffClaimed => "handoff.claimed",
            EventType::HandoffTransferred => "handoff.transferred",
            EventType::HandoffResolved => "handoff.resolved",
            EventType::ConversationRated => "conversation.rated",
            EventType::KnowledgeGapCreated => "knowledge_gap.created",
            EventType::FaqChanged => "faq.changed",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Longest webhook timeout.
const MAX_TIMEOUT_MS: u64 = 60_000;
/// Shortest webhook secret: 256 bits, the size of the HMAC-SHA256 output.
pub const MIN_SECRET_BYTES: usize = 32;

/// Checks the `[[webhooks]]` entries and `[webhook_delivery]`; an error names the key and says what is wrong.
pub fn check_config(webhooks: &[WebhookConfig], delivery: &WebhookDeliveryConfig) -> Result<(), (String, String)> {
    let invalid = |key: String, reason: String| Err((key, reason));
    for (n, webhook) in webhooks.iter().enumerate() {
        let key = |field: &str| format!("webhooks[{n}] ({}).{field}", webhook.name);
        let name_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if webhook.name.is_empty() || webhook.name.len() > 64 || !webhook.name.chars().all(name_ok) {
            return invalid(key("name"), "1 to 64 of a-z, 0-9, - and _".into());
        }
        if webhooks[..n].iter().any(|other| other.name == webhook.name) {
            return invalid(key("name"), "another webhook has this name".into());
        }
        if let Err(reason) = check_url(&webhook.url, delivery.allow_private_addresses) {
            return invalid(key("url"), reason);
        }
        if webhook.secret.len() < MIN_SECRET_BYTES {
            return invalid(
                key("secret"),
                format!(
                    "at least {MIN_SECRET_BYTES} bytes (it has {}); e.g. `openssl rand -hex 32`",
                    webhook.secret.len()
                ),
            );
        }
        if webhook.events.is_empty() {
            return invalid(key("events"), "name at least one event".into());
        }
        for event in &webhook.events {
            if EventType::parse(event).is_none() {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                return invalid(key("events"), format!("unknown event {event:?} (known: {})", known.join(", ")));
            }
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&webhook.timeout_ms) {
            return invalid(key("timeout_ms"), format!("1 to {MAX_TIMEOUT_MS}"));
        }
    }
    let invalid = |key: &str, reason: &str| Err((format!("webhook_delivery.{key}"), reason.to_owned()));
    if !(1..=100).contains(&delivery.max_attempts) {
        return invalid("max_attempts", "1 to 100");
    }
    if delivery.backoff_base_ms == 0 || delivery.backoff_max_ms < delivery.backoff_base_ms {
        return invalid("backoff_base_ms", "positive, and at most backoff_max_ms");
    }
    if !(1..=256).contains(&delivery.concurrency) {
        return invalid("concurrency", "1 to 256");
    }
    if delivery.poll_ms == 0 {
        return invalid("poll_ms", "must be positive");
    }
    Ok(())
}

/// A webhook URL: https (http only with the allowance), a host, no credentials in it, and (where the host is an
/// address) not an internal one. Hosts given by name are checked when they are resolved, at each connection.
fn check_url(url: &str, allow_private: bool) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_private => {}
        Some("http") => {
            return Err(format!(
                "{url:?} is not https: webhooks carry customer data (http:// only with \
                 webhook_delivery.allow_private_addresses, for tests)"
            ));
        }
        _ => return Err(format!("{url:?} must start with https://")),
    }
    let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} has credentials in it: the signature authenticates loket"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if !allow_private
        && let Ok(ip) = host.parse::<std::net::IpAddr>()
        && let Some(kind) = ssrf::forbidden(ip)
    {
        return Err(format!(
            "{url:?} is a {kind} address: refused (server-side request forgery; allowed only with \
             webhook_delivery.allow_private_addresses, for tests)"
        ));
    }
    Ok(uri)
}

/// One configured webhook, ready to post to.
struct Target {
    name: String,
    url: http::Uri,
    secret: Vec<u8>,
    timeout: std::time::Duration,
    /// One bit per subscribed [`EventType`].
    events: u8,
}

/// The webhooks of this deployment: recording deliveries with changes, waking and running the deliverer, and
/// the administrators' view of failed deliveries.
pub struct Webhooks {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    targets: Vec<Arc<Target>>,
    /// Every event any webhook wants: with no webhook configured, recording costs one comparison.
    wanted: u8,
    settings: WebhookDeliveryConfig,
    /// Rung after a commit with deliveries, so they go out at once rather than at the next poll.
    wake: Notify,
}

impl Webhooks {
    /// From a configuration that passed [`check_config`].
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        webhooks: &[WebhookConfig],
        settings: &WebhookDeliveryConfig,
    ) -> Webhooks {
        let targets: Vec<Arc<Target>> = webhooks
            .iter()
            .map(|w| {
                let events = w.events.iter().filter_map(|e| EventType::parse(e)).fold(0, |bits, e| bits | e.bit());
                Arc::new(Target {
                    name: w.name.clone(),
                    url: w.url.parse().expect("checked by check_config"),
                    secret: w.secret.as_bytes().to_vec(),
                    timeout: std::time::Duration::from_millis(w.timeout_ms),
                    events,
                })
            })
            .collect();
        let wanted = targets.iter().fold(0, |bits, t| bits | t.events);
        Webhooks { store, clock, targets, wanted, settings: settings.clone(), wake: Notify::new() }
    }

    /// Whether any webhook wants `event`.
    pub fn wants(&self, event: EventType) -> bool {
        self.wanted & event.bit() != 0
    }

    /// Adds to `deliveries` one delivery of `event` per webhook that wants it, with the body around `data`, which
    /// is only built then. `conversation_id` orders the event among that conversation's; FAQ events give `None`
    /// and an `ordering_key` of their own.
    pub fn record(
        &self,
        deliveries: &mut Vec<NewDelivery>,
        event: EventType,
        conversation_id: Option<&str>,
        ordering_key: &str,
        at: i64,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        if !self.wants(event) {
            return;
        }
        let event_id = uuid::Uuid::new_v4().to_string();
        let payload: Arc<str> = payload::envelope(&event_id, event.as_str(), at, data()).into();
        for target in self.targets.iter().filter(|t| t.events & event.bit() != 0) {
            deliveries.push(NewDelivery {
                id: uuid::Uuid::new_v4().to_string(),
                event_id: event_id.clone(),
                event: event.as_str(),
                webhook: target.name.clone(),
                ordering_key: ordering_key.to_owned(),
                conversation_id: conversation_id.map(str::to_owned),
                payload: Arc::clone(&payload),
                created_at: at,
            });
        }
    }

    /// Tells the deliverer that deliveries were committed (a no-op without webhooks).
    pub fn wake(&self) {
        if !self.targets.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The deliverer, when any webhook is configured: a task to spawn, which runs until it is aborted.
    pub fn run(self: &Arc<Self>) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if self.targets.is_empty() {
            return None;
        }
        Some(deliver::run(Arc::clone(self)))
    }

    /// A page of failed deliveries (of `webhook`, when not empty), newest failure first, and the next page's token.
    pub async fn failed(&self, webhook: &str, page_size: i32, page_token: &str) -> Result<(Vec<Delivery>, String)> {
        let size = paging::page_size(page_size)?;
        let webhook = webhook.trim();
        crate::text::check_characters("webhook", webhook, false)?;
        let pager = Pager::new("webhook_deliveries", webhook);
        let after = pager.after(page_token)?;
        let filter = (!webhook.is_empty()).then_some(webhook);
        let mut page = self.store.failed_deliveries(filter, after.as_ref(), size as u32 + 1).await?;
        let next = pager.next(&mut page, size, |d| Position::new(d.updated_at, &d.id));
        Ok((page, next))
    }

    /// Queues failed deliveries again, with a fresh round of attempts: the one named `delivery_id`, or every
    /// failed one of `webhook`; exactly one of the two. Audited under `actor`. Returns how many.
    pub async fn redeliver(&self, delivery_id: &str, webhook: &str, actor: &str) -> Result<u64> {
        let (delivery_id, webhook) = (delivery_id.trim(), webhook.trim());
        let which = match (delivery_id.is_empty(), webhook.is_empty()) {
            (false, true) => Redeliver::One(delivery_id),
            (true, false) => Redeliver::Webhook(webhook),
            _ => return Err(Error::invalid("delivery_id", "give either delivery_id or webhook")),
        };
        crate::text::check_characters("delivery_id", delivery_id, false)?;
        crate::text::check_characters("webhook", webhook, false)?;
        let detail = serde_json::json!({ "delivery_id": delivery_id, "webhook": webhook });
        let audit = AuditEntry {
            at: self.clock.now_millis(),
            actor: actor.to_owned(),
            action: "redeliver_webhook".into(),
            detail,
        };
        let count = self.store.redeliver(which, deliver::now(), &audit).await?;
        if count == 0 && !delivery_id.is_empty() {
            return Err(Error::NotFound { what: "failed webhook delivery", id: delivery_id.to_owned() });
        }
        tracing::info!(actor, delivery_id, webhook, count, "webhook deliveries queued again");
        self.wake();
        Ok(count)
    }

    /// The names of the configured webhooks (metric labels).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.name.as_str())
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str) -> WebhookConfig {
        WebhookConfig {
            name: "crm".into(),
            url: url.into(),
            secret: "s".repeat(32),
            events: vec!["handoff.created".into()],
            timeout_ms: 5000,
        }
    }

    fn error(webhooks: &[WebhookConfig], delivery: &WebhookDeliveryConfig) -> (String, String) {
        check_config(webhooks, delivery).unwrap_err()
    }

    #[test]
    fn bad_webhooks_are_named_with_what_is_wrong() {
        let settings = WebhookDeliveryConfig::default();
        assert!(check_config(&[webhook("https://crm.example.com/hooks/loket")], &settings).is_ok());
        let (key, reason) = error(&[webhook("http://crm.example.com/hook")], &settings);
        assert_eq!(key, "webhooks[0] (crm).url");
        assert!(reason.contains("not https"), "{reason}");
        let (_, reason) = error(&[webhook("https://127.0.0.1/hook")], &settings);
        assert!(reason.contains("loopback address: refused"), "{reason}");
        let (_, reason) = error(&[webhook("https://[::ffff:10.0.0.1]/hook")], &settings);
        assert!(reason.contains("private address"), "{reason}");
        let (_, reason) = error(&[webhook("https://user:pw@crm.example.com/")], &settings);
        assert!(reason.contains("credentials"), "{reason}");
        let short = WebhookConfig { secret: "too short".into(), ..webhook("https://crm.example.com/") };
        assert_eq!(error(&[short], &settings).0, "webhooks[0] (crm).secret");
        let unknown = WebhookConfig { events: vec!["handoff.opened".into()], ..webhook("https://crm.example.com/") };
        let (key, reason) = error(&[unknown], &settings);
        assert_eq!(key, "webhooks[0] (crm).events");
        assert!(reason.contains("\"handoff.opened\"") && reason.contains("handoff.created"), "{reason}");
        let slow = WebhookConfig { timeout_ms: 0, ..webhook("https://crm.example.com/") };
        assert_eq!(error(&[slow], &settings).0, "webhooks[0] (crm).timeout_ms");
        let twice = [webhook("https://a.example.com/"), webhook("https://b.example.com/")];
        assert_eq!(error(&twice, &settings).0, "webhooks[1] (crm).name");
        let local = WebhookDeliveryConfig { allow_private_addresses: true, ..settings.clone() };
        assert!(check_config(&[webhook("http://127.0.0.1:8080/hook")], &local).is_ok());
        let zero = WebhookDeliveryConfig { max_attempts: 0, ..settings };
        assert_eq!(error(&[], &zero).0, "webhook_delivery.max_attempts");
    }

    #[tokio::test]
    async fn only_the_webhooks_that_want_an_event_get_a_delivery_and_nothing_is_built_for_none() {
        let store: Arc<dyn Store> = Arc::new(crate::store::SqliteStore::in_memory().await.unwrap());
        let clock = Arc::new(crate::clock::SystemClock);
        let mut all = webhook("https://a.example.com/");
        all.name = "all".into();
        all.events = EventType::ALL.iter().map(|e| e.as_str().to_owned()).collect();
        let mut faq = webhook("https://b.example.com/");
        faq.name = "faq".into();
        faq.events = vec!["faq.changed".into()];
        let webhooks = Webhooks::new(Arc::clone(&store), clock.clone(), &[all, faq], &Default::default());
        let mut deliveries = Vec::new();
        webhooks.record(&mut deliveries, EventType::FaqChanged, None, "faq:x", 0, || serde_json::json!({}));
        assert_eq!(deliveries.iter().map(|d| d.webhook.as_str()).collect::<Vec<_>>(), ["all", "faq"]);
        assert_eq!(deliveries[0].event_id, deliveries[1].event_id);
        assert_ne!(deliveries[0].id, deliveries[1].id);
        webhooks.record(&mut deliveries, EventType::HandoffClaimed, Some("c"), "c", 0, || serde_json::json!({}));
        assert_eq!(deliveries.len(), 3);
        let none = Webhooks::new(store, clock, &[], &Default::default());
        none.record(&mut deliveries, EventType::FaqChanged, None, "faq:x", 0, || unreachable!("nobody wants it"));
        assert_eq!(deliveries.len(), 3);
    }
}
