//! The webhook outbox on PostgreSQL.

use super::*;

#[async_trait]
impl DeliveryStore for PgStore {
    async fn claim_deliveries(
        &self,
        owner: &str,
        webhook: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        // SKIP LOCKED: replicas claiming at once take different rows instead of queueing behind each other. A row
        // another replica claimed and committed meanwhile is re-checked against its new lease and left alone.
        let rows = sqlx::query(
            "WITH due AS (SELECT d.seq FROM webhook_deliveries d \
                 WHERE d.state = 'pending' AND d.webhook = $5 AND d.next_attempt_at <= $3 \
                 AND (d.lease_until IS NULL OR d.lease_until <= $3) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.state = 'pending' \
                     AND e.webhook = d.webhook AND e.ordering_key = d.ordering_key AND e.seq < d.seq) \
                 ORDER BY d.seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE webhook_deliveries w SET attempts = w.attempts + 1, lease_owner = $1, lease_until = $2 \
             FROM due WHERE w.seq = due.seq RETURNING w.*",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .bind(webhook)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: Vec<(i64, Delivery)> = rows
            .iter()
            .map(|row| Ok((row.try_get("seq")?, delivery_from_row(row)?)))
            .collect::<Result<_, StoreError>>()?;
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
    }

    async fn record_attempts(&self, outcomes: &[AttemptOutcome], now: i64) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let delivered: Vec<String> =
            outcomes.iter().filter(|o| o.result == AttemptResult::Delivered).map(|o| o.delivery_id.clone()).collect();
        let mut tx = self.pool.begin().await?;
        // Not waiting for the flush: an outcome lost in a database crash only means the delivery is made again
        // (at least once, with a new attempt number, since its claim was flushed).
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        if !delivered.is_empty() {
            sqlx::query("DELETE FROM webhook_deliveries WHERE id = ANY($1)").bind(&delivered).execute(&mut *tx).await?;
        }
        for outcome in outcomes {
            let Some((state, next, error)) = outcome.result.kept_row() else { continue };
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, next_attempt_at = $2, last_error = $3, updated_at = $4, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $5 AND attempts = $6",
            )
            .bind(state)
            .bind(next)
            .bind(error)
            .bind(now)
            .bind(&outcome.delivery_id)
            .bind(outcome.attempt as i32)
            .execute(&mut *tx)
            .await?;
        }
        crate::store::finish(tx).await?;
        Ok(())
    }

    async fn failed_deliveries(
        &self,
        webhook: Option<&str>,
        after: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE state = 'failed' AND ($1::text IS NULL OR webhook = $1) \
             AND ($2::bigint IS NULL OR updated_at < $2 OR (updated_at = $2 AND id < $3)) \
             ORDER BY updated_at DESC, id DESC LIMIT $4",
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
             lease_owner = NULL, lease_until = NULL, updated_at = $1 \
             WHERE state = 'failed' AND ($2::text IS NULL OR id = $2) AND ($3::text IS NULL OR webhook = $3)",
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
        crate::store::finish(tx).await?;
        Ok(count)
    }

    async fn fail_unconfigured_deliveries(&self, configured: &[String], now: i64) -> Result<u64, StoreError> {
        let failed = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook is no longer configured', \
             updated_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'pending' AND NOT (webhook = ANY($2))",
        )
        .bind(now)
        .bind(configured)
        .execute(&self.pool)
        .await?;
        Ok(failed.rows_affected())
    }

    async fn outbox_depth(&self) -> Result<Vec<OutboxDepth>, StoreError> {
        let rows =
            sqlx::query("SELECT webhook, state, COUNT(*)::bigint AS n FROM webhook_deliveries GROUP BY webhook, state")
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
