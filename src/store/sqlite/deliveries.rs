//! The webhook outbox on SQLite.

use super::*;

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim_deliveries(
        &self,
        owner: &str,
        webhook: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let claim = Claim { owner: owner.to_owned(), webhook: webhook.to_owned(), now, lease_until, limit };
        self.writer.claim(claim).await
    }

    async fn record_attempts(&self, outcomes: &[AttemptOutcome], now: i64) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.writer.record(outcomes.to_vec(), now).await
    }

    async fn failed_deliveries(
        &self,
        webhook: Option<&str>,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE state = 'failed' AND (?1 IS NULL OR webhook = ?1) \
             AND (?2 IS NULL OR updated_at < ?2 OR (updated_at = ?2 AND id < ?3)) \
             ORDER BY updated_at DESC, id DESC LIMIT ?4",
        )
        .bind(webhook)
        .bind(after.map(|a| a.at))
        .bind(after.map(|a| a.id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn redeliver(&self, which: Redeliver<'_>, now: i64, audit: &AuditEntry) -> Result<u64, StoreError> {
        let (id, webhook) = match which {
            Redeliver::One(id) => (Some(id), None),
            Redeliver::Webhook(webhook) => (None, Some(webhook)),
        };
        let mut tx = self.pool.begin().await?;
        let count = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', attempts_before = attempts, next_attempt_at = 0, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?1 \
             WHERE state = 'failed' AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR webhook = ?3)",
        )
        .bind(now)
        .bind(id)
        .bind(webhook)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if count > 0 {
            let mut audit = audit.clone();
            audit.detail["redelivered"] = count.into();
            insert_audit(&mut tx, &audit).await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    async fn fail_unconfigured_deliveries(&self, configured: &[String], now: i64) -> Result<u64, StoreError> {
        let failed = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook is no longer configured', \
             updated_at = ?1, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'pending' AND webhook NOT IN (SELECT value FROM json_each(?2))",
        )
        .bind(now)
        .bind(to_json(&configured)?)
        .execute(&self.pool)
        .await?;
        Ok(failed.rows_affected())
    }

    async fn release_delivery_leases(&self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_until IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        let rows = sqlx::query("SELECT webhook, state, COUNT(*) AS n FROM webhook_deliveries GROUP BY webhook, state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxDepth {
                    webhook: row.try_get("webhook")?,
                    state: row.try_get("state")?,
                    count: row.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }
}
