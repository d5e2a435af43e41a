//! A customer's erasure and the redaction of transcripts past their retention on SQLite.

use super::*;

#[async_trait]
impl PrivacyStore for SqliteStore {
    async fn erase_customer(&self, customer_id: &str, actor: &str, at: i64) -> Result<Erased, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writes first (see write_knowledge): each DELETE reports how much it removed.
        let gaps = sqlx::query(
            "DELETE FROM knowledge_gaps WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let messages = sqlx::query(
            "DELETE FROM events WHERE kind = 'message' \
                 AND conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)",
        )
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM events WHERE conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
        let ratings = sqlx::query("DELETE FROM handoffs WHERE customer_id = ? AND rating IS NOT NULL")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let handoffs = ratings
            + sqlx::query("DELETE FROM handoffs WHERE customer_id = ?")
                .bind(customer_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let conversations = sqlx::query("DELETE FROM conversations WHERE customer_id = ?")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let erased = Erased { conversations, messages, handoffs, ratings, gaps };
        let detail = serde_json::to_value(erased).map_err(corrupt)?;
        insert_audit(&mut tx, &AuditEntry { at, actor: actor.to_owned(), action: "erase_customer".into(), detail })
            .await?;
        tx.commit().await?;
        self.recent.forget(|conversation| conversation.customer_id == customer_id);
        Ok(erased)
    }

    async fn redact_before(&self, before: i64, redact: for<'t> fn(&'t str) -> String) -> Result<u64, StoreError> {
        let mut rewritten = 0;
        let mut tx = self.pool.begin().await?;
        // A write first, so the transaction holds the write lock before it reads (see write_knowledge).
        sqlx::query("UPDATE events SET turn = NULL WHERE redacted = 0 AND created_at < ? AND turn IS NOT NULL")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let events = sqlx::query(
            "SELECT conversation_id, seq, body FROM events WHERE redacted = 0 AND created_at < ? AND kind = 'message'",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for row in &events {
            let mut body: EventBody = from_json(&row.try_get::<String, _>("body")?)?;
            body.redact_text(redact);
            sqlx::query("UPDATE events SET body = ?, redacted = 1 WHERE conversation_id = ? AND seq = ?")
                .bind(to_json(&body)?)
                .bind(row.try_get::<String, _>("conversation_id")?)
                .bind(row.try_get::<i64, _>("seq")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        sqlx::query("UPDATE events SET redacted = 1 WHERE redacted = 0 AND created_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let handoffs = sqlx::query("SELECT id, record FROM handoffs WHERE redacted = 0 AND created_at < ?")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        for row in &handoffs {
            let mut handoff: Handoff = from_json(&row.try_get::<String, _>("record")?)?;
            handoff.redact_text(redact);
            sqlx::query("UPDATE handoffs SET record = ?, redacted = 1 WHERE id = ?")
                .bind(to_json(&handoff)?)
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        let conversations = sqlx::query("SELECT id, memory FROM conversations WHERE redacted = 0 AND updated_at < ?")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        for row in &conversations {
            let mut memory: crate::conversation::DialogueMemory = from_json(&row.try_get::<String, _>("memory")?)?;
            memory.redact_text(redact);
            sqlx::query("UPDATE conversations SET memory = ?, redacted = 1 WHERE id = ?")
                .bind(to_json(&memory)?)
                .bind(row.try_get::<String, _>("id")?)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        // A failed delivery older than the transcripts is of no use to anyone, and may name a customer.
        sqlx::query("DELETE FROM webhook_deliveries WHERE state = 'failed' AND created_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Their memory was rewritten; which ones is not worth tracking for a daily sweep.
        self.recent.forget(|_| true);
        Ok(rewritten)
    }
}
