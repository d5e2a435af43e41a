//! The database as replicas share it on PostgreSQL.

use super::*;

#[async_trait]
impl ChangeFeed for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn changes(&self) -> Result<Option<mpsc::Receiver<Change>>, StoreError> {
        let listener = subscribe(&self.pool).await?;
        let (sender, receiver) = mpsc::channel(CHANGES_BUFFER);
        tokio::spawn(listen(self.pool.clone(), self.origin.clone(), sender, listener));
        Ok(Some(receiver))
    }
}
