//! Recoverable keys: a key's plaintext sealed with AES-256-GCM under a master key from
//! `KEYWAY_ENCRYPTION_KEY`, so `keys.getKey` with `decrypt` can return it later.
//!
//! A sealed value is `v1.<master id>.<base64(nonce ‖ ciphertext ‖ tag)>`. The master id
//! (the first 8 bytes of SHA-256 over the master key, in hex) says which key opens it, so
//! old master keys can stay listed while `keyway encryption rotate` re-seals everything
//! under the newest. The key's id is the associated data: a sealed value copied onto
//! another key's row does not open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyway_core::key::PlainKey;
use keyway_core::secret::Secret;
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// A configured master key that is not 32 bytes of standard base64. The message
    /// names the setting, never the value.
    #[error("{0} must be 32 bytes in standard base64")]
    BadMasterKey(&'static str),
    #[error("old encryption keys are set but KEYWAY_ENCRYPTION_KEY is not")]
    OldWithoutCurrent,
    /// Sealed under a master key that is no longer configured.
    #[error("sealed under master key {0}, which is not configured")]
    UnknownMaster(String),
    /// AES-GCM refused to encrypt (only for messages near 64 GiB; never for a key).
    #[error("the key could not be sealed")]
    Seal,
    /// Not a sealed value, or one that fails authentication (altered, or another key's).
    #[error("the sealed value is corrupt or belongs to another key")]
    Corrupt,
}

struct Master {
    id: String,
    cipher: Aes256Gcm,
}

impl Master {
    fn from_base64(text: &str, setting: &'static str) -> Result<Self, VaultError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| VaultError::BadMasterKey(setting))?;
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| VaultError::BadMasterKey(setting))?;
        let digest = Sha256::digest(&bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { id, cipher })
    }
}

pub struct Vault {
    current: Master,
    old: Vec<Master>,
}

// Shows which master keys are loaded, never their bytes.
impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current.id)
            .field(
                "old",
                &self.old.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Vault {
    /// `None` without a current master key: recoverable keys are then refused.
    pub fn from_config(
        current: Option<&Secret>,
        old: &[Secret],
    ) -> Result<Option<Self>, VaultError> {
        let current = match current.filter(|s| !s.is_empty()) {
            Some(c) => Master::from_base64(c.expose(), "KEYWAY_ENCRYPTION_KEY")?,
            None if old.iter().any(|s| !s.is_empty()) => return Err(VaultError::OldWithoutCurrent),
            None => return Ok(None),
        };
        let old = old
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| Master::from_base64(s.expose(), "KEYWAY_ENCRYPTION_KEYS_OLD"))
            .collect::<Result<_, _>>()?;
        Ok(Some(Self { current, old }))
    }

    /// The id of the master key new values are sealed under.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    pub fn seal(&self, key_id: &str, plaintext: &PlainKey) -> Result<String, VaultError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.expose().as_bytes(),
            aad: key_id.as_bytes(),
        };
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| VaultError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}.{}.{}",
            self.current.id,
            STANDARD.encode(out)
        ))
    }

    pub fn open(&self, key_id: &str, sealed: &str) -> Result<PlainKey, VaultError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(master), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(VaultError::Corrupt);
        };
        let master = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|m| m.id == master)
            .ok_or_else(|| VaultError::UnknownMaster(master.to_string()))?;
        let bytes = STANDARD.decode(body).map_err(|_| VaultError::Corrupt)?;
        if bytes.len() < NONCE_BYTES {
            return Err(VaultError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let plain = master
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Corrupt)?;
        String::from_utf8(plain)
            .map(PlainKey::new)
            .map_err(|_| VaultError::Corrupt)
    }

    /// Whether `sealed` is already under the current master key.
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed
            .split('.')
            .nth(1)
            .is_some_and(|m| m == self.current.id)
    }
}

/// What `keyway encryption rotate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotated {
    pub resealed: u64,
    pub already_current: u64,
    /// Changed by someone else between read and write (a key deleted or rerolled): left.
    pub skipped: u64,
}

/// Re-seals every recoverable key not yet under the current master key, page by page,
/// so the old master keys can then be dropped. A value that does not open stops the run
/// with its key id: dropping its master key would lose it.
pub async fn rotate(store: &crate::store::Store, vault: &Vault) -> anyhow::Result<Rotated> {
    let mut done = Rotated::default();
    let mut cursor = String::new();
    loop {
        let page = store.sealed_page(&cursor, 500).await?;
        let Some((last, _)) = page.last() else {
            return Ok(done);
        };
        cursor = last.clone();
        for (key_id, sealed) in &page {
            if vault.is_current(sealed) {
                done.already_current += 1;
                continue;
            }
            let plain = vault
                .open(key_id, sealed)
                .map_err(|e| anyhow::anyhow!("key {key_id}: {e}"))?;
            if store
                .reseal(key_id, sealed, &vault.seal(key_id, &plain)?)
                .await?
            {
                done.resealed += 1;
            } else {
                done.skipped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> Secret {
        Secret::new(STANDARD.encode([byte; 32]))
    }

    fn vault(current: u8, old: &[u8]) -> Vault {
        let old: Vec<Secret> = old.iter().map(|b| master(*b)).collect();
        Vault::from_config(Some(&master(current)), &old)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn seals_and_opens_per_key() {
        let v = vault(1, &[]);
        let key = PlainKey::new("sk_recoverable123");
        let sealed = v.seal("key_a", &key).unwrap();
        assert!(!sealed.contains("recoverable"));
        assert_eq!(v.open("key_a", &sealed).unwrap(), key);
        // Another key's row does not open it, and each seal has its own nonce.
        assert_eq!(v.open("key_b", &sealed), Err(VaultError::Corrupt));
        assert_ne!(v.seal("key_a", &key).unwrap(), sealed);
        // Any flipped character fails authentication.
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(v.open("key_a", &tampered).is_err());
        for junk in ["", "v1", "v1.x.y", "v2.abc.def", "v1..", "plain text"] {
            assert!(v.open("key_a", junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn old_masters_open_and_rotation_is_visible() {
        let before = vault(1, &[]);
        let sealed = before.seal("key_a", &PlainKey::new("sk_x")).unwrap();
        let after = vault(2, &[1]);
        assert!(!after.is_current(&sealed));
        assert_eq!(after.open("key_a", &sealed).unwrap().expose(), "sk_x");
        let resealed = after
            .seal("key_a", &after.open("key_a", &sealed).unwrap())
            .unwrap();
        assert!(after.is_current(&resealed));
        // Once the old master is dropped, what it sealed names it in the error.
        let dropped = vault(2, &[]);
        assert!(matches!(
            dropped.open("key_a", &sealed),
            Err(VaultError::UnknownMaster(id)) if id == before.current_id()
        ));
    }

    #[test]
    fn settings_are_checked_and_never_shown() {
        assert!(Vault::from_config(None, &[]).unwrap().is_none());
        assert_eq!(
            Vault::from_config(None, &[master(1)]).unwrap_err(),
            VaultError::OldWithoutCurrent
        );
        let short = Secret::new(STANDARD.encode([7u8; 16]));
        assert_eq!(
            Vault::from_config(Some(&short), &[]).unwrap_err(),
            VaultError::BadMasterKey("KEYWAY_ENCRYPTION_KEY")
        );
        assert!(Vault::from_config(Some(&Secret::new("not base64!")), &[]).is_err());
        let shown = format!("{:?}", vault(3, &[4]));
        assert!(!shown.contains(&STANDARD.encode([3u8; 32])), "{shown}");
    }
}
