//! APIs (each with its keyspace).

use super::{Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiRow {
    pub id: String,
    pub workspace_id: String,
    pub keyspace_id: String,
    pub name: String,
}

impl Store {
    pub async fn insert_api(&self, api: &ApiRow, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO apis (id, workspace_id, keyspace_id, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&api.id)
            .bind(&api.workspace_id)
            .bind(&api.keyspace_id)
            .bind(&api.name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A live API of the workspace.
    pub async fn find_api(&self, workspace_id: &str, api_id: &str) -> StoreResult<Option<ApiRow>> {
        self.find(
            "SELECT id, workspace_id, keyspace_id, name FROM apis WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL",
            |q| q.bind(api_id).bind(workspace_id),
        )
        .await
    }

    /// Deletes an API; its keys stop verifying because snapshots see the deleted API.
    pub async fn delete_api(&self, api_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        sqlx::query("UPDATE apis SET deleted_at = $1 WHERE id = $2")
            .bind(now)
            .bind(api_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE keys SET deleted_at = $1 WHERE api_id = $2 AND deleted_at IS NULL")
            .bind(now)
            .bind(api_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
