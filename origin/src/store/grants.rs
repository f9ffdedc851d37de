//! A key's direct permissions and roles: linking them, and adding, setting or removing
//! them by slug and name.

use sqlx::{Any, Transaction};

use super::{Missing, Store, StoreResult};
use crate::ids;

/// Finds permissions by slug and returns their ids. Missing ones are created when
/// `create_missing` (the caller holds `rbac.*.create_permission`), else named in the error.
pub(super) async fn ensure_permissions(
    tx: &mut Transaction<'static, Any>,
    workspace_id: &str,
    slugs: &[String],
    now: i64,
    create_missing: bool,
) -> StoreResult<Vec<String>> {
    let mut out = Vec::with_capacity(slugs.len());
    for slug in slugs {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM permissions WHERE workspace_id = $1 AND slug = $2")
                .bind(workspace_id)
                .bind(slug)
                .fetch_optional(&mut **tx)
                .await?;
        let id = match found {
            Some(id) => id,
            None if !create_missing => return Err(Missing::Permission(slug.clone()).into()),
            None => {
                let id = ids::new_id("perm");
                sqlx::query("INSERT INTO permissions (id, workspace_id, name, slug, description, created_at) VALUES ($1, $2, $3, $4, NULL, $5)")
                    .bind(&id)
                    .bind(workspace_id)
                    .bind(slug)
                    .bind(slug)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                id
            }
        };
        out.push(id);
    }
    Ok(out)
}

/// Resolves role names (or ids) to ids; the first that does not exist is the error.
pub(super) async fn resolve_roles(
    tx: &mut Transaction<'static, Any>,
    workspace_id: &str,
    names: &[String],
) -> StoreResult<Vec<String>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT id FROM roles WHERE workspace_id = $1 AND (name = $2 OR id = $2)",
        )
        .bind(workspace_id)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
        match found {
            Some(id) => out.push(id),
            None => return Err(Missing::Role(name.clone()).into()),
        }
    }
    Ok(out)
}

/// The join tables that link grants to a key or a role; the statement differs only in
/// table and columns.
#[derive(Clone, Copy)]
pub(super) enum Link {
    Permissions,
    Roles,
    RolePermissions,
}

/// Links ids to a key (or, for `RolePermissions`, a role), skipping links that already
/// exist, so repeated ids link once.
pub(super) async fn link(
    tx: &mut Transaction<'static, Any>,
    kind: Link,
    owner: &str,
    ids: &[String],
) -> StoreResult<()> {
    let sql = match kind {
        Link::Permissions => {
            "INSERT INTO keys_permissions (key_id, permission_id) SELECT $1, $2
             WHERE NOT EXISTS (SELECT 1 FROM keys_permissions WHERE key_id = $1 AND permission_id = $2)"
        }
        Link::Roles => {
            "INSERT INTO keys_roles (key_id, role_id) SELECT $1, $2
             WHERE NOT EXISTS (SELECT 1 FROM keys_roles WHERE key_id = $1 AND role_id = $2)"
        }
        Link::RolePermissions => {
            "INSERT INTO roles_permissions (role_id, permission_id) SELECT $1, $2
             WHERE NOT EXISTS (SELECT 1 FROM roles_permissions WHERE role_id = $1 AND permission_id = $2)"
        }
    };
    for id in ids {
        sqlx::query(sql)
            .bind(owner)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Marks the key changed and commits the change to its grants.
async fn commit_key_change(
    mut tx: Transaction<'static, Any>,
    key_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE keys SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// Adds, removes or replaces a key's direct permissions by slug.
    pub async fn change_key_permissions(
        &self,
        key_id: &str,
        workspace_id: &str,
        slugs: &[String],
        op: SetOp,
        now: i64,
        create_missing: bool,
    ) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        match op {
            SetOp::Add | SetOp::Set => {
                if op == SetOp::Set {
                    sqlx::query("DELETE FROM keys_permissions WHERE key_id = $1")
                        .bind(key_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let ids =
                    ensure_permissions(&mut tx, workspace_id, slugs, now, create_missing).await?;
                link(&mut tx, Link::Permissions, key_id, &ids).await?;
            }
            SetOp::Remove => {
                for slug in slugs {
                    sqlx::query(
                        "DELETE FROM keys_permissions WHERE key_id = $1 AND permission_id IN
                           (SELECT id FROM permissions WHERE workspace_id = $2 AND (slug = $3 OR id = $3))",
                    )
                    .bind(key_id)
                    .bind(workspace_id)
                    .bind(slug)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        commit_key_change(tx, key_id, now).await
    }

    pub async fn change_key_roles(
        &self,
        key_id: &str,
        workspace_id: &str,
        names: &[String],
        op: SetOp,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        let ids = resolve_roles(&mut tx, workspace_id, names).await?;
        match op {
            SetOp::Add => link(&mut tx, Link::Roles, key_id, &ids).await?,
            SetOp::Set => {
                sqlx::query("DELETE FROM keys_roles WHERE key_id = $1")
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
                link(&mut tx, Link::Roles, key_id, &ids).await?;
            }
            SetOp::Remove => {
                for rid in &ids {
                    sqlx::query("DELETE FROM keys_roles WHERE key_id = $1 AND role_id = $2")
                        .bind(key_id)
                        .bind(rid)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        commit_key_change(tx, key_id, now).await
    }

    /// The key's direct permissions.
    pub async fn key_permissions(&self, key_id: &str) -> StoreResult<Vec<super::PermissionRow>> {
        self.find_all(
            "SELECT p.id, p.name, p.slug, p.description FROM permissions p
               JOIN keys_permissions kp ON kp.permission_id = p.id WHERE kp.key_id = $1 ORDER BY p.slug",
            |q| q.bind(key_id),
        )
        .await
    }

    pub async fn key_roles(&self, key_id: &str) -> StoreResult<Vec<super::RoleRow>> {
        self.find_all(
            "SELECT r.id, r.name, r.description FROM roles r JOIN keys_roles kr ON kr.role_id = r.id WHERE kr.key_id = $1 ORDER BY r.name",
            |q| q.bind(key_id),
        )
        .await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Add,
    Set,
    Remove,
}
