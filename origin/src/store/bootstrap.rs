//! First start: a workspace, and the operator's root key; listing and revoking root keys.
//!
//! The root key from `KEYWAY_ROOT_KEY` (or the one minted when none is configured) is
//! named `bootstrap`. Registering a new value revokes every earlier bootstrap key, so
//! rotating a leaked key is one change of the variable and a restart. Root keys made
//! with `keyway root-keys create` are left alone.

use sqlx::Row;

use keyway_core::auth::all_root_permissions;
use keyway_core::key::{KeyHash, start_of};

use super::keys::NewKey;
use super::{Store, StoreResult};
use crate::ids;

/// The name that marks the root key `KEYWAY_ROOT_KEY` configures (or first start mints).
pub const BOOTSTRAP: &str = "bootstrap";

/// PostgreSQL advisory lock id for bootstrapping ("keyway" in ASCII).
const BOOTSTRAP_LOCK: i64 = 0x6b65_7977_6179;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootKeyRow {
    pub id: String,
    pub start: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub permissions: Vec<String>,
}

/// What bootstrapping did, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The given root key was already registered.
    Existing,
    /// The given root key was registered at some point and has since been revoked; it
    /// stays revoked.
    Revoked,
    /// The given root key was registered now; `revoked` earlier bootstrap keys were
    /// revoked with it.
    Registered { revoked: u64 },
    /// No root key was given and none existed: this one was minted (print it once).
    Generated(keyway_core::key::PlainKey),
    /// No root key was given; root keys already exist.
    Unchanged,
}

impl Store {
    pub async fn workspace_id(&self) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM workspaces ORDER BY created_at, id LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Ensures a workspace exists and returns it.
    pub async fn ensure_workspace(&self, now: i64) -> StoreResult<String> {
        if let Some(id) = self.workspace_id().await? {
            return Ok(id);
        }
        let id = ids::new_id("ws");
        sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind("default")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// Registers a root key (hashed) with the given grants.
    pub async fn insert_root_key(
        &self,
        workspace_id: &str,
        key: &str,
        name: Option<String>,
        permissions: Vec<String>,
        now: i64,
    ) -> StoreResult<String> {
        let id = ids::new_id("key");
        let new = NewKey {
            id: id.clone(),
            hash: KeyHash::of(key).as_str().to_string(),
            start: start_of(key.split_once('_').map(|(p, _)| p), key),
            workspace_id: workspace_id.to_string(),
            for_workspace_id: Some(workspace_id.to_string()),
            name,
            enabled: true,
            created_at: now,
            root_permissions: permissions,
            ..NewKey::default()
        };
        self.insert_key(&new).await?;
        Ok(id)
    }

    /// Bootstraps once per database even when several replicas start at the same moment:
    /// on PostgreSQL the work runs under a session advisory lock, so the second replica
    /// finds what the first made instead of making a second workspace or failing on the
    /// root key's unique hash. (The migrations lock themselves the same way.)
    pub async fn bootstrap(
        &self,
        root_key: Option<&str>,
        now: i64,
    ) -> StoreResult<(String, Bootstrap)> {
        if self.is_sqlite {
            return self.bootstrap_unlocked(root_key, now).await;
        }
        let mut lock = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *lock)
            .await?;
        let result = self.bootstrap_unlocked(root_key, now).await;
        if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *lock)
            .await
        {
            // Closing the connection releases a session lock too.
            tracing::warn!(error = %e, "releasing the bootstrap lock failed; closing its connection");
            let _ = lock.detach();
        }
        result
    }

    async fn bootstrap_unlocked(
        &self,
        root_key: Option<&str>,
        now: i64,
    ) -> StoreResult<(String, Bootstrap)> {
        let ws = self.ensure_workspace(now).await?;
        let all = all_root_permissions();
        if let Some(key) = root_key {
            let hash = KeyHash::of(key);
            let existing: Option<(String, Option<i64>)> =
                sqlx::query("SELECT id, deleted_at FROM keys WHERE hash = $1")
                    .bind(hash.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("deleted_at")?)))
                    .transpose()?;
            return match existing {
                Some((_, Some(_))) => Ok((ws, Bootstrap::Revoked)),
                Some((id, None)) => {
                    // Grants added by an upgrade reach the operator's key on restart.
                    self.grant_missing(&id, &all).await?;
                    Ok((ws, Bootstrap::Existing))
                }
                None => {
                    let id = self
                        .insert_root_key(&ws, key, Some(BOOTSTRAP.into()), all, now)
                        .await?;
                    let revoked = sqlx::query(
                        "UPDATE keys SET deleted_at = $1 WHERE for_workspace_id IS NOT NULL
                            AND name = $2 AND id <> $3 AND deleted_at IS NULL",
                    )
                    .bind(now)
                    .bind(BOOTSTRAP)
                    .bind(&id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    Ok((ws, Bootstrap::Registered { revoked }))
                }
            };
        }
        let any: Option<String> = sqlx::query_scalar(
            "SELECT id FROM keys WHERE for_workspace_id IS NOT NULL AND deleted_at IS NULL LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        if any.is_some() {
            return Ok((ws, Bootstrap::Unchanged));
        }
        let minted = ids::mint_key(Some("root"), 24)
            .map_err(|e| super::StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
        self.insert_root_key(&ws, minted.key.expose(), Some(BOOTSTRAP.into()), all, now)
            .await?;
        Ok((ws, Bootstrap::Generated(minted.key)))
    }

    async fn grant_missing(&self, key_id: &str, grants: &[String]) -> StoreResult<()> {
        for g in grants {
            sqlx::query(
                "INSERT INTO root_key_permissions (key_id, permission) SELECT $1, $2
                  WHERE NOT EXISTS (SELECT 1 FROM root_key_permissions WHERE key_id = $1 AND permission = $2)",
            )
            .bind(key_id)
            .bind(g)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Live root keys, oldest first, with their grants. Never the key: only its hash is
    /// stored, and `start` shows enough to tell keys apart.
    pub async fn list_root_keys(&self) -> StoreResult<Vec<RootKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, start, name, created_at FROM keys
              WHERE for_workspace_id IS NOT NULL AND deleted_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let permissions = sqlx::query_scalar(
                "SELECT permission FROM root_key_permissions WHERE key_id = $1 ORDER BY permission",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            out.push(RootKeyRow {
                id,
                start: r.try_get("start")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                permissions,
            });
        }
        Ok(out)
    }

    /// Revokes a live root key; `false` if there is none with this id.
    /// Revokes a live root key; returns its hash (for change notices), or `None` if no
    /// live root key has this id.
    pub async fn revoke_root_key(&self, id: &str, now: i64) -> StoreResult<Option<String>> {
        let hash: Option<String> = sqlx::query_scalar(
            "UPDATE keys SET deleted_at = $1 WHERE id = $2 AND for_workspace_id IS NOT NULL AND deleted_at IS NULL RETURNING hash",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(hash)
    }
}
