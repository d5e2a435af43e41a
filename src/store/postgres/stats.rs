//! What the KPIs are computed from on PostgreSQL: each kind of record as one JSON array (see `store::stats`).

use super::*;
use crate::store::StatsDetail;
use crate::store::stats::{conversations_from_json, gaps_from_json, handoffs_from_json, intents_from_json};

/// The conversations started in the range, from the index that carries every column the KPIs read. The flags are
/// sent as 0 and 1, as SQLite stores them.
const CONVERSATIONS: &str = "SELECT COALESCE(json_agg(json_build_array(conversation_id, created_at, channel, tier, \
     language, turns, clarified::int, declined::int, last_answered_faq)), '[]')::text \
     FROM conversation_stats WHERE created_at >= $1 AND created_at < $2";

const HANDOFFS: &str = "SELECT COALESCE(json_agg(json_build_array(h.id, h.conversation_id, h.created_at, \
     h.pickable_at, h.state, h.skill, h.reason, h.claimed_at, h.resolved_at, h.rating)), '[]')::text \
     FROM conversation_stats c JOIN handoffs h ON h.conversation_id = c.conversation_id \
     WHERE c.created_at >= $1 AND c.created_at < $2";

/// Messages kept silently for an agent were not decided on by the bot: they count in neither top list.
const INTENTS: &str = "SELECT COALESCE(json_agg(json_build_array(conversation_id, intent, n)), '[]')::text FROM ( \
     SELECT f.conversation_id, f.intent, count(*) AS n \
     FROM conversation_stats c JOIN turn_facts f ON f.conversation_id = c.conversation_id \
     WHERE c.created_at >= $1 AND c.created_at < $2 AND f.kind <> 'silent' AND f.intent IS NOT NULL \
     GROUP BY f.conversation_id, f.intent) AS counted";

const GAPS: &str = "SELECT COALESCE(json_agg(json_build_array(f.conversation_id, f.created_at, \
     COALESCE(f.intent, ''), COALESCE(f.unanswered_text, ''))), '[]')::text \
     FROM conversation_stats c JOIN turn_facts f ON f.conversation_id = c.conversation_id \
     WHERE c.created_at >= $1 AND c.created_at < $2 AND f.kind <> 'silent' \
     AND f.handoff_reason IN ('low_confidence', 'repeated_failure')";

#[async_trait]
impl StatsStore for PgStore {
    async fn stats_records(&self, start: i64, end: i64, detail: StatsDetail) -> Result<StatsRecords, StoreError> {
        // One snapshot, so the hand-offs and turns belong to the same conversations.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let mut array = async |sql: &'static str| -> Result<String, StoreError> {
            Ok(sqlx::query_scalar(sql).bind(start).bind(end).fetch_one(&mut *tx).await?)
        };
        let mut records = StatsRecords {
            conversations: conversations_from_json(&array(CONVERSATIONS).await?)?,
            handoffs: handoffs_from_json(&array(HANDOFFS).await?)?,
            ..StatsRecords::default()
        };
        if detail == StatsDetail::TopLists {
            records.intents = intents_from_json(&array(INTENTS).await?)?;
            records.gaps = gaps_from_json(&array(GAPS).await?)?;
        }
        drop(array);
        tx.rollback().await?;
        Ok(records)
    }
}
