//! keys.migrateKeys: moving keys in from another system by their hashes.

use crate::error::AppError;
use crate::service::Caller;
use crate::service::validate::Validate;
use keyway_core::api::keys::{MigrateKeysRequest, MigrateKeysResponseData, MigratedKey};
use keyway_core::auth::Action;
use keyway_core::key::{ImportedHash, KeyHash};
use keyway_core::validate::Issues;
use serde::Serialize;

use super::new_api_key;
use crate::ids;
use crate::service::access::require_grant_changes;
use crate::service::resources::api_for;
use crate::service::validate::{self, KeyFields};
use crate::store::SetOp;

/// Keys per request. Unkey's schema sets no bound; one batch is one transaction, so this
/// keeps a batch's write lock short (the 1 MiB body limit allows a few thousand keys).
pub const MAX_BATCH: usize = 1000;

pub async fn migrate_keys(
    caller: &Caller<'_>,
    req: MigrateKeysRequest,
) -> Result<impl Serialize, AppError> {
    let any = |list: Option<&Vec<String>>| list.is_some_and(|l| !l.is_empty());
    require_grant_changes(
        caller,
        req.keys
            .iter()
            .any(|k| any(k.permissions.as_ref()))
            .then_some(SetOp::Add),
        req.keys
            .iter()
            .any(|k| any(k.roles.as_ref()))
            .then_some(SetOp::Add),
    )?;
    let api = api_for(caller, &req.api_id, Action::CreateKey).await?;
    // Validation read every hash already; a key whose hash did not read was refused there.
    let strategy = ImportedHash::by_id(&req.migration_id);
    let hashes: Vec<Option<KeyHash>> = req
        .keys
        .iter()
        .map(|k| strategy.and_then(|s| s.read(&k.hash)))
        .collect();
    let now = ids::now_ms();
    let batch: Vec<_> = req
        .keys
        .iter()
        .zip(&hashes)
        .filter_map(|(k, hash)| {
            let hash = hash.as_ref()?;
            Some(new_api_key(
                caller,
                &api,
                &ids::new_id("key"),
                hash.as_str(),
                k.start.as_deref().unwrap_or(""),
                &fields_of(k),
                k.enabled,
                now,
            ))
        })
        .collect();
    let inserted = caller.store().migrate_keys(&batch).await?;
    // A "not found" may be cached for a hash from before its key existed.
    caller
        .state
        .forget(batch.iter().map(|k| k.hash.as_str()))
        .await;

    let mut out = MigrateKeysResponseData {
        migrated: Vec::new(),
        failed: Vec::new(),
    };
    for ((sent, key), done) in req.keys.iter().zip(&batch).zip(inserted) {
        if done {
            out.migrated.push(MigratedKey {
                hash: sent.hash.clone(),
                key_id: key.id.clone(),
            });
        } else {
            out.failed.push(sent.hash.clone());
        }
    }
    Ok(out)
}

fn fields_of(k: &keyway_core::api::keys::MigrateKeyData) -> KeyFields<'_> {
    KeyFields {
        name: k.name.as_ref(),
        external_id: k.external_id.as_ref(),
        meta: k.meta.as_ref(),
        roles: k.roles.as_ref(),
        permissions: k.permissions.as_ref(),
        expires: k.expires,
        credits: k.credits.as_ref(),
        ratelimits: k.ratelimits.as_ref(),
    }
}

impl Validate for MigrateKeysRequest {
    fn issues(&self, v: &mut Issues) {
        let req = self;
        let strategy = ImportedHash::by_id(&req.migration_id);
        v.check(strategy.is_some(), "body.migrationId", || {
            format!(
                "unknown migration {:?}; known: {}",
                req.migration_id,
                ImportedHash::KNOWN.join(", ")
            )
        });
        v.id("body.apiId", &req.api_id);
        v.check(
            (1..=MAX_BATCH).contains(&req.keys.len()),
            "body.keys",
            || format!("must hold 1 to {MAX_BATCH} keys"),
        );
        for (i, k) in req.keys.iter().enumerate() {
            let at = format!("body.keys[{i}]");
            let hash = strategy.and_then(|s| s.read(&k.hash));
            if let Some(s) = strategy {
                v.check(hash.is_some(), &format!("{at}.hash"), || match s {
                    ImportedHash::Sha256Base64 => {
                        "must be a SHA-256 digest in standard padded base64 (44 characters)".into()
                    }
                    ImportedHash::Sha256Hex => "must be a SHA-256 digest in 64 hex digits".into(),
                });
            }
            if let Some(start) = &k.start {
                v.length(&format!("{at}.start"), start, 1, 64);
            }
            validate::key_fields(v, &at, &fields_of(k));
        }
    }
}
