//! The key format: how keys are minted, hashed and shown.
//!
//! These are Unkey's rules, kept byte for byte so that keys migrated from Unkey keep
//! verifying: `<prefix>_<base58(random bytes)>`, stored only as the standard padded
//! base64 of SHA-256 over the whole key string.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

pub const MIN_BYTE_LENGTH: usize = 16;
pub const MAX_BYTE_LENGTH: usize = 255;
pub const DEFAULT_BYTE_LENGTH: usize = 16;
pub const MAX_PREFIX_LENGTH: usize = 16;
/// How many base58 characters of the random part `start` shows.
const START_CHARS: usize = 4;

/// A plaintext key. It exists only between minting and the response that hands it out,
/// or while a verification hashes it; `Debug` is redacted so it cannot reach a log, and
/// request bodies that carry a key (verifyKey, whoami) hold it as this type.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlainKey(String);

impl PlainKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey(<redacted>)")
    }
}

/// The stored form of a key: 44 characters of padded base64 over SHA-256.
///
/// A hash is not a secret in the way a key is, but it is still the lookup handle for a
/// credential, so `Debug` shows only its first characters.
#[derive(Clone)]
pub struct KeyHash {
    text: String,
    /// The decoded digest, kept beside the text so a cache lookup does not decode the
    /// base64 again on every request. `None` if the text is not a SHA-256 in base64.
    digest: Option<[u8; 32]>,
}

impl KeyHash {
    pub fn of(key: &str) -> Self {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        Self {
            text: STANDARD.encode(digest),
            digest: Some(digest),
        }
    }

    /// Wraps a hash read back from storage or the wire; it is not re-checked.
    pub fn from_stored(hash: impl Into<String>) -> Self {
        let text = hash.into();
        let digest = decode_digest(&text);
        Self { text, digest }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 32 raw SHA-256 bytes: a compact, allocation-free map key for a cache holding
    /// a million hashes. `None` if the stored text is not a SHA-256 in base64.
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.digest
    }

    /// A stable 64-bit number for the hash, used to make per-key choices (such as the
    /// traffic split) that must not change from one request to the next.
    pub fn bucket(&self) -> u64 {
        stable_hash(self.text.as_bytes())
    }
}

fn decode_digest(text: &str) -> Option<[u8; 32]> {
    // base64 sizes its check by a 33-byte estimate for 44 characters.
    let mut buf = [0u8; 33];
    match STANDARD.decode_slice(text.as_bytes(), &mut buf) {
        Ok(32) => {
            let mut out = [0u8; 32];
            out.copy_from_slice(&buf[..32]);
            Some(out)
        }
        _ => None,
    }
}

// Equality, order and hashing follow the text alone: the digest is derived from it.
impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for KeyHash {}

impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for KeyHash {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyHash {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

// On the wire and in JSON a hash is its text, as before.
impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(KeyHash::from_stored)
    }
}

/// FNV-1a: tiny, and stable across platforms and builds, unlike std's `RandomState`, so
/// values derived from it (traffic buckets, ad-hoc limit ids) never change.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.text.chars().take(6).collect();
        write!(f, "KeyHash({shown}…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("prefix must be 1 to 16 characters of letters, digits and underscores")]
    InvalidPrefix,
    #[error("byteLength must be between 16 and 255, got {0}")]
    InvalidByteLength(usize),
}

pub fn validate_prefix(prefix: &str) -> Result<(), KeyFormatError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LENGTH
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KeyFormatError::InvalidPrefix)
    }
}

pub fn validate_byte_length(len: usize) -> Result<(), KeyFormatError> {
    if (MIN_BYTE_LENGTH..=MAX_BYTE_LENGTH).contains(&len) {
        Ok(())
    } else {
        Err(KeyFormatError::InvalidByteLength(len))
    }
}

/// A freshly minted key with everything storage needs.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub key: PlainKey,
    pub hash: KeyHash,
    pub start: String,
}

/// Mints a key from caller-supplied random bytes (the core never draws randomness).
/// The number of bytes is the key's byte length.
pub fn mint(prefix: Option<&str>, random: &[u8]) -> Result<MintedKey, KeyFormatError> {
    validate_byte_length(random.len())?;
    if let Some(p) = prefix {
        validate_prefix(p)?;
    }
    let body = bs58::encode(random)
        .with_alphabet(bs58::Alphabet::BITCOIN)
        .into_string();
    let key = match prefix {
        Some(p) => format!("{p}_{body}"),
        None => body,
    };
    let start = start_of(prefix, &key);
    let hash = KeyHash::of(&key);
    Ok(MintedKey {
        key: PlainKey(key),
        hash,
        start,
    })
}

/// `start` is what a dashboard may show of a key: the prefix and four characters.
pub fn start_of(prefix: Option<&str>, key: &str) -> String {
    let body_from = prefix.map_or(0, |p| p.len() + 1);
    let body = key.get(body_from..).unwrap_or("");
    let shown: String = body.chars().take(START_CHARS).collect();
    match prefix {
        Some(p) => format!("{p}_{shown}"),
        None => shown,
    }
}

/// How keys.migrateKeys reads an imported hash: the request's `migrationId`. Either way
/// the key is stored as `KeyHash::of` would store its plaintext, so it verifies unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportedHash {
    /// Unkey's own stored form: standard padded base64 of SHA-256.
    Sha256Base64,
    /// SHA-256 as 64 hex digits, as many other systems store it (either case).
    Sha256Hex,
}

impl ImportedHash {
    /// The `migrationId`s we understand, for the error that lists them.
    pub const KNOWN: [&str; 2] = ["sha256_base64", "sha256_hex"];

    pub fn by_id(id: &str) -> Option<Self> {
        match id {
            "sha256_base64" => Some(Self::Sha256Base64),
            "sha256_hex" => Some(Self::Sha256Hex),
            _ => None,
        }
    }

    /// The stored hash, or `None` if `text` is not a SHA-256 in this encoding.
    pub fn read(self, text: &str) -> Option<KeyHash> {
        let digest = match self {
            // Decoding and re-encoding refuses non-canonical text (missing padding,
            // stray bits) that would never match what a verification computes.
            Self::Sha256Base64 => decode_digest(text).filter(|d| STANDARD.encode(d) == text)?,
            Self::Sha256Hex => decode_hex(text)?,
        };
        Some(KeyHash {
            text: STANDARD.encode(digest),
            digest: Some(digest),
        })
    }
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    // from_str_radix alone would take a sign ("+f").
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_hashes_match_the_plaintext() {
        let key = "sk_2NEpo7TZRRrLZSi2U";
        let ours = KeyHash::of(key);
        let b64 = ImportedHash::Sha256Base64;
        assert_eq!(b64.read(ours.as_str()), Some(ours.clone()));
        // printf '%s' 'sk_2NEpo7TZRRrLZSi2U' | sha256sum
        let hex = "72c5be337513d92aed1257a0fb0cd7fe007d4b911e7d456199f45b8ba8b585a2";
        assert_eq!(ImportedHash::Sha256Hex.read(hex), Some(ours.clone()));
        assert_eq!(b64.read("not base64"), None);
        assert_eq!(b64.read(ours.as_str().trim_end_matches('=')), None);
        assert_eq!(ImportedHash::Sha256Hex.read("zz"), None);
        assert_eq!(ImportedHash::by_id("bcrypt"), None);
        for id in ImportedHash::KNOWN {
            assert!(ImportedHash::by_id(id).is_some());
        }
    }

    proptest::proptest! {
        #[test]
        fn both_imports_give_the_verification_hash(key in ".{0,64}") {
            let ours = KeyHash::of(&key);
            let digest = ours.digest().unwrap();
            let lower: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            proptest::prop_assert_eq!(ImportedHash::Sha256Hex.read(&lower), Some(ours.clone()));
            proptest::prop_assert_eq!(ImportedHash::Sha256Hex.read(&lower.to_uppercase()), Some(ours.clone()));
            proptest::prop_assert_eq!(ImportedHash::Sha256Base64.read(ours.as_str()), Some(ours));
        }
    }

    // Pinned with: printf '%s' 'sk_2NEpo7TZRRrLZSi2U' | sha256sum | xxd -r -p | base64
    #[test]
    fn digest_is_the_raw_sha256() {
        let h = KeyHash::of("abc");
        let d = h.digest().unwrap();
        assert_eq!(STANDARD.encode(d), h.as_str());
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(KeyHash::from_stored("not base64!").digest(), None);
        assert_eq!(KeyHash::from_stored("YWJj").digest(), None);
    }

    #[test]
    fn hash_matches_sha256sum_base64() {
        assert_eq!(
            KeyHash::of("hello").as_str(),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert_eq!(
            KeyHash::of("sk_2NEpo7TZRRrLZSi2U").as_str(),
            include_str!("../testdata/sk_hash.txt").trim()
        );
        assert_eq!(KeyHash::of("anything").as_str().len(), 44);
    }

    #[test]
    fn mint_is_prefix_underscore_base58() {
        let random = [0u8; 15].iter().copied().chain([1u8]).collect::<Vec<u8>>();
        let m = mint(Some("sk"), &random).unwrap();
        // 15 zero bytes become 15 leading '1's in base58, then the 1 byte is '2'.
        assert_eq!(m.key.expose(), "sk_1111111111111112");
        assert_eq!(m.start, "sk_1111");
        assert_eq!(m.hash, KeyHash::of("sk_1111111111111112"));
    }

    #[test]
    fn mint_known_bytes() {
        let random: Vec<u8> = (1..=16).collect();
        let m = mint(None, &random).unwrap();
        assert_eq!(
            m.key.expose(),
            include_str!("../testdata/b58_1_16.txt").trim()
        );
        assert_eq!(m.start, m.key.expose()[..4]);
    }

    #[test]
    fn mint_rejects_bad_input() {
        assert_eq!(
            mint(Some("sk"), &[0; 15]).unwrap_err(),
            KeyFormatError::InvalidByteLength(15)
        );
        assert!(mint(Some("sk"), &[0; 256]).is_err());
        assert!(mint(Some("sk"), &[0; 255]).is_ok());
        assert_eq!(
            mint(Some("bad-prefix"), &[0; 16]).unwrap_err(),
            KeyFormatError::InvalidPrefix
        );
        assert!(mint(Some("a_very_long_prefix_x"), &[0; 16]).is_err());
        assert!(mint(Some(""), &[0; 16]).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let m = mint(Some("sk"), &[7; 16]).unwrap();
        assert!(!format!("{:?}", m).contains(m.key.expose()));
        assert!(!format!("{:?}", m.hash).contains(m.hash.as_str()));
    }
}
