//! Rate-limit overrides for `ratelimit.limit`: per identifier, per namespace.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::{Store, StoreResult, to_i64, to_u64};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub id: String,
    pub namespace: String,
    pub identifier: String,
    pub limit: u64,
    pub duration: u64,
}

/// By hand: the limit is the column `lim`.
impl FromRow<'_, AnyRow> for OverrideRow {
    fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(OverrideRow {
            id: r.try_get("id")?,
            namespace: r.try_get("namespace")?,
            identifier: r.try_get("identifier")?,
            limit: to_u64(r.try_get("lim")?),
            duration: to_u64(r.try_get("duration")?),
        })
    }
}

impl Store {
    /// Creates or replaces the override; returns its id.
    pub async fn set_override(
        &self,
        workspace_id: &str,
        o: &OverrideRow,
        now: i64,
    ) -> StoreResult<String> {
        let mut tx = self.transaction().await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM ratelimit_overrides WHERE workspace_id = $1 AND namespace = $2 AND identifier = $3",
        )
        .bind(workspace_id)
        .bind(&o.namespace)
        .bind(&o.identifier)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some(id) => {
                sqlx::query("UPDATE ratelimit_overrides SET lim = $1, duration = $2 WHERE id = $3")
                    .bind(to_i64(o.limit))
                    .bind(to_i64(o.duration))
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                sqlx::query(
                    "INSERT INTO ratelimit_overrides (id, workspace_id, namespace, identifier, lim, duration, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&o.id)
                .bind(workspace_id)
                .bind(&o.namespace)
                .bind(&o.identifier)
                .bind(to_i64(o.limit))
                .bind(to_i64(o.duration))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                o.id.clone()
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    pub async fn find_override(
        &self,
        workspace_id: &str,
        namespace: &str,
        identifier: &str,
    ) -> StoreResult<Option<OverrideRow>> {
        self.find(
            "SELECT id, namespace, identifier, lim, duration FROM ratelimit_overrides
              WHERE workspace_id = $1 AND namespace = $2 AND identifier = $3",
            |q| q.bind(workspace_id).bind(namespace).bind(identifier),
        )
        .await
    }

    /// Every override of a namespace, for the in-memory override cache.
    pub async fn namespace_overrides(
        &self,
        workspace_id: &str,
        namespace: &str,
    ) -> StoreResult<Vec<OverrideRow>> {
        self.find_all(
            "SELECT id, namespace, identifier, lim, duration FROM ratelimit_overrides
              WHERE workspace_id = $1 AND namespace = $2",
            |q| q.bind(workspace_id).bind(namespace),
        )
        .await
    }

    pub async fn list_overrides(
        &self,
        workspace_id: &str,
        namespace: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<OverrideRow>> {
        self.find_all(
            "SELECT id, namespace, identifier, lim, duration FROM ratelimit_overrides
              WHERE workspace_id = $1 AND namespace = $2 AND id > $3 ORDER BY id LIMIT $4",
            |q| {
                q.bind(workspace_id)
                    .bind(namespace)
                    .bind(cursor.unwrap_or(""))
                    .bind(i64::from(limit))
            },
        )
        .await
    }

    pub async fn delete_override(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM ratelimit_overrides WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
