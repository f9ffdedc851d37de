//! Workspace permissions and roles (RBAC), the things permission queries test.

use std::collections::HashMap;

use super::grants::{Link, link};
use super::{Missing, Store, StoreResult};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PermissionRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

impl Store {
    pub async fn insert_permission(
        &self,
        workspace_id: &str,
        p: &PermissionRow,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO permissions (id, workspace_id, name, slug, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&p.id)
            .bind(workspace_id)
            .bind(&p.name)
            .bind(&p.slug)
            .bind(&p.description)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// By id or slug.
    pub async fn find_permission(
        &self,
        workspace_id: &str,
        reference: &str,
    ) -> StoreResult<Option<PermissionRow>> {
        self.find(
            "SELECT id, name, slug, description FROM permissions
              WHERE workspace_id = $1
              AND (id = $2 OR slug = $2)",
            |q| q.bind(workspace_id).bind(reference),
        )
        .await
    }

    pub async fn list_permissions(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<PermissionRow>> {
        self.page(
            "SELECT id, name, slug, description FROM permissions
              WHERE workspace_id = $1 AND id > $2
              ORDER BY id LIMIT $3",
            workspace_id,
            cursor,
            limit,
        )
        .await
    }

    pub async fn delete_permission(&self, permission_id: &str) -> StoreResult<()> {
        self.delete_with_links(
            permission_id,
            &[
                "DELETE FROM keys_permissions WHERE permission_id = $1",
                "DELETE FROM roles_permissions WHERE permission_id = $1",
                "DELETE FROM permissions WHERE id = $1",
            ],
        )
        .await
    }

    /// Creates a role with existing permissions (by id or slug); the first that does not
    /// exist is a `Missing::PermissionRef`.
    pub async fn insert_role(
        &self,
        workspace_id: &str,
        role: &RoleRow,
        permissions: &[String],
        now: i64,
    ) -> StoreResult<()> {
        let mut ids = Vec::with_capacity(permissions.len());
        for p in permissions {
            match self.find_permission(workspace_id, p).await? {
                Some(found) => ids.push(found.id),
                None => return Err(Missing::PermissionRef(p.clone()).into()),
            }
        }
        let mut tx = self.transaction().await?;
        sqlx::query("INSERT INTO roles (id, workspace_id, name, description, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&role.id)
            .bind(workspace_id)
            .bind(&role.name)
            .bind(&role.description)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        link(&mut tx, Link::RolePermissions, &role.id, &ids).await?;
        tx.commit().await?;
        Ok(())
    }

    /// By id or name.
    pub async fn find_role(
        &self,
        workspace_id: &str,
        reference: &str,
    ) -> StoreResult<Option<RoleRow>> {
        self.find(
            "SELECT id, name, description FROM roles
              WHERE workspace_id = $1
              AND (id = $2 OR name = $2)",
            |q| q.bind(workspace_id).bind(reference),
        )
        .await
    }

    /// The permissions of each role, in one query; a role without any is absent.
    pub async fn roles_permissions(
        &self,
        role_ids: &[&str],
    ) -> StoreResult<HashMap<String, Vec<PermissionRow>>> {
        self.find_grouped(
            "SELECT rp.role_id, p.id, p.name, p.slug, p.description FROM permissions p
               JOIN roles_permissions rp ON rp.permission_id = p.id
              WHERE rp.role_id IN ({ids}) ORDER BY p.slug",
            role_ids,
            "role_id",
        )
        .await
    }

    pub async fn list_roles(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RoleRow>> {
        self.page(
            "SELECT id, name, description FROM roles
              WHERE workspace_id = $1 AND id > $2
              ORDER BY id LIMIT $3",
            workspace_id,
            cursor,
            limit,
        )
        .await
    }

    pub async fn delete_role(&self, role_id: &str) -> StoreResult<()> {
        self.delete_with_links(
            role_id,
            &[
                "DELETE FROM keys_roles WHERE role_id = $1",
                "DELETE FROM roles_permissions WHERE role_id = $1",
                "DELETE FROM roles WHERE id = $1",
            ],
        )
        .await
    }

    /// Replaces a role's permissions with `slugs` in one transaction, creating missing
    /// ones when `create_missing`; returns what the role holds afterwards.
    pub async fn set_role_permissions(
        &self,
        workspace_id: &str,
        role_id: &str,
        slugs: &[String],
        now: i64,
        create_missing: bool,
    ) -> StoreResult<Vec<PermissionRow>> {
        let mut tx = self.transaction().await?;
        let ids =
            super::grants::ensure_permissions(&mut tx, workspace_id, slugs, now, create_missing)
                .await?;
        sqlx::query("DELETE FROM roles_permissions WHERE role_id = $1")
            .bind(role_id)
            .execute(&mut *tx)
            .await?;
        link(&mut tx, Link::RolePermissions, role_id, &ids).await?;
        tx.commit().await?;
        Ok(self
            .roles_permissions(&[role_id])
            .await?
            .remove(role_id)
            .unwrap_or_default())
    }
}
