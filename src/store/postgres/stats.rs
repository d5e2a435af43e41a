//! What the KPIs are computed from on PostgreSQL.

use super::*;

#[async_trait]
impl StatsStore for PgStore {
    async fn stats_records(&self, start: i64, end: i64) -> Result<StatsRecords, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM conversations WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT h.record FROM handoffs h JOIN conversations c ON c.id = h.conversation_id \
             WHERE c.created_at >= $1 AND c.created_at < $2 ORDER BY h.created_at, h.id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let handoffs = handoffs_from_rows(&rows)?;
        // The turns' facts, not the turns: a turn's JSON is a hundred times larger than what the KPIs read of it.
        let rows = sqlx::query(
            "SELECT f.* FROM turn_facts f JOIN conversations c ON c.id = f.conversation_id \
             WHERE c.created_at >= $1 AND c.created_at < $2 ORDER BY f.conversation_id, f.seq",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let turns = rows.iter().map(turn_facts_from_row).collect::<Result<_, _>>()?;
        Ok(StatsRecords { conversations, handoffs, turns })
    }
}
