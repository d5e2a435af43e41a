//! The FAQ entries with their revisions, the knowledge version, and the open knowledge gaps on PostgreSQL.

use super::*;

#[async_trait]
impl KnowledgeStore for PgStore {
    async fn faqs(&self) -> Result<Vec<StoredFaq>, StoreError> {
        let rows = sqlx::query("SELECT * FROM faqs ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(stored_faq_from_row).collect()
    }

    async fn write_knowledge(&self, write: &KnowledgeWrite) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // One knowledge writer at a time across replicas: versions become visible in order, so a model stamped
        // with version v learned every change up to v.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(KNOWLEDGE_LOCK).execute(&mut *tx).await?;
        for change in &write.changes {
            let entry = &change.after;
            let content = to_json(&entry.faq.translations)?;
            let result =
                match change.expected_revision {
                    None => sqlx::query(
                        "INSERT INTO faqs (id, category, skill, content, revision, retired, updated_at, updated_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&entry.faq.id)
                    .bind(&entry.faq.category)
                    .bind(&entry.faq.skill)
                    .bind(&content)
                    .bind(entry.revision)
                    .bind(entry.retired)
                    .bind(entry.updated_at)
                    .bind(&entry.updated_by)
                    .execute(&mut *tx)
                    .await?,
                    Some(expected) => {
                        sqlx::query(
                            "UPDATE faqs SET category = $1, skill = $2, content = $3, revision = $4, retired = $5, \
                         updated_at = $6, updated_by = $7 WHERE id = $8 AND revision = $9",
                        )
                        .bind(&entry.faq.category)
                        .bind(&entry.faq.skill)
                        .bind(&content)
                        .bind(entry.revision)
                        .bind(entry.retired)
                        .bind(entry.updated_at)
                        .bind(&entry.updated_by)
                        .bind(&entry.faq.id)
                        .bind(expected)
                        .execute(&mut *tx)
                        .await?
                    }
                };
            if result.rows_affected() != 1 {
                return Err(StoreError::Conflict);
            }
            let snapshot = serde_json::json!({
                "category": entry.faq.category,
                "skill": entry.faq.skill,
                "translations": entry.faq.translations,
                "retired": entry.retired,
            });
            sqlx::query(
                "INSERT INTO faq_revisions (faq_id, revision, action, author, at, snapshot) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&entry.faq.id)
            .bind(entry.revision)
            .bind(change.action.as_str())
            .bind(&entry.updated_by)
            .bind(entry.updated_at)
            .bind(snapshot.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for gap in &write.resolve_gaps {
            sqlx::query(
                "UPDATE knowledge_gaps SET resolved_at = $1, resolved_faq = $2 WHERE id = $3 AND resolved_at IS NULL",
            )
            .bind(write.at)
            .bind(&write.resolved_faq)
            .bind(gap)
            .execute(&mut *tx)
            .await?;
        }
        insert_deliveries(&mut tx, &write.deliveries).await?;
        sqlx::query("SELECT pg_notify($1, $2 || ' ' || (SELECT COALESCE(MAX(version), 0) FROM faq_revisions)::text)")
            .bind(KNOWLEDGE)
            .bind(&self.origin)
            .execute(&mut *tx)
            .await?;
        crate::store::finish(tx).await?;
        Ok(())
    }

    async fn faq_revisions(
        &self,
        faq_id: Option<&str>,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FaqRevision>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM faq_revisions WHERE ($1::text IS NULL OR faq_id = $1) \
             AND ($2::bigint IS NULL OR version < $2) ORDER BY version DESC LIMIT $3",
        )
        .bind(faq_id)
        .bind(before_version)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                #[derive(serde::Deserialize)]
                struct Snapshot {
                    category: String,
                    skill: String,
                    translations: Content,
                    retired: bool,
                }
                let snapshot: Snapshot = from_json(&row.try_get::<String, _>("snapshot")?)?;
                Ok(FaqRevision {
                    version: row.try_get("version")?,
                    action: row.try_get("action")?,
                    entry: StoredFaq {
                        faq: Faq {
                            id: row.try_get("faq_id")?,
                            category: snapshot.category,
                            skill: snapshot.skill,
                            translations: snapshot.translations,
                        },
                        revision: row.try_get("revision")?,
                        retired: snapshot.retired,
                        updated_at: row.try_get("at")?,
                        updated_by: row.try_get("author")?,
                    },
                })
            })
            .collect()
    }

    async fn knowledge_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0)::bigint AS version FROM faq_revisions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    async fn open_gaps(&self, limit: u32) -> Result<Vec<Gap>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM knowledge_gaps WHERE resolved_at IS NULL ORDER BY created_at, id LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(Gap {
                    id: row.try_get("id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    language: row.try_get("language")?,
                    text: row.try_get("text")?,
                    reason: row.try_get("reason")?,
                    best_faq: row.try_get("best_faq")?,
                    created_at: row.try_get("created_at")?,
                    resolved_at: row.try_get("resolved_at")?,
                    resolved_faq: row.try_get("resolved_faq")?,
                })
            })
            .collect()
    }
}
