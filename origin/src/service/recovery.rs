//! Recoverable keys: sealing a new key's plaintext and, for `decrypt: true`, opening it
//! again for a root key that may.

use keyway_core::api::keys::KeyData;
use keyway_core::auth::Action;
use keyway_core::error::ApiError;
use keyway_core::key::PlainKey;

use crate::error::AppError;
use crate::service::Caller;
use crate::state::AppState;
use crate::vault::{Vault, VaultError};

fn vault(state: &AppState) -> Result<&Vault, AppError> {
    state.vault.as_ref().ok_or_else(|| {
        AppError::Client(ApiError::precondition_failed(
            "Recoverable keys need a master key: start the server with KEYWAY_ENCRYPTION_KEY (32 bytes, base64).",
        ))
    })
}

/// The sealed plaintext for a new recoverable key of `api_id`, after checking the
/// caller may store keys encrypted there.
pub fn seal(
    caller: &Caller<'_>,
    api_id: &str,
    key_id: &str,
    plaintext: &PlainKey,
) -> Result<String, AppError> {
    let vault = vault(caller.state)?;
    caller
        .require(Action::EncryptKey, Some(api_id))
        .map_err(AppError::Client)?;
    vault.seal(key_id, plaintext).map_err(|e| {
        AppError::internal(
            "could not seal a recoverable key",
            "The key could not be sealed.",
            e,
        )
    })
}

/// `decrypt: true` on keys of `api_id`: fills `plaintext` on those that are recoverable.
/// The caller has read them already; decrypting needs `decrypt_key` on top.
pub async fn reveal(
    caller: &Caller<'_>,
    api_id: &str,
    keys: &mut [KeyData],
) -> Result<(), AppError> {
    caller
        .require(Action::DecryptKey, Some(api_id))
        .map_err(AppError::Client)?;
    let ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
    let sealed = caller.store().sealed_keys(&ids).await?;
    if sealed.is_empty() {
        return Ok(());
    }
    let vault = vault(caller.state)?;
    for key in keys {
        let Some(value) = sealed.get(&key.key_id) else {
            continue;
        };
        key.plaintext = Some(vault.open(&key.key_id, value).map_err(|e| {
            // Logged with the key id only: the value is sealed, the reason is ours.
            let cause = format!("key_id={}: {e}", key.key_id);
            match e {
                VaultError::UnknownMaster(_) => {
                    tracing::error!(key_id = %key.key_id, error = %e, "a recoverable key could not be opened");
                    AppError::Client(ApiError::precondition_failed(
                        "This key was sealed under a master key the server no longer has; add it to KEYWAY_ENCRYPTION_KEYS_OLD.",
                    ))
                }
                _ => AppError::internal(
                    "a recoverable key could not be opened",
                    "A recoverable key could not be decrypted.",
                    cause,
                ),
            }
        })?);
    }
    Ok(())
}
