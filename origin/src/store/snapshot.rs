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

use super::{Store, StoreResult, to_u64};

const T: &str = "CAST(NULL AS TEXT)";
const N: &str = "CAST(NULL AS BIGINT)";

fn snapshot_sql() -> String {
    // Columns: kind, t1..t9 (text), n1..n9 (bigint).
    format!(
        "SELECT 'k' AS kind, k.id AS t1, k.api_id AS t2, k.keyspace_id AS t3, k.workspace_id AS t4,
                k.for_workspace_id AS t5, k.name AS t6, k.meta AS t7, k.identity_id AS t8, k.refill_interval AS t9,
                k.enabled AS n1, k.expires AS n2, k.remaining AS n3, k.refill_amount AS n4, k.refill_day AS n5,
                k.last_refill_at AS n6, k.deleted_at AS n7, k.created_at AS n8, a.deleted_at AS n9
           FROM keys k LEFT JOIN apis a ON a.id = k.api_id WHERE k.hash = $1
         UNION ALL
         SELECT 'p', p.slug, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN keys_permissions kp ON kp.key_id = k.id JOIN permissions p ON p.id = kp.permission_id
          WHERE k.hash = $1
         UNION ALL
         SELECT 'p', p.slug, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN keys_roles kr ON kr.key_id = k.id JOIN roles_permissions rp ON rp.role_id = kr.role_id
           JOIN permissions p ON p.id = rp.permission_id
          WHERE k.hash = $1
         UNION ALL
         SELECT 'r', r.name, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN keys_roles kr ON kr.key_id = k.id JOIN roles r ON r.id = kr.role_id
          WHERE k.hash = $1
         UNION ALL
         SELECT 'P', g.permission, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN root_key_permissions g ON g.key_id = k.id
          WHERE k.hash = $1
         UNION ALL
         SELECT 'i', i.id, i.external_id, i.meta, {T}, {T}, {T}, {T}, {T}, {T}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN identities i ON i.id = k.identity_id
          WHERE k.hash = $1
         UNION ALL
         SELECT 'l', l.id, l.name, 'key', {T}, {T}, {T}, {T}, {T}, {T}, l.lim, l.duration, l.auto_apply, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN ratelimits l ON l.key_id = k.id
          WHERE k.hash = $1
         UNION ALL
         SELECT 'l', l.id, l.name, 'identity', {T}, {T}, {T}, {T}, {T}, {T}, l.lim, l.duration, l.auto_apply, {N}, {N}, {N}, {N}, {N}, {N}
           FROM keys k JOIN ratelimits l ON l.identity_id = k.identity_id
          WHERE k.hash = $1 AND k.identity_id IS NOT NULL"
    )
}

fn text(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
}

fn num(row: &AnyRow, col: &str) -> Option<i64> {
    row.try_get::<Option<i64>, _>(col).ok().flatten()
}

impl Store {
    pub async fn load_snapshot(&self, hash: &KeyHash) -> StoreResult<Option<KeySnapshot>> {
        let rows = sqlx::query(&snapshot_sql())
            .bind(hash.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(assemble(&rows))
    }
}

fn assemble(rows: &[AnyRow]) -> Option<KeySnapshot> {
    let key_row = rows
        .iter()
        .find(|r| text(r, "kind").as_deref() == Some("k"))?;
    let mut permissions = Vec::new();
    let mut roles = Vec::new();
    let mut key_limits = Vec::new();
    let mut identity_limits = Vec::new();
    let mut identity = None;
    for r in rows {
        match text(r, "kind").as_deref() {
            Some("p") | Some("P") => permissions.extend(text(r, "t1")),
            Some("r") => roles.extend(text(r, "t1")),
            Some("i") => {
                identity = Some(Box::new(IdentitySnapshot {
                    id: text(r, "t1").unwrap_or_default(),
                    external_id: text(r, "t2").unwrap_or_default(),
                    meta: text(r, "t3"),
                }));
            }
            Some("l") => {
                let owner = if text(r, "t3").as_deref() == Some("key") {
                    LimitOwner::Key
                } else {
                    LimitOwner::Identity
                };
                let rule = RateLimitRule {
                    id: text(r, "t1").unwrap_or_default(),
                    name: text(r, "t2").unwrap_or_default(),
                    limit: to_u64(num(r, "n1").unwrap_or(0)),
                    duration_ms: to_u64(num(r, "n2").unwrap_or(1000)),
                    auto_apply: num(r, "n3").unwrap_or(0) != 0,
                    owner,
                };
                match owner {
                    LimitOwner::Key => key_limits.push(rule),
                    LimitOwner::Identity => identity_limits.push(rule),
                }
            }
            _ => {}
        }
    }
    // Row order from a UNION is unspecified; sort so snapshots compare and serialize stably.
    key_limits.sort_by(|a, b| a.name.cmp(&b.name));
    identity_limits.sort_by(|a, b| a.name.cmp(&b.name));

    let k = key_row;
    let credits = num(k, "n3").map(|remaining| SnapshotCredits {
        balance: CreditBalance {
            remaining: to_u64(remaining),
            last_refill_at: num(k, "n6").or_else(|| num(k, "n8")).unwrap_or(0),
        },
        refill: match (
            text(k, "t9").as_deref().and_then(RefillInterval::parse),
            num(k, "n4"),
        ) {
            (Some(interval), Some(amount)) => Some(Refill {
                interval,
                amount: to_u64(amount),
                refill_day: num(k, "n5").and_then(|d| u8::try_from(d).ok()),
            }),
            _ => None,
        },
    });
    Some(
        KeySnapshot {
            key_id: text(k, "t1").unwrap_or_default(),
            api_id: text(k, "t2").unwrap_or_default(),
            keyspace_id: text(k, "t3").unwrap_or_default(),
            workspace_id: text(k, "t4").unwrap_or_default(),
            for_workspace_id: text(k, "t5"),
            name: text(k, "t6"),
            meta: text(k, "t7"),
            enabled: num(k, "n1").unwrap_or(0) != 0,
            deleted: num(k, "n7").is_some() || num(k, "n9").is_some(),
            expires: num(k, "n2"),
            credits,
            ratelimits: KeySnapshot::merge_ratelimits(key_limits, identity_limits),
            permissions,
            roles,
            identity,
        }
        .normalized(),
    )
}
