//! First start: a workspace, and the operator's root key.

use keyway_core::auth::ALL_ROOT_PERMISSIONS;
use keyway_core::key::{KeyHash, start_of};

use super::keys::NewKey;
use super::{Store, StoreResult};
use crate::ids;

/// What bootstrapping did, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The given root key was already registered.
    Existing,
    /// The given root key was registered now.
    Registered,
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
        // Roles are empty, so insert_key cannot report a missing one.
        let _ = self.insert_key(&new).await?;
        Ok(id)
    }

    pub async fn bootstrap(
        &self,
        root_key: Option<&str>,
        now: i64,
    ) -> StoreResult<(String, Bootstrap)> {
        let ws = self.ensure_workspace(now).await?;
        let all: Vec<String> = ALL_ROOT_PERMISSIONS.iter().map(|s| s.to_string()).collect();
        if let Some(key) = root_key {
            let hash = KeyHash::of(key);
            if self.find_key_by_hash(hash.as_str()).await?.is_some() {
                return Ok((ws, Bootstrap::Existing));
            }
            self.insert_root_key(&ws, key, Some("bootstrap".into()), all, now)
                .await?;
            return Ok((ws, Bootstrap::Registered));
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
        self.insert_root_key(&ws, minted.key.expose(), Some("bootstrap".into()), all, now)
            .await?;
        Ok((ws, Bootstrap::Generated(minted.key)))
    }
}
