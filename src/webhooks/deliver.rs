//! The deliverer: claims due deliveries from the outbox with a lease, posts each signed to its webhook, and records
//! how every attempt ended (delivered: removed; failed: retried with exponential backoff and jitter, or kept as
//! failed after the last attempt). A delivery is claimed only when no earlier one of its conversation is pending
//! for that webhook, so a conversation's events arrive in order. Runs apart from every request: a slow or dead
//! receiver holds up only its own deliveries.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::{Client, Target, Webhooks, sign};
use crate::clock::Clock;
use crate::config::WebhookDeliveryConfig;
use crate::store::{AttemptOutcome, AttemptResult, Delivery};

/// A lease outlasts the longest attempt by this much, so a live deliverer's claim never expires under it; a dead
/// replica's claims come back this long after its attempts would have timed out.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How long an ended attempt may wait to be recorded with others: one transaction for several outcomes. Every
/// write of the deliverer is one the turns' commits queue behind (SQLite has one writer; a PostgreSQL commit
/// waits for the disk), so fewer and larger ones, at a delay a receiver does not notice for the next event of
/// the conversation.
const RECORD_DELAY: Duration = Duration::from_millis(50);
/// How long the deliverer, woken by a commit, waits for more commits before it claims: one claim for the events
/// of many turns instead of a write per event.
const WAKE_DELAY: Duration = Duration::from_millis(50);

/// The wall clock, in Unix milliseconds. Leases, backoff and signatures are about real time, shared with other
/// replicas and receivers; the injected domain clock (which tests hold still) stamps only the events themselves.
pub(super) fn now() -> i64 {
    crate::clock::SystemClock.now_millis()
}

pub(super) async fn run(webhooks: Arc<Webhooks>) {
    let settings = Arc::new(webhooks.settings.clone());
    let store = webhooks.store();
    let owner = uuid::Uuid::new_v4().simple().to_string();
    if let Err(error) = store.release_delivery_leases().await {
        warn!(%error, "webhook delivery leases not released: what a stopped process claimed waits for its lease");
    }
    let names: Vec<String> = webhooks.names().map(str::to_owned).collect();
    match store.fail_unconfigured_deliveries(&names, now()).await {
        Ok(0) => {}
        Ok(failed) => warn!(failed, "deliveries to webhooks no longer configured are kept as failed"),
        Err(error) => warn!(%error, "deliveries to webhooks no longer configured not marked failed"),
    }
    let client = Client::new(settings.allow_private_addresses, settings.concurrency);
    let longest = webhooks.targets.iter().map(|t| t.timeout).max().unwrap_or_default();
    let lease = (longest + LEASE_MARGIN).as_millis() as i64;
    let concurrency = settings.concurrency;
    info!(webhooks = ?names, concurrency, "webhook deliverer started");

    // Each webhook has `concurrency` slots of its own, so a receiver that hangs ties up only its own deliveries.
    let mut in_flight = vec![0_usize; webhooks.targets.len()];
    // Whose attempts ended since the last look: only they can have become claimable by it.
    let mut ended = vec![false; webhooks.targets.len()];
    let mut running: JoinSet<(usize, AttemptOutcome)> = JoinSet::new();
    let mut finished: Vec<AttemptOutcome> = Vec::new();
    // When the oldest outcome in `finished` ended.
    let mut finished_since: Option<tokio::time::Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(settings.poll_ms));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store_failing = false;
    // Woken by a commit or the poll (rather than by an attempt ending): look for work in every free slot.
    let mut looking = true;
    loop {
        while let Some(joined) = running.try_join_next() {
            collect(joined, &mut in_flight, &mut ended, &mut finished);
        }
        if !finished.is_empty() && finished_since.is_none() {
            finished_since = Some(tokio::time::Instant::now());
        }
        // Outcomes first: the next delivery of a conversation is claimable only once the one before it is
        // recorded. Together, when more attempts are about to end.
        let record = running.is_empty()
            || finished.len() * 2 >= concurrency
            || finished_since.is_some_and(|since| since.elapsed() >= RECORD_DELAY);
        if !finished.is_empty() && record {
            match store.record_attempts(&finished, now()).await {
                Ok(()) => {
                    finished.clear();
                    finished_since = None;
                }
                Err(error) => {
                    // Kept and recorded later; until then their leases keep them from being sent again.
                    if !std::mem::replace(&mut store_failing, true) {
                        warn!(%error, "webhook attempts not recorded: retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(settings.poll_ms)).await;
                    continue;
                }
            }
        }
        for (index, target) in webhooks.targets.iter().enumerate() {
            let free = concurrency - in_flight[index];
            // After an attempt ends, claim in batches (half the slots free, or all) rather than one by one.
            let batch = std::mem::take(&mut ended[index]) && (in_flight[index] == 0 || free * 2 >= concurrency);
            if free == 0 || !(looking || batch) {
                continue;
            }
            let at = now();
            match store.claim_deliveries(&owner, &target.name, at, at + lease, free as u32).await {
                Ok(claimed) => {
                    store_failing = false;
                    for delivery in claimed {
                        in_flight[index] += 1;
                        let attempt = attempt(client.clone(), Arc::clone(target), delivery, Arc::clone(&settings));
                        running.spawn(async move { (index, attempt.await) });
                    }
                }
                Err(error) => {
                    if !std::mem::replace(&mut store_failing, true) {
                        warn!(%error, "webhook deliveries not claimed: retrying");
                    }
                    break;
                }
            }
        }
        looking = tokio::select! {
            joined = running.join_next(), if !running.is_empty() => {
                if let Some(joined) = joined {
                    collect(joined, &mut in_flight, &mut ended, &mut finished);
                }
                false
            }
            () = webhooks.wake.notified() => {
                tokio::time::sleep(WAKE_DELAY).await;
                true
            }
            _ = poll.tick() => true,
            () = tokio::time::sleep_until(finished_since.unwrap_or_else(tokio::time::Instant::now) + RECORD_DELAY),
                if finished_since.is_some() => false,
        };
    }
}

fn collect(
    joined: Result<(usize, AttemptOutcome), tokio::task::JoinError>,
    in_flight: &mut [usize],
    ended: &mut [bool],
    finished: &mut Vec<AttemptOutcome>,
) {
    match joined {
        Ok((index, outcome)) => {
            in_flight[index] -= 1;
            ended[index] = true;
            finished.push(outcome);
        }
        // Only a panic gets here (the set is never aborted while the loop runs): the slot stays taken, and the
        // delivery leased until its lease expires and it is tried again.
        Err(error) => warn!(%error, "a webhook attempt ended abnormally"),
    }
}

/// One attempt: posts the delivery and says how it ended.
async fn attempt(
    client: Client,
    target: Arc<Target>,
    delivery: Delivery,
    settings: Arc<WebhookDeliveryConfig>,
) -> AttemptOutcome {
    let round = delivery.attempts.saturating_sub(delivery.attempts_before).max(1);
    let error = match post(&client, &target, &delivery).await {
        Ok(()) => return finish(&delivery, round, AttemptResult::Delivered),
        Err(error) => error,
    };
    let result = if round >= settings.max_attempts {
        AttemptResult::Failed { error }
    } else {
        AttemptResult::Retry { at: now() + backoff(&settings, round, &delivery.id) as i64, error }
    };
    finish(&delivery, round, result)
}

/// Counts and logs the outcome.
fn finish(delivery: &Delivery, round: u32, result: AttemptResult) -> AttemptOutcome {
    let outcome = match &result {
        AttemptResult::Delivered => "delivered",
        AttemptResult::Retry { error, .. } => {
            debug!(webhook = %delivery.webhook, delivery_id = %delivery.id, attempt = round, %error, "webhook attempt failed: will retry");
            "retry"
        }
        AttemptResult::Failed { error } => {
            warn!(webhook = %delivery.webhook, delivery_id = %delivery.id, event = %delivery.event, attempts = round, %error, "webhook delivery failed: kept for AdminService.RedeliverWebhook");
            "failed"
        }
    };
    metrics::counter!(crate::metrics::WEBHOOK_ATTEMPTS, "webhook" => delivery.webhook.clone(), "outcome" => outcome)
        .increment(1);
    AttemptOutcome { delivery_id: delivery.id.clone(), attempt: delivery.attempts, result }
}

/// Posts the body; `Err` says why it did not count as delivered.
async fn post(client: &Client, target: &Target, delivery: &Delivery) -> Result<(), String> {
    let body = Bytes::from(delivery.payload.clone().into_bytes());
    let signature = sign::sign(&target.secret, now() / 1000, &body);
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("user-agent", concat!("loket-webhooks/", env!("CARGO_PKG_VERSION")).to_owned()),
        ("loket-event", delivery.event.clone()),
        ("loket-event-id", delivery.event_id.clone()),
        ("loket-delivery", delivery.id.clone()),
        ("loket-attempt", delivery.attempts.to_string()),
        (sign::HEADER, signature),
    ];
    let answer = client.post(&target.url, &headers, body, target.timeout).await?;
    match answer.status {
        200..=299 => Ok(()),
        300..=399 => Err(format!(
            "answered HTTP {} (a redirect to {}): redirects are not followed, configure the final URL",
            answer.status,
            answer.location.as_deref().unwrap_or("nowhere")
        )),
        status => Err(format!("answered HTTP {status}")),
    }
}

/// The wait before the attempt after attempt `round` of this round: `backoff_base_ms` doubled per attempt up to
/// `backoff_max_ms`, of which a random half ("equal jitter"), so retries of many deliveries spread out instead
/// of all hitting a receiver that comes back at the same moment.
fn backoff(settings: &WebhookDeliveryConfig, round: u32, delivery_id: &str) -> u64 {
    let doubled = settings.backoff_base_ms.saturating_mul(1 << round.saturating_sub(1).min(40));
    let wait = doubled.min(settings.backoff_max_ms);
    let random = std::collections::hash_map::RandomState::new().hash_one((delivery_id, round));
    wait / 2 + random % (wait / 2 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_at_most_half_of_it_random() {
        let settings = WebhookDeliveryConfig { backoff_base_ms: 1000, backoff_max_ms: 60_000, ..Default::default() };
        for (round, full) in [(1, 1000), (2, 2000), (3, 4000), (6, 32_000), (7, 60_000), (60, 60_000)] {
            for _ in 0..20 {
                let wait = backoff(&settings, round, "d");
                assert!((full / 2..=full).contains(&wait), "attempt {round}: {wait} not in {}..={full}", full / 2);
            }
        }
        let spread: std::collections::HashSet<u64> = (0..20).map(|n| backoff(&settings, 5, &n.to_string())).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }
}
