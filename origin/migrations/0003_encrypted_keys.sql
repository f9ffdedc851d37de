-- Recoverable keys: the plaintext sealed with AES-256-GCM (origin/src/vault.rs), apart
-- from `keys` so that nothing reading keys for verification ever loads it.
CREATE TABLE encrypted_keys (
    key_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    encrypted TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
