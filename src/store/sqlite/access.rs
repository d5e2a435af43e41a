//! API keys, the conversation-token secret, and the audit log on SQLite.

use super::*;

#[async_trait]
impl AccessStore for SqliteStore {
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKey {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    display_name: row.try_get("display_name")?,
                    role: Role::parse(&row.try_get::<String, _>("role")?).ok_or_else(|| corrupt("role"))?,
                    skills: from_json(&row.try_get::<String, _>("skills")?)?,
                    secret_hash: row.try_get("secret_hash")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    async fn insert_api_key(&self, key: &ApiKey, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, skills, secret_hash, created_at, revoked_at, display_name) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(to_json(&key.skills)?)
        .bind(&key.secret_hash)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(&key.display_name)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token_secret(&self, fresh: &str, now: i64) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, secret, created_at) VALUES ('conversation_tokens', ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(fresh)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let secret = sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = 'conversation_tokens'")
            .fetch_one(&self.pool)
            .await?;
        Ok(secret)
    }

    async fn revoke_api_key(&self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(audit.at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if revoked {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        insert_audit(&mut *self.pool.acquire().await?, audit).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    detail: serde_json::from_str(&row.try_get::<String, _>("detail")?).map_err(corrupt)?,
                })
            })
            .collect()
    }
}
