//! What the KPIs are computed from on SQLite.

use super::*;

#[async_trait]
impl StatsStore for SqliteStore {
    async fn stats_records(&self, start: i64, end: i64) -> Result<StatsRecords, StoreError> {
        // Three range scans rather than one join: each row kind keeps its own shape, and conversations last
        // minutes, so the range's hand-offs and turns are few compared with the whole database.
        let rows =
            sqlx::query("SELECT * FROM conversations WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id")
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
        let conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT h.record FROM handoffs h JOIN conversations c ON c.id = h.conversation_id \
             WHERE c.created_at >= ? AND c.created_at < ? ORDER BY h.created_at, h.id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let handoffs = handoffs_from_rows(&rows)?;
        // The turns' facts, not the turns: a turn's JSON is a hundred times larger than what the KPIs read of it.
        let rows = sqlx::query(
            "SELECT f.* FROM turn_facts f JOIN conversations c ON c.id = f.conversation_id \
             WHERE c.created_at >= ? AND c.created_at < ? ORDER BY f.conversation_id, f.seq",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let turns = rows.iter().map(turn_facts_from_row).collect::<Result<_, _>>()?;
        Ok(StatsRecords { conversations, handoffs, turns })
    }
}
