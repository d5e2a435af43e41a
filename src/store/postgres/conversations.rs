//! Conversations and their turns and events on PostgreSQL.

use super::*;

#[async_trait]
impl ConversationStore for PgStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        save_conversation(&mut tx, commit.conversation).await?;
        insert_events(&mut tx, commit.events, commit.turn).await?;
        let mut handoff_change = None;
        if let Some((handoff, expected)) = commit.handoff {
            let from_skill = save_handoff(&mut tx, handoff, expected).await?;
            handoff_change = Some(format!(
                "{} {} {} {} {from_skill}",
                self.origin,
                handoff.id,
                state_name(expected),
                handoff.state.as_str()
            ));
        }
        if let Some(gap) = commit.gap {
            insert_gap(&mut tx, gap).await?;
        }
        insert_deliveries(&mut tx, commit.deliveries).await?;
        // Ids only: the other replicas re-read the rows. Delivered when (and only if) the transaction commits.
        let events = match (commit.events.first(), commit.events.last()) {
            (Some(first), Some(last)) => {
                Some(format!("{} {} {} {}", self.origin, commit.conversation.id, first.seq, last.seq))
            }
            _ => None,
        };
        if events.is_some() || handoff_change.is_some() {
            sqlx::query(
                "SELECT pg_notify($1, $2) WHERE $2 IS NOT NULL UNION ALL SELECT pg_notify($3, $4) WHERE $4 IS NOT NULL",
            )
            .bind(EVENTS)
            .bind(events)
            .bind(QUEUE)
            .bind(handoff_change)
            .execute(&mut *tx)
            .await?;
        }
        crate::store::finish(tx).await?;
        Ok(())
    }

    async fn lock_conversation(&self, conversation_id: &str) -> Result<ConversationLock, StoreError> {
        let mut lock = AdvisoryLock { connection: Some(self.locks.acquire().await?) };
        let connection = lock.connection.as_mut().expect("just acquired");
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(conversation_id)
            .execute(&mut **connection)
            .await?;
        Ok(ConversationLock::holding(lock))
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError> {
        let row = sqlx::query("SELECT turn FROM events WHERE conversation_id = $1 AND client_message_id = $2")
            .bind(conversation_id)
            .bind(client_message_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let turn: Option<String> = row.try_get("turn")?;
                turn.map(|t| from_json(&t)).transpose()
            }
        }
    }

    async fn events(&self, conversation_id: &str, after_seq: u64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, created_at, body FROM events WHERE conversation_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(conversation_id)
        .bind(after_seq as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    conversation_id: conversation_id.to_owned(),
                    seq: row.try_get::<i64, _>("seq")? as u64,
                    created_at: row.try_get("created_at")?,
                    body: from_json(&row.try_get::<String, _>("body")?)?,
                })
            })
            .collect()
    }

    async fn conversations_of_customer(&self, customer_id: &str, limit: u32) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query("SELECT * FROM conversations WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2")
            .bind(customer_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }
}
