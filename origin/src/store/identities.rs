//! Identities: the owners of keys, with shared rate limits.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::keys::{NewRatelimit, insert_ratelimits};
use super::{Store, StoreResult, to_u64};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentityRow {
    pub id: String,
    pub external_id: String,
    pub meta: Option<String>,
}

/// A rate limit an identity's keys share.
#[derive(Debug, Clone)]
pub struct RatelimitRow {
    pub id: String,
    pub name: String,
    pub limit: u64,
    pub duration: u64,
    pub auto_apply: bool,
}

/// By hand: the limit is the column `lim`, and the flag an integer.
impl FromRow<'_, AnyRow> for RatelimitRow {
    fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(RatelimitRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            limit: to_u64(r.try_get("lim")?),
            duration: to_u64(r.try_get("duration")?),
            auto_apply: r.try_get::<i64, _>("auto_apply")? != 0,
        })
    }
}

impl Store {
    pub async fn insert_identity(
        &self,
        workspace_id: &str,
        identity: &IdentityRow,
        limits: &[NewRatelimit],
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        sqlx::query("INSERT INTO identities (id, workspace_id, external_id, meta, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&identity.id)
            .bind(workspace_id)
            .bind(&identity.external_id)
            .bind(&identity.meta)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_ratelimits(&mut tx, workspace_id, None, Some(&identity.id), limits).await?;
        tx.commit().await?;
        Ok(())
    }

    /// By id or external id.
    pub async fn find_identity(
        &self,
        workspace_id: &str,
        reference: &str,
    ) -> StoreResult<Option<IdentityRow>> {
        self.find(
            "SELECT id, external_id, meta FROM identities
              WHERE workspace_id = $1
              AND (id = $2 OR external_id = $2)",
            |q| q.bind(workspace_id).bind(reference),
        )
        .await
    }

    pub async fn list_identities(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        search: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<IdentityRow>> {
        self.find_all(
            "SELECT id, external_id, meta FROM identities
              WHERE workspace_id = $1 AND id > $2 AND ($3 = '' OR external_id LIKE $4)
              ORDER BY id LIMIT $5",
            |q| {
                q.bind(workspace_id)
                    .bind(cursor.unwrap_or(""))
                    .bind(search.unwrap_or(""))
                    .bind(format!("%{}%", search.unwrap_or("")))
                    .bind(i64::from(limit))
            },
        )
        .await
    }

    /// The rate limits of each identity, in one query, ordered by name.
    pub async fn identities_ratelimits(
        &self,
        identity_ids: &[&str],
    ) -> StoreResult<HashMap<String, Vec<RatelimitRow>>> {
        self.find_grouped(
            "SELECT identity_id, id, name, lim, duration, auto_apply FROM ratelimits
              WHERE identity_id IN ({ids}) ORDER BY name",
            identity_ids,
            "identity_id",
        )
        .await
    }

    pub async fn update_identity(
        &self,
        workspace_id: &str,
        identity_id: &str,
        meta: Option<Option<String>>,
        limits: Option<&[NewRatelimit]>,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        if let Some(meta) = meta {
            sqlx::query("UPDATE identities SET meta = $1, updated_at = $2 WHERE id = $3")
                .bind(meta)
                .bind(now)
                .bind(identity_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(limits) = limits {
            sqlx::query("DELETE FROM ratelimits WHERE identity_id = $1")
                .bind(identity_id)
                .execute(&mut *tx)
                .await?;
            insert_ratelimits(&mut tx, workspace_id, None, Some(identity_id), limits).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an identity; its keys stay, unlinked.
    pub async fn delete_identity(&self, identity_id: &str) -> StoreResult<()> {
        self.delete_with_links(
            identity_id,
            &[
                "UPDATE keys SET identity_id = NULL WHERE identity_id = $1",
                "DELETE FROM ratelimits WHERE identity_id = $1",
                "DELETE FROM identities WHERE id = $1",
            ],
        )
        .await
    }
}
