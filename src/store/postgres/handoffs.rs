//! Hand-offs on PostgreSQL.

use super::*;

#[async_trait]
impl HandoffStore for PgStore {
    async fn handoff(&self, id: &str) -> Result<Option<Handoff>, StoreError> {
        let rows = sqlx::query("SELECT record FROM handoffs WHERE id = $1").bind(id).fetch_all(&self.pool).await?;
        Ok(handoffs_from_rows(&rows)?.pop())
    }

    async fn latest_handoff(&self, conversation_id: &str) -> Result<Option<Handoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM handoffs WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(handoffs_from_rows(&rows)?.pop())
    }

    async fn handoffs(
        &self,
        filter: &HandoffFilter,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Handoff>, StoreError> {
        let skills = (!filter.skills.is_empty()).then_some(&filter.skills);
        let rows = sqlx::query(
            "SELECT record FROM handoffs WHERE ($1::text IS NULL OR state = $1) \
             AND ($2::text[] IS NULL OR skill = ANY($2)) \
             AND ($3::bigint IS NULL OR (created_at, id) < ($3, $4::text)) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(filter.state.map(HandoffState::as_str))
        .bind(skills)
        .bind(after.map(|a| a.at))
        .bind(after.map(|a| a.id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        handoffs_from_rows(&rows)
    }

    async fn queued_ahead(&self, skill: &str, priority: i32, created_at: i64) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS ahead FROM handoffs WHERE state = 'queued' AND skill = $1 \
             AND (priority > $2 OR (priority = $2 AND created_at < $3))",
        )
        .bind(skill)
        .bind(priority)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("ahead")? as u64)
    }

    async fn recent_waits(&self, skill: &str, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT claimed_at - created_at AS wait FROM handoffs WHERE skill = $1 AND claimed_at IS NOT NULL \
             ORDER BY claimed_at DESC LIMIT $2",
        )
        .bind(skill)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get::<i64, _>("wait")?)).collect()
    }
}
