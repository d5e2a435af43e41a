//! Reading loket's rows back, written once for both backends: the columns are the same in SQLite and PostgreSQL
//! (text, 64-bit integers, booleans, JSON as text), so each backend only says how its rows read a column
//! ([`Columns`]) and the decoding of a conversation, a delivery or an entry lives here.

use super::{Delivery, StoreError, StoredFaq};
use crate::conversation::{Channel, Conversation, Handoff, State, Tier};
use crate::knowledge::{Faq, Translation};

/// How a backend's row reads the kinds of column loket stores.
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn text_opt(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    /// A small count (a delivery's attempts): SQLite reads its INTEGER as 64 bits, PostgreSQL's as 32.
    fn count(&self, column: &str) -> Result<u32, sqlx::Error>;
}

/// The stored JSON of an entry's content: what varies per language.
pub(super) type Content = std::collections::BTreeMap<String, Translation>;

pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

pub(super) fn conversation_from_row(row: &impl Columns) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: row.text("id")?,
        customer_id: row.text("customer_id")?,
        tier: Tier::parse(&row.text("tier")?).ok_or_else(|| corrupt("tier"))?,
        channel: Channel::parse(&row.text("channel")?).ok_or_else(|| corrupt("channel"))?,
        language: row.text("language")?,
        language_fixed: row.flag("language_fixed")?,
        metadata: from_json(&row.text("metadata")?)?,
        state: State::parse(&row.text("state")?).ok_or_else(|| corrupt("state"))?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        last_seq: row.int("last_seq")? as u64,
        memory: from_json(&row.text("memory")?)?,
        owner: row.text_opt("owner")?,
    })
}

pub(super) fn delivery_from_row(row: &impl Columns) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.text("id")?,
        event_id: row.text("event_id")?,
        event: row.text("event")?,
        webhook: row.text("webhook")?,
        conversation_id: row.text_opt("conversation_id")?,
        payload: row.text("payload")?,
        created_at: row.int("created_at")?,
        failed: row.text("state")? == "failed",
        attempts: row.count("attempts")?,
        attempts_before: row.count("attempts_before")?,
        last_error: row.text_opt("last_error")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) fn stored_faq_from_row(row: &impl Columns) -> Result<StoredFaq, StoreError> {
    let content: Content = from_json(&row.text("content")?)?;
    Ok(StoredFaq {
        faq: Faq {
            id: row.text("id")?,
            category: row.text("category")?,
            skill: row.text("skill")?,
            translations: content,
        },
        revision: row.int("revision")?,
        retired: row.flag("retired")?,
        updated_at: row.int("updated_at")?,
        updated_by: row.text("updated_by")?,
    })
}

/// Hand-offs are stored whole, as JSON, beside the columns their queries filter on.
pub(super) fn handoffs_from_rows(rows: &[impl Columns]) -> Result<Vec<Handoff>, StoreError> {
    rows.iter().map(|row| from_json(&row.text("record")?)).collect()
}
