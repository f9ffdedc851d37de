-- Every raw event paid for two B-tree inserts besides its row: `(key_id, time)` and
-- `(time)`. The writer's CPU per raw row was the origin's tail at load (issue #12), and
-- no route reads raw events by key: analytics queries are restricted by workspace and
-- time, and per-key usage comes from the rollups. Retention keeps `(time)`.
DROP INDEX key_verifications_key;
