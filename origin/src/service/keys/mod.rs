//! `keys.*` except verifyKey, one room per concern.

pub mod credits;
pub mod crud;
pub mod grants;
pub mod migrate;

use keyway_core::auth::RootScope;

use crate::service::access::may_create_permissions;
use crate::service::validate::KeyFields;
use crate::service::views::{meta_text, new_ratelimits, refill_of};
use crate::store::{ApiRow, NewKey};

/// What createKey and migrateKeys store for a new key of `api`.
#[allow(clippy::too_many_arguments)]
fn new_api_key(
    caller: &RootScope,
    api: &ApiRow,
    key_id: &str,
    hash: &str,
    start: &str,
    f: &KeyFields<'_>,
    enabled: Option<bool>,
    now: i64,
) -> NewKey {
    // Credits without a count are unlimited, the same as no credits at all.
    let credits = f.credits.filter(|c| c.remaining.is_some());
    NewKey {
        id: key_id.to_string(),
        hash: hash.to_string(),
        start: start.to_string(),
        workspace_id: caller.workspace_id().to_string(),
        for_workspace_id: None,
        api_id: Some(api.id.clone()),
        keyspace_id: Some(api.keyspace_id.clone()),
        identity_id: None,
        external_id: f.external_id.cloned(),
        name: f.name.cloned(),
        meta: meta_text(f.meta),
        enabled: enabled.unwrap_or(true),
        expires: f.expires,
        remaining: credits.and_then(|c| c.remaining),
        refill: credits.and_then(|c| c.refill.as_ref().map(refill_of)),
        created_at: now,
        ratelimits: new_ratelimits(f.ratelimits),
        permissions: f.permissions.cloned().unwrap_or_default(),
        create_permissions: may_create_permissions(caller),
        roles: f.roles.cloned().unwrap_or_default(),
        root_permissions: Vec::new(),
        encrypted: None,
    }
}
