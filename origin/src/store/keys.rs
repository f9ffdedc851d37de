//! Keys: create, import, read, list, update, delete, and which keys a write touches.
//! Their credit balances are in `credits`, their permissions and roles in `grants`.

use keyway_core::credits::Refill;
use sqlx::{Any, Transaction};

use super::grants::{Link, ensure_permissions, link, resolve_roles};
use super::{Store, StoreResult, flag, to_i64};
use crate::ids;

/// Everything createKey (and rerollKey) writes.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub id: String,
    pub hash: String,
    pub start: String,
    pub workspace_id: String,
    pub for_workspace_id: Option<String>,
    pub api_id: Option<String>,
    pub keyspace_id: Option<String>,
    pub identity_id: Option<String>,
    /// Without `identity_id`: the identity to link, found or created in the key's
    /// transaction.
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub meta: Option<String>,
    pub enabled: bool,
    pub expires: Option<i64>,
    pub remaining: Option<u64>,
    pub refill: Option<Refill>,
    pub created_at: i64,
    pub ratelimits: Vec<NewRatelimit>,
    /// Permission slugs; missing ones are created if `create_permissions`.
    pub permissions: Vec<String>,
    pub create_permissions: bool,
    /// Role names; all must exist.
    pub roles: Vec<String>,
    /// Root-key grants.
    pub root_permissions: Vec<String>,
    /// A recoverable key's sealed plaintext (`vault::Vault::seal`).
    pub encrypted: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewRatelimit {
    pub name: String,
    pub limit: u64,
    pub duration: u64,
    pub auto_apply: bool,
}

/// The columns getKey and listKeys add to a snapshot.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub hash: String,
    pub start: String,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub api_id: Option<String>,
    pub workspace_id: String,
}

const KEY_COLUMNS: &str = "id, hash, start, created_at, updated_at, api_id, workspace_id";

pub(crate) async fn insert_ratelimits(
    tx: &mut Transaction<'static, Any>,
    workspace_id: &str,
    key_id: Option<&str>,
    identity_id: Option<&str>,
    limits: &[NewRatelimit],
) -> StoreResult<()> {
    for l in limits {
        sqlx::query(
            "INSERT INTO ratelimits (id, workspace_id, key_id, identity_id, name, lim, duration, auto_apply)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(ids::new_id("rl"))
        .bind(workspace_id)
        .bind(key_id)
        .bind(identity_id)
        .bind(&l.name)
        .bind(to_i64(l.limit))
        .bind(to_i64(l.duration))
        .bind(flag(l.auto_apply))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_key_in(tx: &mut Transaction<'static, Any>, k: &NewKey) -> StoreResult<()> {
    let roles = resolve_roles(tx, &k.workspace_id, &k.roles).await?;
    let identity_id = match (&k.identity_id, &k.external_id) {
        (None, Some(ext)) => Some(identity_in(tx, &k.workspace_id, ext, k.created_at).await?),
        (id, _) => id.clone(),
    };
    sqlx::query(
        "INSERT INTO keys (id, hash, start, workspace_id, for_workspace_id, api_id, keyspace_id, identity_id, name, meta,
                           enabled, expires, remaining, refill_interval, refill_amount, refill_day, last_refill_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&k.id)
    .bind(&k.hash)
    .bind(&k.start)
    .bind(&k.workspace_id)
    .bind(&k.for_workspace_id)
    .bind(&k.api_id)
    .bind(&k.keyspace_id)
    .bind(&identity_id)
    .bind(&k.name)
    .bind(&k.meta)
    .bind(flag(k.enabled))
    .bind(k.expires)
    .bind(k.remaining.map(to_i64))
    .bind(k.refill.map(|r| r.interval.as_str().to_string()))
    .bind(k.refill.map(|r| to_i64(r.amount)))
    .bind(k.refill.and_then(|r| r.refill_day).map(i64::from))
    .bind(k.remaining.map(|_| k.created_at))
    .bind(k.created_at)
    .execute(&mut **tx)
    .await?;
    insert_ratelimits(tx, &k.workspace_id, Some(&k.id), None, &k.ratelimits).await?;
    let perms = ensure_permissions(
        tx,
        &k.workspace_id,
        &k.permissions,
        k.created_at,
        k.create_permissions,
    )
    .await?;
    link(tx, Link::Permissions, &k.id, &perms).await?;
    link(tx, Link::Roles, &k.id, &roles).await?;
    for p in &k.root_permissions {
        sqlx::query("INSERT INTO root_key_permissions (key_id, permission) VALUES ($1, $2)")
            .bind(&k.id)
            .bind(p)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(sealed) = &k.encrypted {
        sqlx::query("INSERT INTO encrypted_keys (key_id, workspace_id, encrypted, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&k.id)
            .bind(&k.workspace_id)
            .bind(sealed)
            .bind(k.created_at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The workspace's identity for `external_id`, created inside `tx` when new.
async fn identity_in(
    tx: &mut Transaction<'static, Any>,
    workspace_id: &str,
    external_id: &str,
    now: i64,
) -> StoreResult<String> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM identities WHERE workspace_id = $1 AND external_id = $2",
    )
    .bind(workspace_id)
    .bind(external_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    let id = ids::new_id("id");
    sqlx::query("INSERT INTO identities (id, workspace_id, external_id, meta, created_at) VALUES ($1, $2, $3, NULL, $4)")
        .bind(&id)
        .bind(workspace_id)
        .bind(external_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

/// Runs `attempt`, and once more if it lost a race on a unique index (`Conflict`) and
/// `may_retry`: a second try then finds the row the winner wrote.
async fn retry_lost_race<T, F: Future<Output = StoreResult<T>>>(
    may_retry: bool,
    attempt: impl Fn() -> F,
) -> StoreResult<T> {
    match attempt().await {
        Err(super::StoreError::Conflict) if may_retry => attempt().await,
        other => other,
    }
}

impl Store {
    pub async fn insert_key(&self, k: &NewKey) -> StoreResult<()> {
        // Two first keys of one new externalId race to create its identity; the loser
        // finds the winner's on a second try.
        retry_lost_race(k.external_id.is_some(), || async {
            let mut tx = self.transaction().await?;
            insert_key_in(&mut tx, k).await?;
            tx.commit().await?;
            StoreResult::Ok(())
        })
        .await
    }

    /// keys.migrateKeys: inserts a batch in one transaction. A key whose hash is already
    /// stored (or came earlier in the batch) is skipped and reported `false`; any other
    /// failure (a missing role, say) writes nothing at all, identities included.
    pub async fn migrate_keys(&self, batch: &[NewKey]) -> StoreResult<Vec<bool>> {
        // A concurrent insert of one of these hashes can still win between the check and
        // the insert; the retry then sees it and reports it as a duplicate.
        retry_lost_race(true, || self.migrate_keys_once(batch)).await
    }

    async fn migrate_keys_once(&self, batch: &[NewKey]) -> StoreResult<Vec<bool>> {
        let mut tx = self.transaction().await?;
        let mut seen = std::collections::HashSet::with_capacity(batch.len());
        let mut inserted = Vec::with_capacity(batch.len());
        for key in batch {
            let stored: Option<i64> = sqlx::query_scalar("SELECT 1 FROM keys WHERE hash = $1")
                .bind(&key.hash)
                .fetch_optional(&mut *tx)
                .await?;
            if stored.is_some() || !seen.insert(key.hash.as_str()) {
                inserted.push(false);
                continue;
            }
            insert_key_in(&mut tx, key).await?;
            inserted.push(true);
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// A live (not deleted) key of the workspace.
    pub async fn find_key(&self, workspace_id: &str, key_id: &str) -> StoreResult<Option<KeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys
              WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL AND for_workspace_id IS NULL"
        );
        self.find(&sql, |q| q.bind(key_id).bind(workspace_id)).await
    }

    pub async fn find_key_by_hash(&self, hash: &str) -> StoreResult<Option<KeyRow>> {
        self.find(
            &format!("SELECT {KEY_COLUMNS} FROM keys WHERE hash = $1 AND deleted_at IS NULL"),
            |q| q.bind(hash),
        )
        .await
    }

    /// A page of an API's live keys, ordered by id, after `cursor`.
    pub async fn list_keys(
        &self,
        api_id: &str,
        cursor: Option<&str>,
        external_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<KeyRow>> {
        self.find_all(
            &format!(
                "SELECT {KEY_COLUMNS} FROM keys k
              WHERE api_id = $1 AND deleted_at IS NULL AND id > $2
                AND ($3 = '' OR identity_id IN (
                  SELECT i.id FROM identities i
                   WHERE i.external_id = $3 AND i.workspace_id = k.workspace_id))
              ORDER BY id LIMIT $4"
            ),
            |q| {
                q.bind(api_id)
                    .bind(cursor.unwrap_or(""))
                    .bind(external_id.unwrap_or(""))
                    .bind(i64::from(limit))
            },
        )
        .await
    }

    pub async fn soft_delete_key(&self, key_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE keys SET deleted_at = $1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn hard_delete_key(&self, key_id: &str) -> StoreResult<()> {
        self.delete_with_links(
            key_id,
            &[
                "DELETE FROM keys_permissions WHERE key_id = $1",
                "DELETE FROM keys_roles WHERE key_id = $1",
                "DELETE FROM ratelimits WHERE key_id = $1",
                "DELETE FROM root_key_permissions WHERE key_id = $1",
                "DELETE FROM encrypted_keys WHERE key_id = $1",
                "DELETE FROM keys WHERE id = $1",
            ],
        )
        .await
    }

    /// Applies an update; each `Some` field is written (with `Some(None)` clearing it).
    pub async fn update_key(
        &self,
        key_id: &str,
        workspace_id: &str,
        u: &KeyUpdate,
        now: i64,
    ) -> StoreResult<()> {
        // As with insert_key: two updates naming one new externalId race to create its
        // identity, and the loser finds the winner's on a second try.
        retry_lost_race(matches!(u.external_id, Some(Some(_))), || {
            self.update_key_once(key_id, workspace_id, u, now)
        })
        .await
    }

    async fn update_key_once(
        &self,
        key_id: &str,
        workspace_id: &str,
        u: &KeyUpdate,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        let mut sets: Vec<(&str, Bind)> = Vec::new();
        if let Some(v) = &u.name {
            sets.push(("name", Bind::Text(v.clone())));
        }
        if let Some(v) = &u.meta {
            sets.push(("meta", Bind::Text(v.clone())));
        }
        if let Some(v) = u.expires {
            sets.push(("expires", Bind::Int(v)));
        }
        if let Some(v) = u.enabled {
            sets.push(("enabled", Bind::Int(Some(flag(v)))));
        }
        // The identity is found or created in this transaction, so an update refused
        // for a missing role leaves no new identity behind.
        if let Some(ext) = &u.external_id {
            let id = match ext {
                Some(ext) => Some(identity_in(&mut tx, workspace_id, ext, now).await?),
                None => None,
            };
            sets.push(("identity_id", Bind::Text(id)));
        }
        if let Some(refill) = u.refill {
            sets.push((
                "refill_interval",
                Bind::Text(refill.map(|r| r.interval.as_str().to_string())),
            ));
            sets.push(("refill_amount", Bind::Int(refill.map(|r| to_i64(r.amount)))));
            sets.push((
                "refill_day",
                Bind::Int(refill.and_then(|r| r.refill_day).map(i64::from)),
            ));
        }
        sets.push(("updated_at", Bind::Int(Some(now))));
        let assignments: Vec<String> = sets
            .iter()
            .enumerate()
            .map(|(i, (col, _))| format!("{col} = ${}", i + 1))
            .collect();
        let sql = format!(
            "UPDATE keys SET {} WHERE id = ${}",
            assignments.join(", "),
            sets.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for (_, b) in &sets {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(n) => q.bind(*n),
            };
        }
        q.bind(key_id).execute(&mut *tx).await?;

        if let Some(limits) = &u.ratelimits {
            sqlx::query("DELETE FROM ratelimits WHERE key_id = $1")
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            insert_ratelimits(&mut tx, workspace_id, Some(key_id), None, limits).await?;
        }
        if let Some(perms) = &u.permissions {
            sqlx::query("DELETE FROM keys_permissions WHERE key_id = $1")
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            let ids =
                ensure_permissions(&mut tx, workspace_id, perms, now, u.create_permissions).await?;
            link(&mut tx, Link::Permissions, key_id, &ids).await?;
        }
        if let Some(roles) = &u.roles {
            let ids = resolve_roles(&mut tx, workspace_id, roles).await?;
            sqlx::query("DELETE FROM keys_roles WHERE key_id = $1")
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            link(&mut tx, Link::Roles, key_id, &ids).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Hashes of every key whose snapshot a write to these rows changes.
    pub async fn hashes_where(&self, filter: HashFilter<'_>) -> StoreResult<Vec<String>> {
        let (sql, arg) = match filter {
            HashFilter::Key(id) => ("SELECT hash FROM keys WHERE id = $1", id),
            HashFilter::Api(id) => ("SELECT hash FROM keys WHERE api_id = $1", id),
            HashFilter::Identity(id) => ("SELECT hash FROM keys WHERE identity_id = $1", id),
            HashFilter::Permission(id) => (
                "SELECT k.hash FROM keys k JOIN keys_permissions kp ON kp.key_id = k.id WHERE kp.permission_id = $1
                 UNION SELECT k.hash FROM keys k JOIN keys_roles kr ON kr.key_id = k.id
                   JOIN roles_permissions rp ON rp.role_id = kr.role_id WHERE rp.permission_id = $1",
                id,
            ),
            HashFilter::Role(id) => ("SELECT k.hash FROM keys k JOIN keys_roles kr ON kr.key_id = k.id WHERE kr.role_id = $1", id),
        };
        Ok(sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum HashFilter<'a> {
    Key(&'a str),
    Api(&'a str),
    Identity(&'a str),
    Permission(&'a str),
    Role(&'a str),
}

enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
}

/// updateKey's changes: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<Option<String>>,
    pub meta: Option<Option<String>>,
    pub expires: Option<Option<i64>>,
    pub enabled: Option<bool>,
    /// The key's owner by externalId: `Some(None)` removes it.
    pub external_id: Option<Option<String>>,
    pub refill: Option<Option<Refill>>,
    pub ratelimits: Option<Vec<NewRatelimit>>,
    pub permissions: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    /// Whether `permissions` may create the ones that do not exist yet.
    pub create_permissions: bool,
}
