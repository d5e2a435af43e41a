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
        let rows = sqlx::query(
            "SELECT e.turn FROM events e JOIN conversations c ON c.id = e.conversation_id \
             WHERE c.created_at >= $1 AND c.created_at < $2 AND e.turn IS NOT NULL ORDER BY e.conversation_id, e.seq",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let turns = rows.iter().map(|row| from_json(&row.try_get::<String, _>("turn")?)).collect::<Result<_, _>>()?;
        Ok(StatsRecords { conversations, handoffs, turns })
    }
}
