//! Keys themselves: create, read, update, delete, reroll.

use crate::service::Caller;
use crate::service::validate::Validate;
use keyway_core::api::keys::{
    CreateKeyRequest, CreateKeyResponseData, DeleteKeyRequest, GetKeyRequest, RerollKeyRequest,
    UpdateKeyRequest, WhoamiRequest,
};
use keyway_core::api::{Empty, Patch};
use keyway_core::auth::Action;
use keyway_core::credits::{CreditBalance, Refill};
use keyway_core::error::ApiError;
use keyway_core::key::DEFAULT_BYTE_LENGTH;
use keyway_core::snapshot::LimitOwner;
use keyway_core::validate::Issues;
use serde::Serialize;

use super::new_api_key;
use crate::error::AppError;
use crate::ids;
use crate::service::access::{authorize, may_create_permissions, require_grant_changes};
use crate::service::resources::{api_for, key_for, snapshot_for};
use crate::service::views::{self, meta_text, new_ratelimits, refill_of};
use crate::service::{recovery, validate};
use crate::store::{KeyRow, KeyUpdate, NewKey, NewRatelimit, SetOp};
use keyway_core::not_found;

/// One key's response shape, or "not found" if it was deleted meanwhile; with its
/// plaintext for `decrypt: true` if it is recoverable.
async fn key_data(
    caller: &Caller<'_>,
    row: KeyRow,
    decrypt: Option<bool>,
) -> Result<keyway_core::api::keys::KeyData, AppError> {
    let mut data = views::keys_data(caller.state, std::slice::from_ref(&row)).await?;
    if decrypt == Some(true)
        && let Some(api_id) = &row.api_id
    {
        recovery::reveal(caller, api_id, &mut data).await?;
    }
    data.pop().ok_or_else(|| AppError::Client(not_found::key()))
}

pub async fn create_key(
    caller: &Caller<'_>,
    req: CreateKeyRequest,
) -> Result<impl Serialize, AppError> {
    require_grant_changes(
        caller,
        req.permissions
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(|_| SetOp::Add),
        req.roles
            .as_ref()
            .filter(|r| !r.is_empty())
            .map(|_| SetOp::Add),
    )?;
    let api = api_for(caller, &req.api_id, Action::CreateKey).await?;

    let now = ids::now_ms();
    let byte_length = req.byte_length.map_or(DEFAULT_BYTE_LENGTH, |b| {
        usize::try_from(b).unwrap_or(DEFAULT_BYTE_LENGTH)
    });
    let minted = ids::mint_key(req.prefix.as_deref(), byte_length)
        .map_err(|e| AppError::Client(ApiError::invalid_input(e.to_string(), Vec::new())))?;
    let key_id = ids::new_id("key");
    // The identity is created in the key's transaction: a refused key leaves none behind.
    let mut new = new_api_key(
        caller,
        &api,
        &key_id,
        minted.hash.as_str(),
        &minted.start,
        &create_fields(&req),
        req.enabled,
        now,
    );
    if req.recoverable == Some(true) {
        new.encrypted = Some(recovery::seal(caller, &api.id, &key_id, &minted.key)?);
    }
    caller.store().insert_key(&new).await?;
    // A "not found" for this hash may be cached from before the key existed.
    caller.state.forget([minted.hash.as_str()]).await;
    Ok(CreateKeyResponseData {
        key_id,
        key: minted.key,
    })
}

pub async fn get_key(caller: &Caller<'_>, req: GetKeyRequest) -> Result<impl Serialize, AppError> {
    let row = key_for(caller, &req.key_id, Action::ReadKey).await?;
    key_data(caller, row, req.decrypt).await
}

pub async fn whoami(caller: &Caller<'_>, req: WhoamiRequest) -> Result<impl Serialize, AppError> {
    let hash = req.key.hash();
    let row = caller
        .store()
        .find_key_by_hash(hash.as_str())
        .await?
        .filter(|r| r.workspace_id == caller.workspace_id() && r.api_id.is_some())
        .ok_or_else(|| AppError::Client(not_found::key()))?;
    authorize(
        caller,
        Action::ReadKey,
        row.api_id.as_deref(),
        not_found::key,
    )?;
    key_data(caller, row, req.decrypt).await
}

pub async fn delete_key(
    caller: &Caller<'_>,
    req: DeleteKeyRequest,
) -> Result<impl Serialize, AppError> {
    let row = key_for(caller, &req.key_id, Action::DeleteKey).await?;
    let now = ids::now_ms();
    if req.permanent {
        caller.store().hard_delete_key(&row.id).await?;
    } else {
        caller.store().soft_delete_key(&row.id, now).await?;
    }
    caller.state.forget([row.hash.as_str()]).await;
    caller.state.drop_credits(&row.id).await?;
    Ok(Empty {})
}

pub async fn update_key(
    caller: &Caller<'_>,
    req: UpdateKeyRequest,
) -> Result<impl Serialize, AppError> {
    require_grant_changes(
        caller,
        req.permissions.as_ref().map(|_| SetOp::Set),
        req.roles.as_ref().map(|_| SetOp::Set),
    )?;
    let row = key_for(caller, &req.key_id, Action::UpdateKey).await?;
    let now = ids::now_ms();
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
        meta: req.meta.as_option().map(|o| meta_text(o)),
        expires: req.expires.as_option().map(|o| o.copied()),
        enabled: req.enabled,
        external_id: req.external_id.as_option().map(|o| o.cloned()),
        refill,
        ratelimits: req
            .ratelimits
            .as_ref()
            .map(|_| new_ratelimits(req.ratelimits.as_ref())),
        permissions: req.permissions.clone(),
        roles: req.roles.clone(),
        create_permissions: may_create_permissions(caller),
    };
    caller
        .store()
        .update_key(&row.id, caller.workspace_id(), &update, now)
        .await?;
    if let Some(remaining) = remaining {
        caller
            .state
            .change_credits(&row.id, None, |_| {
                remaining.map(|r| CreditBalance {
                    remaining: r,
                    last_refill_at: now,
                })
            })
            .await?;
    }
    caller.state.forget([row.hash.as_str()]).await;
    Ok(Empty {})
}

pub async fn reroll_key(
    caller: &Caller<'_>,
    req: RerollKeyRequest,
) -> Result<impl Serialize, AppError> {
    let row = key_for(caller, &req.key_id, Action::CreateKey).await?;
    let snap = snapshot_for(caller.state, &row).await?;
    let now = ids::now_ms();
    let prefix = row.start.rsplit_once('_').map(|(p, _)| p.to_string());
    let minted = ids::mint_key(prefix.as_deref(), DEFAULT_BYTE_LENGTH).map_err(|e| {
        AppError::internal("could not mint a key", "A new key could not be made.", e)
    })?;
    let live = caller.state.live_credits(&row.id).await?;
    let new_id = ids::new_id("key");
    // A recoverable key's successor is recoverable too.
    let encrypted = match &row.api_id {
        Some(api_id) if !caller.store().sealed_keys(&[&row.id]).await?.is_empty() => {
            Some(recovery::seal(caller, api_id, &new_id, &minted.key)?)
        }
        _ => None,
    };
    let new = NewKey {
        id: new_id.clone(),
        hash: minted.hash.as_str().to_string(),
        start: minted.start.clone(),
        workspace_id: caller.workspace_id().to_string(),
        for_workspace_id: None,
        api_id: row.api_id.clone(),
        keyspace_id: Some(snap.keyspace_id.clone()),
        identity_id: snap.identity.as_ref().map(|i| i.id.clone()),
        external_id: None,
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
        permissions: caller
            .store()
            .key_permissions(&row.id)
            .await?
            .into_iter()
            .map(|p| p.slug)
            .collect(),
        // The copy grants nothing new: these permissions exist already.
        create_permissions: true,
        roles: caller
            .store()
            .key_roles(&row.id)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
        root_permissions: Vec::new(),
        encrypted,
    };
    caller.store().insert_key(&new).await?;
    let old_expires = now.saturating_add(req.expiration);
    let expire = KeyUpdate {
        expires: Some(Some(old_expires)),
        ..KeyUpdate::default()
    };
    caller
        .store()
        .update_key(&row.id, caller.workspace_id(), &expire, now)
        .await?;
    caller
        .state
        .caches
        .snapshots
        .invalidate([row.hash.as_str(), minted.hash.as_str()]);
    Ok(CreateKeyResponseData {
        key_id: new_id,
        key: minted.key,
    })
}

/// The fields a new key is made of, as validation and the store both read them.
fn create_fields(req: &CreateKeyRequest) -> validate::KeyFields<'_> {
    validate::KeyFields {
        name: req.name.as_ref(),
        external_id: req.external_id.as_ref(),
        meta: req.meta.as_ref(),
        roles: req.roles.as_ref(),
        permissions: req.permissions.as_ref(),
        expires: req.expires,
        credits: req.credits.as_ref(),
        ratelimits: req.ratelimits.as_ref(),
    }
}

impl Validate for CreateKeyRequest {
    fn issues(&self, v: &mut Issues) {
        v.id("body.apiId", &self.api_id);
        if let Some(p) = &self.prefix {
            v.check(
                keyway_core::key::validate_prefix(p).is_ok(),
                "body.prefix",
                || "must be 1 to 16 letters, digits or underscores".into(),
            );
        }
        if let Some(b) = self.byte_length {
            v.range("body.byteLength", b, 16, 255);
        }
        validate::key_fields(v, "body", &create_fields(self));
    }
}

impl Validate for GetKeyRequest {
    fn issues(&self, v: &mut Issues) {
        validate::key_id(v, &self.key_id);
    }
}

impl Validate for WhoamiRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.key", self.key.expose(), 1, 512);
    }
}

impl Validate for DeleteKeyRequest {
    fn issues(&self, v: &mut Issues) {
        validate::key_id(v, &self.key_id);
    }
}

impl Validate for UpdateKeyRequest {
    fn issues(&self, v: &mut Issues) {
        validate::key_id(v, &self.key_id);
        if let Patch::Value(n) = &self.name {
            v.length("body.name", n, 1, 255);
        }
        if let Patch::Value(e) = &self.external_id {
            validate::external_id(v, "body.externalId", e);
        }
        if let Patch::Value(m) = &self.meta {
            validate::meta(v, "body.meta", Some(m));
        }
        if let Patch::Value(e) = self.expires {
            validate::expires(v, "body.expires", e);
        }
        if let Patch::Value(c) = &self.credits
            && let Patch::Value(r) = &c.refill
        {
            validate::refill(v, "body.credits.refill", r);
        }
        validate::ratelimits(v, "body.ratelimits", self.ratelimits.as_ref());
        validate::roles(v, "body.roles", self.roles.as_ref());
        validate::permissions(v, "body.permissions", self.permissions.as_ref(), 1000);
    }
}

impl Validate for RerollKeyRequest {
    fn issues(&self, v: &mut Issues) {
        validate::key_id(v, &self.key_id);
        validate::expires(v, "body.expiration", self.expiration);
    }
}
