//! Loading a key snapshot in one query.
//!
//! A snapshot spans the key, its API, identity, rate limits, direct and role permissions,
//! roles and root-key grants. Instead of seven round trips, one `UNION ALL` returns one
//! tagged row per fact in a common wide shape, which SQLite and PostgreSQL both accept.

use keyway_core::credits::{CreditBalance, Refill, RefillInterval};
use keyway_core::key::KeyHash;
use keyway_core::snapshot::{
    IdentitySnapshot, KeySnapshot, LimitOwner, RateLimitRule, SnapshotCredits,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{Store, StoreError, StoreResult, placeholders, to_u64};

const T: &str = "CAST(NULL AS TEXT)";
const N: &str = "CAST(NULL AS BIGINT)";

/// The snapshot query for the keys `filter` selects (a condition on `keys k`).
fn snapshot_sql(filter: &str) -> String {
    // Columns: owner (the key id), kind, t1..t9 (text), n1..n9 (bigint).
    format!(
        "SELECT k.id AS owner, 'k' AS kind, k.id AS t1, k.api_id AS t2, k.keyspace_id AS t3, k.workspace_id AS t4,
                k.for_workspace_id AS t5, k.name AS t6, k.meta AS t7, k.identity_id AS t8, k.refill_interval AS t9,
                k.enabled AS n1, k.expires AS n2, k.remaining AS n3, k.refill_amount AS n4, k.refill_day AS n5,
                k.last_refill_at AS n6, k.deleted_at AS n7, k.created_at AS n8, a.deleted_at AS n9
           FROM keys k LEFT JOIN apis a ON a.id = k.api_id WHERE {filter}
         UNION ALL
         SELECT k.id, 'p', p.slug, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN keys_permissions kp ON kp.key_id = k.id JOIN permissions p ON p.id = kp.permission_id
          WHERE {filter}
         UNION ALL
         SELECT k.id, 'p', p.slug, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN keys_roles kr ON kr.key_id = k.id JOIN roles_permissions rp ON rp.role_id = kr.role_id
           JOIN permissions p ON p.id = rp.permission_id
          WHERE {filter}
         UNION ALL
         SELECT k.id, 'r', r.name, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN keys_roles kr ON kr.key_id = k.id JOIN roles r ON r.id = kr.role_id
          WHERE {filter}
         UNION ALL
         SELECT k.id, 'P', g.permission, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN root_key_permissions g ON g.key_id = k.id
          WHERE {filter}
         UNION ALL
         SELECT k.id, 'i', i.id, i.external_id, i.meta, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN identities i ON i.id = k.identity_id
          WHERE {filter}
         UNION ALL
         SELECT k.id, 'l', l.id, l.name, 'key', {T}, {T}, {T}, {T}, {T}, {T}, l.lim, l.duration, l.auto_apply, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN ratelimits l ON l.key_id = k.id
          WHERE {filter}
         UNION ALL
         SELECT k.id, 'l', l.id, l.name, 'identity', {T}, {T}, {T}, {T}, {T}, {T}, l.lim, l.duration, l.auto_apply, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN ratelimits l ON l.identity_id = k.identity_id
          WHERE {filter} AND k.identity_id IS NOT NULL"
    )
}

// A column that cannot be read is an error, never a default: a snapshot decoded with a
// missing `enabled` or `api_id` would answer for a key that is not what the database says.
fn text(row: &AnyRow, col: &str) -> StoreResult<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

fn num(row: &AnyRow, col: &str) -> StoreResult<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

fn required<T>(value: Option<T>, what: &str) -> StoreResult<T> {
    value.ok_or_else(|| StoreError::Corrupt(format!("snapshot row without {what}")))
}

/// The hot path's query, built once.
static BY_HASH: LazyLock<String> = LazyLock::new(|| snapshot_sql("k.hash = $1"));

impl Store {
    pub async fn load_snapshot(&self, hash: &KeyHash) -> StoreResult<Option<KeySnapshot>> {
        let rows = sqlx::query(&BY_HASH)
            .bind(hash.as_str())
            .fetch_all(&self.pool)
            .await?;
        assemble(rows.iter())
    }

    /// The snapshots of many keys in one query, by key id; absent keys are left out.
    pub async fn load_snapshots(
        &self,
        key_ids: &[&str],
    ) -> StoreResult<HashMap<String, KeySnapshot>> {
        if key_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = snapshot_sql(&format!("k.id IN ({})", placeholders(key_ids.len())));
        let mut query = sqlx::query(&sql);
        for id in key_ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut by_key: HashMap<String, Vec<&AnyRow>> = HashMap::new();
        for r in &rows {
            by_key
                .entry(required(text(r, "owner")?, "owner")?)
                .or_default()
                .push(r);
        }
        let mut out = HashMap::with_capacity(by_key.len());
        for (id, rows) in by_key {
            if let Some(snap) = assemble(rows.into_iter())? {
                out.insert(id, snap);
            }
        }
        Ok(out)
    }
}

fn assemble<'r>(rows: impl Iterator<Item = &'r AnyRow>) -> StoreResult<Option<KeySnapshot>> {
    let mut key_row = None;
    let mut permissions = Vec::new();
    let mut roles = Vec::new();
    let mut key_limits = Vec::new();
    let mut identity_limits = Vec::new();
    let mut identity = None;
    for r in rows {
        let kind = required(text(r, "kind")?, "kind")?;
        match kind.as_str() {
            "k" => key_row = Some(r),
            "p" | "P" => permissions.push(required(text(r, "t1")?, "permission")?),
            "r" => roles.push(required(text(r, "t1")?, "role name")?),
            "i" => {
                identity = Some(Box::new(IdentitySnapshot {
                    id: required(text(r, "t1")?, "identity id")?,
                    external_id: required(text(r, "t2")?, "external id")?,
                    meta: text(r, "t3")?,
                }));
            }
            "l" => {
                let owner = match text(r, "t3")?.as_deref() {
                    Some("key") => LimitOwner::Key,
                    Some("identity") => LimitOwner::Identity,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "rate limit owned by {other:?}"
                        )));
                    }
                };
                let rule = RateLimitRule {
                    id: required(text(r, "t1")?, "rate limit id")?,
                    name: required(text(r, "t2")?, "rate limit name")?,
                    limit: to_u64(required(num(r, "n1")?, "rate limit")?),
                    duration_ms: to_u64(required(num(r, "n2")?, "rate limit duration")?),
                    auto_apply: required(num(r, "n3")?, "auto_apply")? != 0,
                    owner,
                };
                match owner {
                    LimitOwner::Key => key_limits.push(rule),
                    LimitOwner::Identity => identity_limits.push(rule),
                }
            }
            other => return Err(StoreError::Corrupt(format!("snapshot row kind {other:?}"))),
        }
    }
    let Some(k) = key_row else { return Ok(None) };
    // Row order from a UNION is unspecified; sort so snapshots compare and serialize stably.
    key_limits.sort_by(|a, b| a.name.cmp(&b.name));
    identity_limits.sort_by(|a, b| a.name.cmp(&b.name));

    let credits = match num(k, "n3")? {
        None => None,
        Some(remaining) => {
            let refill = match (text(k, "t9")?, num(k, "n4")?) {
                (Some(interval), Some(amount)) => Some(Refill {
                    interval: RefillInterval::parse(&interval).ok_or_else(|| {
                        StoreError::Corrupt(format!("refill interval {interval:?}"))
                    })?,
                    amount: to_u64(amount),
                    refill_day: num(k, "n5")?
                        .map(u8::try_from)
                        .transpose()
                        .map_err(|_| StoreError::Corrupt("refill day out of range".into()))?,
                }),
                _ => None,
            };
            Some(SnapshotCredits {
                balance: CreditBalance {
                    remaining: to_u64(remaining),
                    last_refill_at: match num(k, "n6")? {
                        Some(at) => at,
                        None => required(num(k, "n8")?, "created_at")?,
                    },
                },
                refill,
            })
        }
    };
    Ok(Some(
        KeySnapshot {
            key_id: required(text(k, "t1")?, "key id")?,
            api_id: text(k, "t2")?.unwrap_or_default(),
            keyspace_id: text(k, "t3")?.unwrap_or_default(),
            workspace_id: required(text(k, "t4")?, "workspace id")?,
            for_workspace_id: text(k, "t5")?,
            name: text(k, "t6")?,
            meta: text(k, "t7")?,
            enabled: required(num(k, "n1")?, "enabled")? != 0,
            deleted: num(k, "n7")?.is_some() || num(k, "n9")?.is_some(),
            expires: num(k, "n2")?,
            credits,
            ratelimits: KeySnapshot::merge_ratelimits(key_limits, identity_limits),
            permissions,
            roles,
            identity,
        }
        .normalized(),
    ))
}
