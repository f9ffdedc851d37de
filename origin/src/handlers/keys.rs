//! `keys.*` except verifyKey: create, read, update, delete, credits, reroll, grants.

use axum::extract::State;
use axum::http::HeaderMap;
use keyway_core::api::Patch;
use keyway_core::api::keys::{
    CreateKeyRequest, CreateKeyResponseData, CreditOperation, DeleteKeyRequest, GetKeyRequest,
    KeyCreditsData, KeyData, KeyPermissionsRequest, KeyRolesRequest, RatelimitRequest, RefillData,
    RerollKeyRequest, UpdateCreditsRequest, UpdateKeyRequest, WhoamiRequest,
};
use keyway_core::api::permissions::{PermissionData, RoleData};
use keyway_core::api::{Empty, int64};
use keyway_core::auth::RootScope;
use keyway_core::credits::{CreditBalance, Refill, RefillInterval};
use keyway_core::error::{ApiError, ValidationIssue};
use keyway_core::key::{DEFAULT_BYTE_LENGTH, KeyHash};
use keyway_core::snapshot::{KeySnapshot, LimitOwner, raw_meta};
use keyway_core::validate::{Issues, is_external_id_byte, is_slug_byte};
use serde_json::{Map, Value};

use super::{api_not_found, authorize, key_not_found, meta_text, permission_data};
use crate::http::{ApiResult, AppError, Json, ok};
use crate::ids;
use crate::state::AppState;
use crate::store::{HashFilter, KeyRow, KeyUpdate, Missing, NewKey, NewRatelimit, SetOp};

const MAX_EXPIRES: i64 = 4_102_444_800_000;

fn validate_meta(v: &mut Issues, loc: &str, meta: Option<&Map<String, Value>>) {
    if let Some(m) = meta {
        v.check(m.len() <= 100, loc, || {
            "may have at most 100 properties".into()
        });
    }
}

pub fn validate_ratelimits(v: &mut Issues, loc: &str, limits: Option<&Vec<RatelimitRequest>>) {
    let Some(limits) = limits else { return };
    v.check(limits.len() <= 50, loc, || {
        "may have at most 50 items".into()
    });
    v.unique(loc, limits, |l| l.name.as_str());
    for (i, l) in limits.iter().enumerate() {
        v.length(&format!("{loc}[{i}].name"), &l.name, 3, 128);
        v.range(&format!("{loc}[{i}].limit"), l.limit, 1, int64::MAX);
        v.range(
            &format!("{loc}[{i}].duration"),
            l.duration,
            1000,
            2_592_000_000,
        );
    }
}

fn validate_refill(v: &mut Issues, loc: &str, r: &RefillData) {
    v.range(&format!("{loc}.amount"), r.amount, 1, i64::MAX as u64);
    if let Some(day) = r.refill_day {
        v.range(&format!("{loc}.refillDay"), u64::from(day), 1, 31);
        v.check(
            r.interval == RefillInterval::Monthly,
            &format!("{loc}.refillDay"),
            || "is only allowed with the monthly interval".into(),
        );
    }
}

fn validate_permissions(v: &mut Issues, loc: &str, perms: Option<&Vec<String>>, max: usize) {
    let Some(perms) = perms else { return };
    v.check(perms.len() <= max, loc, || {
        format!("may have at most {max} items")
    });
    for (i, p) in perms.iter().enumerate() {
        v.length(&format!("{loc}[{i}]"), p, 1, 128);
        v.pattern(
            &format!("{loc}[{i}]"),
            p,
            is_slug_byte,
            "letters, digits and _ : - . *",
        );
    }
}

fn validate_roles(v: &mut Issues, loc: &str, roles: Option<&Vec<String>>) {
    let Some(roles) = roles else { return };
    v.check(roles.len() <= 100, loc, || {
        "may have at most 100 items".into()
    });
    for (i, r) in roles.iter().enumerate() {
        v.length(&format!("{loc}[{i}]"), r, 1, 128);
    }
}

fn validate_external_id(v: &mut Issues, loc: &str, id: &str) {
    v.length(loc, id, 1, 255);
    v.pattern(loc, id, is_external_id_byte, "letters, digits and _ . -");
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

fn refill_of(r: &RefillData) -> Refill {
    Refill {
        interval: r.interval,
        amount: r.amount,
        refill_day: r.refill_day,
    }
}

fn refill_data(r: &Refill) -> RefillData {
    RefillData {
        interval: r.interval,
        amount: r.amount,
        refill_day: r.refill_day,
    }
}

fn missing_to_error(m: Missing) -> AppError {
    match m {
        Missing::Role(name) => AppError(super::role_not_found(&name)),
        Missing::Permission(slug) => AppError(ApiError::forbidden(format!(
            "The permission '{slug}' does not exist, and the root key lacks 'rbac.*.create_permission' to create it."
        ))),
    }
}

/// The `rbac.*` grants a change to a key's permissions or roles needs, on top of the
/// `api.*` grant on the key itself. Without them, a root key meant only to disable keys
/// could hand any key any permission. `Set` both adds and removes, so it needs both.
fn require_grant_changes(
    caller: &RootScope,
    permissions: Option<SetOp>,
    roles: Option<SetOp>,
) -> Result<(), AppError> {
    let needs = |op: SetOp, add: &'static str, remove: &'static str| {
        let add = matches!(op, SetOp::Add | SetOp::Set).then_some(add);
        let remove = matches!(op, SetOp::Remove | SetOp::Set).then_some(remove);
        add.into_iter().chain(remove)
    };
    let actions = permissions
        .into_iter()
        .flat_map(|op| needs(op, "add_permission_to_key", "remove_permission_from_key"))
        .chain(
            roles
                .into_iter()
                .flat_map(|op| needs(op, "add_role_to_key", "remove_role_from_key")),
        );
    for action in actions {
        caller.require("rbac", None, action)?;
    }
    Ok(())
}

/// Whether missing permission slugs may be created on the way (Unkey's implicit creation).
fn may_create_permissions(caller: &RootScope) -> bool {
    caller.allows("rbac", None, "create_permission")
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
    }
}

pub async fn load_key_data(state: &AppState, row: &KeyRow) -> Result<Option<KeyData>, AppError> {
    let snap = state
        .store
        .load_snapshot(&KeyHash::from_stored(row.hash.clone()))
        .await?;
    let Some(snap) = snap.filter(|s| !s.deleted) else {
        return Ok(None);
    };
    let live = match snap.credits {
        Some(_) => state.live_credits(&row.id).await?,
        None => None,
    };
    Ok(Some(key_data(row, &snap, live)))
}

/// A live key of the caller's workspace that the caller may `action`.
async fn key_for(
    state: &AppState,
    caller: &RootScope,
    key_id: &str,
    action: &str,
) -> Result<KeyRow, AppError> {
    let row = state
        .store
        .find_key(caller.workspace_id(), key_id)
        .await?
        .ok_or_else(|| AppError(key_not_found()))?;
    authorize(caller, "api", row.api_id.as_deref(), action, key_not_found)?;
    Ok(row)
}

pub async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<CreateKeyRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.id("body.apiId", &req.api_id);
    if let Some(p) = &req.prefix {
        v.check(
            keyway_core::key::validate_prefix(p).is_ok(),
            "body.prefix",
            || "must be 1 to 16 letters, digits or underscores".into(),
        );
    }
    if let Some(n) = &req.name {
        v.length("body.name", n, 1, 255);
    }
    if let Some(b) = req.byte_length {
        v.range("body.byteLength", b, 16, 255);
    }
    if let Some(e) = &req.external_id {
        validate_external_id(&mut v, "body.externalId", e);
    }
    validate_meta(&mut v, "body.meta", req.meta.as_ref());
    validate_roles(&mut v, "body.roles", req.roles.as_ref());
    validate_permissions(&mut v, "body.permissions", req.permissions.as_ref(), 1000);
    if let Some(e) = req.expires {
        v.check((0..=MAX_EXPIRES).contains(&e), "body.expires", || {
            format!("must be between 0 and {MAX_EXPIRES}")
        });
    }
    if let Some(c) = &req.credits
        && let Some(r) = &c.refill
    {
        validate_refill(&mut v, "body.credits.refill", r);
        v.check(c.remaining.is_some(), "body.credits.refill", || {
            "needs credits.remaining to be set".into()
        });
    }
    validate_ratelimits(&mut v, "body.ratelimits", req.ratelimits.as_ref());
    v.finish()?;

    let caller = state.authenticate(&headers).await?;
    require_grant_changes(
        &caller,
        req.permissions
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|_| SetOp::Add),
        req.roles
            .as_ref()
            .filter(|r| !r.is_empty())
            .map(|_| SetOp::Add),
    )?;
    authorize(
        &caller,
        "api",
        Some(&req.api_id),
        "create_key",
        api_not_found,
    )?;
    let api = state
        .store
        .find_api(caller.workspace_id(), &req.api_id)
        .await?
        .ok_or_else(|| AppError(api_not_found()))?;

    let now = ids::now_ms();
    let byte_length = req.byte_length.map_or(DEFAULT_BYTE_LENGTH, |b| {
        usize::try_from(b).unwrap_or(DEFAULT_BYTE_LENGTH)
    });
    let minted = ids::mint_key(req.prefix.as_deref(), byte_length)
        .map_err(|e| AppError(ApiError::invalid_input(e.to_string(), Vec::new())))?;
    let identity_id = match &req.external_id {
        Some(ext) => Some(
            state
                .store
                .upsert_identity(caller.workspace_id(), ext, now)
                .await?,
        ),
        None => None,
    };
    let key_id = ids::new_id("key");
    let credits = req.credits.filter(|c| c.remaining.is_some());
    let new = NewKey {
        id: key_id.clone(),
        hash: minted.hash.as_str().to_string(),
        start: minted.start.clone(),
        workspace_id: caller.workspace_id().to_string(),
        for_workspace_id: None,
        api_id: Some(api.id.clone()),
        keyspace_id: Some(api.keyspace_id.clone()),
        identity_id,
        name: req.name.clone(),
        meta: meta_text(&req.meta),
        enabled: req.enabled.unwrap_or(true),
        expires: req.expires,
        remaining: credits.and_then(|c| c.remaining),
        refill: credits.and_then(|c| c.refill.as_ref().map(refill_of)),
        created_at: now,
        ratelimits: new_ratelimits(req.ratelimits.as_ref()),
        permissions: req.permissions.clone().unwrap_or_default(),
        create_permissions: may_create_permissions(&caller),
        roles: req.roles.clone().unwrap_or_default(),
        root_permissions: Vec::new(),
    };
    state
        .store
        .insert_key(&new)
        .await?
        .map_err(missing_to_error)?;
    // A "not found" for this hash may be cached from before the key existed.
    state.forget([minted.hash.as_str()]).await;
    ok(CreateKeyResponseData {
        key_id,
        key: minted.key,
    })
}

fn validate_key_id(v: &mut Issues, key_id: &str) {
    v.id("body.keyId", key_id);
}

pub async fn get_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<GetKeyRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    let row = key_for(&state, &caller, &req.key_id, "read_key").await?;
    let data = load_key_data(&state, &row)
        .await?
        .ok_or_else(|| AppError(key_not_found()))?;
    ok(data)
}

pub async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<WhoamiRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.key", req.key.expose(), 1, 512);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    let hash = req.key.hash();
    let row = state
        .store
        .find_key_by_hash(hash.as_str())
        .await?
        .filter(|r| r.workspace_id == caller.workspace_id() && r.api_id.is_some())
        .ok_or_else(|| AppError(key_not_found()))?;
    authorize(
        &caller,
        "api",
        row.api_id.as_deref(),
        "read_key",
        key_not_found,
    )?;
    let data = load_key_data(&state, &row)
        .await?
        .ok_or_else(|| AppError(key_not_found()))?;
    ok(data)
}

pub async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<DeleteKeyRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    let row = key_for(&state, &caller, &req.key_id, "delete_key").await?;
    let now = ids::now_ms();
    if req.permanent {
        state.store.hard_delete_key(&row.id).await?;
    } else {
        state.store.soft_delete_key(&row.id, now).await?;
    }
    state.forget([row.hash.as_str()]).await;
    ok(Empty {})
}

pub async fn update_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<UpdateKeyRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    if let Patch::Value(n) = &req.name {
        v.length("body.name", n, 1, 255);
    }
    if let Patch::Value(e) = &req.external_id {
        validate_external_id(&mut v, "body.externalId", e);
    }
    if let Patch::Value(m) = &req.meta {
        validate_meta(&mut v, "body.meta", Some(m));
    }
    if let Patch::Value(e) = req.expires {
        v.check((0..=MAX_EXPIRES).contains(&e), "body.expires", || {
            format!("must be between 0 and {MAX_EXPIRES}")
        });
    }
    if let Patch::Value(c) = &req.credits
        && let Patch::Value(r) = &c.refill
    {
        validate_refill(&mut v, "body.credits.refill", r);
    }
    validate_ratelimits(&mut v, "body.ratelimits", req.ratelimits.as_ref());
    validate_roles(&mut v, "body.roles", req.roles.as_ref());
    validate_permissions(&mut v, "body.permissions", req.permissions.as_ref(), 1000);
    v.finish()?;

    let caller = state.authenticate(&headers).await?;
    require_grant_changes(
        &caller,
        req.permissions.as_ref().map(|_| SetOp::Set),
        req.roles.as_ref().map(|_| SetOp::Set),
    )?;
    let row = key_for(&state, &caller, &req.key_id, "update_key").await?;
    let now = ids::now_ms();
    let identity_id = match &req.external_id {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(ext) => Some(Some(
            state
                .store
                .upsert_identity(caller.workspace_id(), ext, now)
                .await?,
        )),
    };
    // Credits: `null` makes the key unlimited; `remaining` goes through the ledger so a
    // pending write-behind cannot overwrite it.
    let (remaining, refill): (Option<Option<u64>>, Option<Option<Refill>>) = match &req.credits {
        Patch::Absent => (None, None),
        Patch::Null => (Some(None), Some(None)),
        Patch::Value(c) => (
            c.remaining.as_option().map(|r| r.copied()),
            c.refill.as_option().map(|r| r.map(refill_of)),
        ),
    };
    let update = KeyUpdate {
        name: req.name.as_option().map(|o| o.cloned()),
        meta: req
            .meta
            .as_option()
            .map(|o| o.map(|m| Value::Object(m.clone()).to_string())),
        expires: req.expires.as_option().map(|o| o.copied()),
        enabled: req.enabled,
        identity_id,
        refill,
        ratelimits: req
            .ratelimits
            .as_ref()
            .map(|_| new_ratelimits(req.ratelimits.as_ref())),
        permissions: req.permissions.clone(),
        roles: req.roles.clone(),
        create_permissions: may_create_permissions(&caller),
    };
    state
        .store
        .update_key(&row.id, caller.workspace_id(), &update, now)
        .await?
        .map_err(missing_to_error)?;
    if let Some(remaining) = remaining {
        state
            .change_credits(&row.id, None, |_| {
                remaining.map(|r| CreditBalance {
                    remaining: r,
                    last_refill_at: now,
                })
            })
            .await?;
    }
    state.forget([row.hash.as_str()]).await;
    ok(Empty {})
}

pub async fn update_credits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<UpdateCreditsRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    if req.operation != CreditOperation::Set {
        v.check(req.value.is_some(), "body.value", || {
            "is required for increment and decrement".into()
        });
    }
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    let row = key_for(&state, &caller, &req.key_id, "update_key").await?;
    let snap = state
        .store
        .load_snapshot(&KeyHash::from_stored(row.hash.clone()))
        .await?
        .ok_or_else(|| AppError(key_not_found()))?;
    let now = ids::now_ms();
    if req.operation != CreditOperation::Set && snap.credits.is_none() {
        return Err(AppError(ApiError::invalid_input(
            "The key has unlimited credits; set a value before incrementing or decrementing.",
            vec![ValidationIssue::new(
                "body.operation",
                "cannot change unlimited credits",
            )],
        )));
    }
    let refill = snap.credits.and_then(|c| c.refill);
    let stored = snap.credits.map(|c| c.balance);
    let new = state
        .change_credits(&row.id, stored, |live| {
            let live = live.map(|b| b.refilled(refill.as_ref(), now));
            let base = live.unwrap_or(CreditBalance {
                remaining: 0,
                last_refill_at: now,
            });
            match (req.operation, req.value) {
                (CreditOperation::Set, None) => None,
                (CreditOperation::Set, Some(v)) => Some(CreditBalance {
                    remaining: v,
                    ..base
                }),
                (CreditOperation::Increment, v) => Some(CreditBalance {
                    remaining: base.remaining.saturating_add(v.unwrap_or(0)),
                    ..base
                }),
                (CreditOperation::Decrement, v) => Some(CreditBalance {
                    remaining: base.remaining.saturating_sub(v.unwrap_or(0)),
                    ..base
                }),
            }
        })
        .await?;
    if new.is_none() {
        // Unlimited now: the refill no longer means anything.
        let clear = KeyUpdate {
            refill: Some(None),
            ..KeyUpdate::default()
        };
        state
            .store
            .update_key(&row.id, caller.workspace_id(), &clear, now)
            .await?
            .map_err(missing_to_error)?;
    }
    state.forget([row.hash.as_str()]).await;
    ok(KeyCreditsData {
        remaining: new.map(|b| b.remaining),
        refill: if new.is_some() {
            refill.as_ref().map(refill_data)
        } else {
            None
        },
    })
}

pub async fn reroll_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<RerollKeyRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    v.check(
        (0..=MAX_EXPIRES).contains(&req.expiration),
        "body.expiration",
        || format!("must be between 0 and {MAX_EXPIRES}"),
    );
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    let row = key_for(&state, &caller, &req.key_id, "create_key").await?;
    let snap = state
        .store
        .load_snapshot(&KeyHash::from_stored(row.hash.clone()))
        .await?
        .ok_or_else(|| AppError(key_not_found()))?;
    let now = ids::now_ms();
    let prefix = row.start.rsplit_once('_').map(|(p, _)| p.to_string());
    let minted = ids::mint_key(prefix.as_deref(), DEFAULT_BYTE_LENGTH)
        .map_err(|e| AppError(ApiError::internal(e.to_string())))?;
    let live = state.live_credits(&row.id).await?;
    let new_id = ids::new_id("key");
    let new = NewKey {
        id: new_id.clone(),
        hash: minted.hash.as_str().to_string(),
        start: minted.start.clone(),
        workspace_id: caller.workspace_id().to_string(),
        for_workspace_id: None,
        api_id: row.api_id.clone(),
        keyspace_id: Some(snap.keyspace_id.clone()),
        identity_id: snap.identity.as_ref().map(|i| i.id.clone()),
        name: snap.name.clone(),
        meta: snap.meta.clone(),
        enabled: snap.enabled,
        expires: snap.expires,
        remaining: snap.credits.map(|c| live.unwrap_or(c.balance).remaining),
        refill: snap.credits.and_then(|c| c.refill),
        created_at: now,
        ratelimits: snap
            .ratelimits
            .iter()
            .filter(|r| r.owner == LimitOwner::Key)
            .map(|r| NewRatelimit {
                name: r.name.clone(),
                limit: r.limit,
                duration: r.duration_ms,
                auto_apply: r.auto_apply,
            })
            .collect(),
        permissions: state
            .store
            .key_permissions(&row.id)
            .await?
            .into_iter()
            .map(|p| p.slug)
            .collect(),
        // The copy grants nothing new: these permissions exist already.
        create_permissions: true,
        roles: state
            .store
            .key_roles(&row.id)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
        root_permissions: Vec::new(),
    };
    state
        .store
        .insert_key(&new)
        .await?
        .map_err(missing_to_error)?;
    let old_expires = now.saturating_add(req.expiration);
    let expire = KeyUpdate {
        expires: Some(Some(old_expires)),
        ..KeyUpdate::default()
    };
    state
        .store
        .update_key(&row.id, caller.workspace_id(), &expire, now)
        .await?
        .map_err(missing_to_error)?;
    state
        .cache
        .invalidate([row.hash.as_str(), minted.hash.as_str()]);
    ok(CreateKeyResponseData {
        key_id: new_id,
        key: minted.key,
    })
}

async fn change_permissions(
    state: AppState,
    headers: HeaderMap,
    req: KeyPermissionsRequest,
    op: SetOp,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    v.check(
        op == SetOp::Set || !req.permissions.is_empty(),
        "body.permissions",
        || "must have at least 1 item".into(),
    );
    validate_permissions(&mut v, "body.permissions", Some(&req.permissions), 1000);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    require_grant_changes(&caller, Some(op), None)?;
    let row = key_for(&state, &caller, &req.key_id, "update_key").await?;
    state
        .store
        .change_key_permissions(
            &row.id,
            caller.workspace_id(),
            &req.permissions,
            op,
            ids::now_ms(),
            may_create_permissions(&caller),
        )
        .await?
        .map_err(missing_to_error)?;
    state.invalidate(HashFilter::Key(&row.id)).await?;
    let perms: Vec<PermissionData> = state
        .store
        .key_permissions(&row.id)
        .await?
        .into_iter()
        .map(permission_data)
        .collect();
    ok(perms)
}

pub async fn add_permissions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<KeyPermissionsRequest>,
) -> ApiResult {
    change_permissions(state, headers, req, SetOp::Add).await
}

pub async fn set_permissions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<KeyPermissionsRequest>,
) -> ApiResult {
    change_permissions(state, headers, req, SetOp::Set).await
}

pub async fn remove_permissions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<KeyPermissionsRequest>,
) -> ApiResult {
    change_permissions(state, headers, req, SetOp::Remove).await
}

async fn change_roles(
    state: AppState,
    headers: HeaderMap,
    req: KeyRolesRequest,
    op: SetOp,
) -> ApiResult {
    let mut v = Issues::new();
    validate_key_id(&mut v, &req.key_id);
    v.check(
        op == SetOp::Set || !req.roles.is_empty(),
        "body.roles",
        || "must have at least 1 item".into(),
    );
    validate_roles(&mut v, "body.roles", Some(&req.roles));
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    require_grant_changes(&caller, None, Some(op))?;
    let row = key_for(&state, &caller, &req.key_id, "update_key").await?;
    state
        .store
        .change_key_roles(
            &row.id,
            caller.workspace_id(),
            &req.roles,
            op,
            ids::now_ms(),
        )
        .await?
        .map_err(missing_to_error)?;
    state.invalidate(HashFilter::Key(&row.id)).await?;
    let mut roles = Vec::new();
    for r in state.store.key_roles(&row.id).await? {
        let perms: Vec<PermissionData> = state
            .store
            .role_permissions(&r.id)
            .await?
            .into_iter()
            .map(permission_data)
            .collect();
        roles.push(RoleData {
            id: r.id,
            name: r.name,
            description: r.description,
            permissions: (!perms.is_empty()).then_some(perms),
        });
    }
    ok(roles)
}

pub async fn add_roles(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<KeyRolesRequest>,
) -> ApiResult {
    change_roles(state, headers, req, SetOp::Add).await
}

pub async fn set_roles(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<KeyRolesRequest>,
) -> ApiResult {
    change_roles(state, headers, req, SetOp::Set).await
}

pub async fn remove_roles(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<KeyRolesRequest>,
) -> ApiResult {
    change_roles(state, headers, req, SetOp::Remove).await
}
