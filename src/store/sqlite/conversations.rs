//! Conversations and their turns and events on SQLite.

use super::*;

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let owned = OwnedCommit {
            conversation: commit.conversation.clone(),
            events: commit.events.to_vec(),
            turn: commit.turn.cloned(),
            handoff: commit.handoff.map(|(handoff, expected)| (handoff.clone(), expected)),
            gap: commit.gap.cloned(),
            deliveries: commit.deliveries.to_vec(),
        };
        self.writer.commit(owned).await
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        if let Some(conversation) = self.recent.get(id) {
            return Ok(Some(conversation));
        }
        let row = sqlx::query("SELECT * FROM conversations WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn turn(&self, conversation_id: &str, client_message_id: &str) -> Result<Option<Turn>, StoreError> {
        let row = sqlx::query("SELECT turn FROM events WHERE conversation_id = ? AND client_message_id = ?")
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
        let rows =
            sqlx::query("SELECT seq, created_at, body FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq")
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
        let rows = sqlx::query("SELECT * FROM conversations WHERE customer_id = ? ORDER BY created_at DESC LIMIT ?")
            .bind(customer_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }
}
