-- Portable SQL: the same file runs on SQLite and PostgreSQL. Booleans are BIGINT 0/1 and
-- times are unix milliseconds, so one code path reads both databases.

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE apis (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    keyspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX apis_workspace ON apis (workspace_id);

CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    meta TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);
CREATE UNIQUE INDEX identities_external ON identities (workspace_id, external_id);

-- Keys and root keys. Root keys have for_workspace_id set and no api_id.
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    start TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    for_workspace_id TEXT,
    api_id TEXT,
    keyspace_id TEXT,
    identity_id TEXT,
    name TEXT,
    meta TEXT,
    enabled BIGINT NOT NULL,
    expires BIGINT,
    remaining BIGINT,
    refill_interval TEXT,
    refill_amount BIGINT,
    refill_day BIGINT,
    last_refill_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX keys_hash ON keys (hash);
CREATE INDEX keys_api ON keys (api_id, id);
CREATE INDEX keys_identity ON keys (identity_id);

CREATE TABLE ratelimits (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    key_id TEXT,
    identity_id TEXT,
    name TEXT NOT NULL,
    lim BIGINT NOT NULL,
    duration BIGINT NOT NULL,
    auto_apply BIGINT NOT NULL
);
CREATE INDEX ratelimits_key ON ratelimits (key_id);
CREATE INDEX ratelimits_identity ON ratelimits (identity_id);

CREATE TABLE permissions (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX permissions_slug ON permissions (workspace_id, slug);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (workspace_id, name);

CREATE TABLE roles_permissions (
    role_id TEXT NOT NULL,
    permission_id TEXT NOT NULL,
    PRIMARY KEY (role_id, permission_id)
);

CREATE TABLE keys_permissions (
    key_id TEXT NOT NULL,
    permission_id TEXT NOT NULL,
    PRIMARY KEY (key_id, permission_id)
);
CREATE INDEX keys_permissions_permission ON keys_permissions (permission_id);

CREATE TABLE keys_roles (
    key_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    PRIMARY KEY (key_id, role_id)
);
CREATE INDEX keys_roles_role ON keys_roles (role_id);

-- Root-key grants are tuples like api.*.verify_key, not workspace RBAC permissions.
CREATE TABLE root_key_permissions (
    key_id TEXT NOT NULL,
    permission TEXT NOT NULL,
    PRIMARY KEY (key_id, permission)
);

CREATE TABLE ratelimit_overrides (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    lim BIGINT NOT NULL,
    duration BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ratelimit_overrides_target ON ratelimit_overrides (workspace_id, namespace, identifier);

-- Analytics, written in batches.
CREATE TABLE key_verifications (
    time BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    api_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    identity_id TEXT,
    outcome TEXT NOT NULL,
    spent_credits BIGINT NOT NULL,
    tags TEXT NOT NULL,
    latency_us BIGINT NOT NULL,
    served_by TEXT NOT NULL
);
CREATE INDEX key_verifications_key ON key_verifications (key_id, time);

CREATE TABLE ratelimit_events (
    time BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    passed BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    served_by TEXT NOT NULL
);
