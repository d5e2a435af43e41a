//! The JSON bodies of webhook events, version 1 (docs/webhooks.md documents every field). An envelope (`version`,
//! `id`, `type`, `created_at`) around one object per event type. Personal data only where the event needs it: the
//! customer id in `handoff.created` (a help desk files the ticket under it); free text (summary, notes, comments)
//! always through `privacy::redact`, as in the knowledge gaps. Adding a field keeps the version; removing or
//! changing one raises it.

use serde_json::{Value, json};

use crate::conversation::Handoff;
use crate::knowledge::gaps::Gap;
use crate::privacy::redact;
use crate::store::FaqChange;

/// The payload version: receivers check it before reading `data`.
pub const VERSION: u32 = 1;

/// RFC 3339 in UTC, to the millisecond: `2026-11-25T09:00:00.123Z`.
pub fn time(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis).map(|t| format!("{t:.3}")).unwrap_or_default()
}

/// The whole body of event `event_id` of type `event` that happened at `at`.
pub fn envelope(event_id: &str, event: &str, at: i64, data: Value) -> String {
    json!({ "version": VERSION, "id": event_id, "type": event, "created_at": time(at), "data": data }).to_string()
}

fn optional_time(millis: Option<i64>) -> Value {
    millis.map_or(Value::Null, |m| Value::String(time(m)))
}

pub fn handoff_created(handoff: &Handoff) -> Value {
    json!({
        "handoff_id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "customer_id": handoff.customer_id,
        "skill": handoff.skill,
        "reason": handoff.reason.as_str(),
        "priority": handoff.priority,
        "tier": handoff.tier.as_str(),
        "channel": handoff.channel.as_str(),
        "language": handoff.language,
        "summary": redact(&handoff.first_ask),
        "callback": handoff.callback,
        "expected_pickup_at": time(handoff.expected_pickup_at),
    })
}

pub fn handoff_claimed(handoff: &Handoff, at: i64) -> Value {
    json!({
        "handoff_id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "skill": handoff.skill,
        "reason": handoff.reason.as_str(),
        "agent_id": handoff.agent_id,
        "wait_seconds": (at - handoff.created_at).max(0) / 1000,
        "first_claimed_at": optional_time(handoff.claimed_at),
    })
}

pub fn handoff_transferred(handoff: &Handoff, from_skill: &str, agent_id: &str, note: &str) -> Value {
    json!({
        "handoff_id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "from_skill": from_skill,
        "to_skill": handoff.skill,
        "reason": handoff.reason.as_str(),
        "agent_id": agent_id,
        "note": redact(note.trim()),
    })
}

pub fn handoff_resolved(handoff: &Handoff, note: &str) -> Value {
    json!({
        "handoff_id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "skill": handoff.skill,
        "reason": handoff.reason.as_str(),
        "agent_id": handoff.agent_id,
        "note": redact(note.trim()),
        "claimed_at": optional_time(handoff.claimed_at),
        "resolved_at": optional_time(handoff.resolved_at),
    })
}

/// `handoff` carries the rating just given.
pub fn conversation_rated(handoff: &Handoff) -> Value {
    let rating = handoff.rating.as_ref();
    json!({
        "conversation_id": handoff.conversation_id,
        "handoff_id": handoff.id,
        "score": rating.map(|r| r.score),
        "comment": rating.map(|r| redact(&r.comment)),
        "skill": handoff.skill,
        "agent_id": handoff.agent_id,
    })
}

/// The gap's text is redacted already (`dialogue::knowledge_gap`).
pub fn knowledge_gap_created(gap: &Gap) -> Value {
    json!({
        "gap_id": gap.id,
        "conversation_id": gap.conversation_id,
        "language": gap.language,
        "text": gap.text,
        "reason": gap.reason,
        "best_faq_id": gap.best_faq,
    })
}

pub fn faq_changed(change: &FaqChange) -> Value {
    let entry = &change.after;
    json!({
        "faq_id": entry.faq.id,
        "action": change.action.as_str(),
        "revision": entry.revision,
        "category": entry.faq.category,
        "skill": entry.faq.skill,
        "retired": entry.retired,
        "languages": entry.faq.translations.keys().collect::<Vec<_>>(),
        "author": entry.updated_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_to_the_millisecond() {
        assert_eq!(time(1_795_597_200_000), "2026-11-25T09:00:00.000Z");
        assert_eq!(time(1_795_597_200_123), "2026-11-25T09:00:00.123Z");
    }

    #[test]
    fn the_envelope_names_version_id_type_and_time() {
        let body: Value = serde_json::from_str(&envelope("e1", "faq.changed", 0, json!({"faq_id": "x"}))).unwrap();
        assert_eq!(body["version"], 1);
        assert_eq!(body["id"], "e1");
        assert_eq!(body["type"], "faq.changed");
        assert_eq!(body["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(body["data"]["faq_id"], "x");
    }
}
