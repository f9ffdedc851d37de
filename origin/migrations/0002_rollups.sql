-- Rollups of the analytics events: one row per time bucket and (workspace, API, key,
-- identity, outcome, tags), upserted at each flush, so a hot key costs one row a minute,
-- not one per request. `time` is the bucket's start (unix ms, UTC); `identity_id` is ''
-- for keys without an identity, so it can be part of the key.
CREATE TABLE key_verifications_per_minute (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    api_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tags TEXT NOT NULL,
    count BIGINT NOT NULL,
    spent_credits BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, api_id, key_id, identity_id, outcome, tags)
);
CREATE TABLE key_verifications_per_hour (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    api_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tags TEXT NOT NULL,
    count BIGINT NOT NULL,
    spent_credits BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, api_id, key_id, identity_id, outcome, tags)
);
CREATE TABLE key_verifications_per_day (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    api_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tags TEXT NOT NULL,
    count BIGINT NOT NULL,
    spent_credits BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, api_id, key_id, identity_id, outcome, tags)
);
CREATE TABLE key_verifications_per_month (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    api_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tags TEXT NOT NULL,
    count BIGINT NOT NULL,
    spent_credits BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, api_id, key_id, identity_id, outcome, tags)
);

CREATE TABLE ratelimits_per_minute (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    passed BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, namespace, identifier, passed)
);
CREATE TABLE ratelimits_per_hour (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    passed BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, namespace, identifier, passed)
);
CREATE TABLE ratelimits_per_day (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    passed BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, namespace, identifier, passed)
);
CREATE TABLE ratelimits_per_month (
    time BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    identifier TEXT NOT NULL,
    passed BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (time, workspace_id, namespace, identifier, passed)
);

-- Retention deletes by time, oldest first, in small batches.
CREATE INDEX key_verifications_time ON key_verifications (time);
CREATE INDEX ratelimit_events_time ON ratelimit_events (time);
