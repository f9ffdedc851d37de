//! Rows and snapshots into the API's response shapes. A list loads what its items need in
//! a fixed number of queries, however long the page.

use std::collections::HashMap;

use keyway_core::api::keys::{
    IdentityData, KeyCreditsData, KeyData, RatelimitData, RatelimitRequest, RefillData,
};
use keyway_core::api::permissions::{PermissionData, RoleData};
use keyway_core::credits::{CreditBalance, Refill};
use keyway_core::snapshot::{KeySnapshot, LimitOwner, raw_meta};
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::ids;
use crate::state::AppState;
use crate::store::{IdentityRow, KeyRow, NewRatelimit, PermissionRow, RoleRow};

pub fn refill_of(r: &RefillData) -> Refill {
    Refill {
        interval: r.interval,
        amount: r.amount,
        refill_day: r.refill_day,
    }
}

pub fn refill_data(r: &Refill) -> RefillData {
    RefillData {
        interval: r.interval,
        amount: r.amount,
        refill_day: r.refill_day,
    }
}

pub fn new_ratelimits(limits: Option<&Vec<RatelimitRequest>>) -> Vec<NewRatelimit> {
    limits
        .map(|ls| {
            ls.iter()
                .map(|l| NewRatelimit {
                    name: l.name.clone(),
                    limit: l.limit,
                    duration: l.duration,
                    auto_apply: l.auto_apply,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Metadata as the text the database stores.
pub fn meta_text(meta: Option<&Map<String, Value>>) -> Option<String> {
    meta.map(|m| Value::Object(m.clone()).to_string())
}

pub fn permission_data(p: PermissionRow) -> PermissionData {
    PermissionData {
        id: p.id,
        name: p.name,
        slug: p.slug,
        description: p.description,
    }
}

/// The response shape of a key: the snapshot plus the row's dates, with the live balance.
pub fn key_data(row: &KeyRow, snap: &KeySnapshot, live: Option<CreditBalance>) -> KeyData {
    let now = ids::now_ms();
    let credits = snap.credits.map(|c| {
        let live = live.unwrap_or(c.balance).refilled(c.refill.as_ref(), now);
        KeyCreditsData {
            remaining: Some(live.remaining),
            refill: c.refill.as_ref().map(refill_data),
        }
    });
    let key_limits = snap.ratelimit_data(LimitOwner::Key);
    let identity = snap.identity_data().map(|mut i| {
        let limits = snap.ratelimit_data(LimitOwner::Identity);
        i.ratelimits = (!limits.is_empty()).then_some(limits);
        i
    });
    KeyData {
        key_id: row.id.clone(),
        start: row.start.clone(),
        enabled: snap.enabled,
        name: snap.name.clone(),
        meta: raw_meta(snap.meta.as_deref()),
        created_at: row.created_at,
        updated_at: row.updated_at,
        expires: snap.expires,
        permissions: (!snap.permissions.is_empty()).then(|| snap.permissions.clone()),
        roles: (!snap.roles.is_empty()).then(|| snap.roles.clone()),
        credits,
        identity,
        ratelimits: (!key_limits.is_empty()).then_some(key_limits),
        plaintext: None,
    }
}

/// The keys of `rows` that still exist, in order: one snapshot query and, where credits
/// are live in Redis, one round trip for all their balances.
pub async fn keys_data(state: &AppState, rows: &[KeyRow]) -> Result<Vec<KeyData>, AppError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let snaps = state.store.load_snapshots(&ids).await?;
    let live_rows: Vec<(&KeyRow, &KeySnapshot)> = rows
        .iter()
        .filter_map(|r| snaps.get(&r.id).filter(|s| !s.deleted).map(|s| (r, s)))
        .collect();
    let with_credits: Vec<&str> = live_rows
        .iter()
        .filter(|(_, s)| s.credits.is_some())
        .map(|(r, _)| r.id.as_str())
        .collect();
    let balances: HashMap<&str, CreditBalance> = with_credits
        .iter()
        .copied()
        .zip(state.live_credits_many(&with_credits).await?)
        .filter_map(|(id, b)| b.map(|b| (id, b)))
        .collect();
    Ok(live_rows
        .into_iter()
        .map(|(r, s)| key_data(r, s, balances.get(r.id.as_str()).copied()))
        .collect())
}

/// What `grouped` holds for `id`, converted, or `None` when it holds nothing: the API
/// leaves an empty list out.
fn children<R, T>(
    grouped: &mut HashMap<String, Vec<R>>,
    id: &str,
    convert: impl FnMut(R) -> T,
) -> Option<Vec<T>> {
    let items: Vec<T> = grouped
        .remove(id)
        .unwrap_or_default()
        .into_iter()
        .map(convert)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// Roles with their permissions, in one query for the whole list.
pub async fn roles_data(state: &AppState, rows: Vec<RoleRow>) -> Result<Vec<RoleData>, AppError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut perms = state.store.roles_permissions(&ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| RoleData {
            permissions: children(&mut perms, &r.id, permission_data),
            id: r.id,
            name: r.name,
            description: r.description,
        })
        .collect())
}

/// Identities with their rate limits, in one query for the whole list.
pub async fn identities_data(
    state: &AppState,
    rows: Vec<IdentityRow>,
) -> Result<Vec<IdentityData>, AppError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut limits = state.store.identities_ratelimits(&ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| IdentityData {
            ratelimits: children(&mut limits, &row.id, |l| RatelimitData {
                id: l.id,
                name: l.name,
                limit: l.limit,
                duration: l.duration,
                auto_apply: l.auto_apply,
            }),
            meta: raw_meta(row.meta.as_deref()),
            id: row.id,
            external_id: row.external_id,
        })
        .collect())
}
