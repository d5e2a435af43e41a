//! What the KPIs are computed from on SQLite: the scope's conversations selected here, each kind of record sent as
//! one JSON array (see `store::stats`).

use super::*;
use crate::conversation::{Channel, Tier};
use crate::store::stats::{Array, GAP_TEXTS, decode};
use crate::store::{StatsDetail, StatsScope};

/// `$select` over the conversations of the scope (`c`, `conversation_stats`), then `$rest`. The parameters, in
/// the order they are bound: ?1 start, ?2 end, ?3 channel, ?4 tier, ?5 language, ?6 skill (each NULL: any), ?7 the
/// skill's FAQ entries as a JSON array. A conversation's skill is its latest hand-off's, else (never handed off) its
/// last answered entry's.
macro_rules! scoped {
    ($select:literal, $rest:literal) => {
        concat!(
            $select,
            " WHERE c.created_at >= ?1 AND c.created_at < ?2 AND (?3 IS NULL OR c.channel = ?3) \
             AND (?4 IS NULL OR c.tier = ?4) AND (?5 IS NULL OR c.language = ?5) \
             AND (?6 IS NULL OR c.handoff_skill = ?6 \
                  OR (c.handoff_skill IS NULL AND c.last_answered_faq IN (SELECT value FROM json_each(?7)))) ",
            $rest
        )
    };
}

/// From the index that carries every column, so the table itself is not visited.
const CONVERSATIONS: &str = scoped!(
    "SELECT json_group_array(json_array(c.created_at, c.contact, c.handoff_skill IS NOT NULL, c.clarified, \
     c.declined)) FROM conversation_stats c",
    ""
);

/// With a skill, only the hand-offs routed to it.
const HANDOFFS: &str = scoped!(
    "SELECT json_group_array(json_array(c.created_at, h.pickable_at, h.state, h.reason, h.claimed_at, \
     h.resolved_at, h.rating)) FROM conversation_stats c JOIN handoffs h ON h.conversation_id = c.conversation_id",
    "AND (?6 IS NULL OR h.skill = ?6)"
);

/// Messages kept silently for an agent were not decided on by the bot: they count in neither top list.
const INTENTS: &str = scoped!(
    "SELECT json_group_array(json_array(intent, n)) FROM (SELECT f.intent, count(*) AS n \
     FROM conversation_stats c JOIN turn_facts f ON f.conversation_id = c.conversation_id",
    "AND f.kind <> 'silent' AND f.intent IS NOT NULL GROUP BY f.intent)"
);

/// The most recent [`GAP_TEXTS`] unanswered messages per intent, each with its intent's count (?8: GAP_TEXTS).
const GAPS: &str = scoped!(
    "SELECT json_group_array(json_array(intent, n, created_at, text)) FROM ( \
     SELECT COALESCE(f.intent, '') AS intent, f.created_at, COALESCE(f.unanswered_text, '') AS text, \
     count(*) OVER (PARTITION BY COALESCE(f.intent, '')) AS n, \
     row_number() OVER (PARTITION BY COALESCE(f.intent, '') ORDER BY f.created_at DESC) AS r \
     FROM conversation_stats c JOIN turn_facts f ON f.conversation_id = c.conversation_id",
    "AND f.kind <> 'silent' AND f.handoff_reason IN ('low_confidence', 'repeated_failure')) WHERE r <= ?8"
);

#[async_trait]
impl StatsStore for SqliteStore {
    async fn stats_records(&self, scope: &StatsScope, detail: StatsDetail) -> Result<StatsRecords, StoreError> {
        let faqs = to_json(&scope.skill_faqs)?;
        // One read transaction, so the hand-offs and turns belong to the same conversations.
        let mut tx = self.pool.begin().await?;
        let mut arrays = Vec::new();
        for &array in Array::needed(detail) {
            let sql = match array {
                Array::Conversations => CONVERSATIONS,
                Array::Handoffs => HANDOFFS,
                Array::Intents => INTENTS,
                Array::Gaps => GAPS,
            };
            let query = sqlx::query_scalar(sql)
                .bind(scope.start)
                .bind(scope.end)
                .bind(scope.channel.map(Channel::as_str))
                .bind(scope.tier.map(Tier::as_str))
                .bind(scope.language.as_deref())
                .bind(scope.skill.as_deref())
                .bind(faqs.as_str());
            let query = if array == Array::Gaps { query.bind(GAP_TEXTS) } else { query };
            arrays.push((array, query.fetch_one(&mut *tx).await?));
        }
        tx.rollback().await?;
        decode(arrays)
    }
}
