//! `analytics.getVerifications` and `analytics.getRatelimits`: counts that match what was
//! verified, and SQL treated as hostile (other workspaces, other APIs, other tables,
//! writes, side effects, huge and slow queries).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both;
use crate::harness::Server;

const VERIFICATIONS: &str = "/v2/analytics.getVerifications";

const RATELIMITS: &str = "/v2/analytics.getRatelimits";

async fn rows(srv: &Server, path: &str, key: Option<&str>, query: &str) -> Vec<Value> {
    let (status, body) = srv
        .call_as(
            path,
            Some(key.unwrap_or(&srv.root_key)),
            json!({"query": query}),
        )
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body["data"].as_array().unwrap().clone()
}

/// The one number a one-row, one-column query answers (PostgreSQL sums are NUMERIC, so
/// compare as floats).
async fn number(srv: &Server, path: &str, key: Option<&str>, query: &str) -> f64 {
    let r = rows(srv, path, key, query).await;
    assert_eq!(r.len(), 1, "{query}: {r:?}");
    let obj = r[0].as_object().unwrap();
    assert_eq!(obj.len(), 1, "{query}: {r:?}");
    obj.values().next().unwrap().as_f64().unwrap_or(0.0)
}

/// An error answer's detail.
fn detail(error: &Value) -> &str {
    error["detail"].as_str().unwrap_or_default()
}

async fn refused(srv: &Server, key: &str, query: &str) -> (u16, Value) {
    let (status, body) = srv
        .as_root(key)
        .call(VERIFICATIONS, json!({"query": query}))
        .await;
    assert!(
        body["meta"]["requestId"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_")),
        "{body}"
    );
    (status, body["error"].clone())
}

/// The workspace an API belongs to, read from the database.
async fn workspace_of(srv: &Server, api: &str) -> String {
    let db = srv.db.pool().await.unwrap();
    let ws: String =
        sqlx::query_scalar(&format!("SELECT workspace_id FROM apis WHERE id = '{api}'"))
            .fetch_one(&db)
            .await
            .unwrap();
    db.close().await;
    ws
}

/// Rows the caller must never see: another workspace, and an API outside its grant.
async fn plant_foreign_rows(srv: &Server, own_workspace: &str, visible_api: &str) {
    let db = srv.db.pool().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (ws, api, n) in [
        ("ws_other", visible_api, 3),
        ("ws_other", "api_x", 3),
        (own_workspace, "api_hidden", 5),
        (own_workspace, visible_api, 2),
    ] {
        for i in 0..n {
            sqlx::query(&format!(
                "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) VALUES ({now}, 'r_{ws}_{api}_{i}', '{ws}', '{api}', 'k', NULL, 'VALID', 0, '[]', 1, 'origin')"
            ))
            .execute(&db)
            .await
            .unwrap();
        }
        sqlx::query(&format!(
            "INSERT INTO key_verifications_per_day (time, workspace_id, api_id, key_id, identity_id, outcome, tags, count, spent_credits) VALUES ({now}, '{ws}', '{api}', 'k', '', 'VALID', '[]', {n}, 0)"
        ))
        .execute(&db)
        .await
        .unwrap();
    }
    // Enough rows that a three-way self join cannot finish in the time limit.
    let mut sql = String::from(
        "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) VALUES ",
    );
    let values: Vec<String> = (0..2000)
        .map(|i| format!("({now}, 'bulk_{i}', '{own_workspace}', 'api_hidden', 'k', NULL, 'VALID', 0, '[]', 1, 'origin')"))
        .collect();
    sql.push_str(&values.join(", "));
    sqlx::query(&sql).execute(&db).await.unwrap();
    db.close().await;
}

/// Every secret the database holds about keys: no analytics answer may carry one.
async fn key_hashes(srv: &Server) -> Vec<String> {
    let db = srv.db.pool().await.unwrap();
    let hashes: Vec<String> = sqlx::query_scalar("SELECT hash FROM keys")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    assert!(hashes.len() >= 2, "root keys and keys are stored");
    hashes
}

mod status_200 {
    use super::*;

    both!(
        queries_count_what_was_verified,
        &["--event-flush-ms", "50"],
        |srv| {
            let (_, _, key) = srv.create_key(json!({"credits": {"remaining": 5}})).await;
            let (_, _, tagged) = srv.create_key(json!({"externalId": "user_1"})).await;
            for _ in 0..7 {
                srv.verify(json!({"key": key})).await;
            }
            for i in 0..4 {
                srv.verify(json!({"key": tagged, "tags": [format!("n={}", i % 2)]}))
                    .await;
            }
            let limit =
                json!({"namespace": "ns", "identifier": "u1", "limit": 2, "duration": 60000});
            for _ in 0..5 {
                srv.ok("/v2/ratelimit.limit", limit.clone()).await;
            }
            // Events are written in batches; wait until all of them are readable.
            let deadline = Instant::now() + Duration::from_secs(10);
            while number(
                &srv,
                VERIFICATIONS,
                None,
                "SELECT COUNT(*) AS n FROM key_verifications_v1",
            )
            .await
                < 11.0
                || number(
                    &srv,
                    RATELIMITS,
                    None,
                    "SELECT COUNT(*) AS n FROM ratelimits_v1",
                )
                .await
                    < 5.0
            {
                assert!(Instant::now() < deadline, "events never arrived");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for table in ["minute", "hour", "day", "month"] {
                let t = format!("key_verifications_per_{table}_v1");
                for (sql, want) in [
                    ("SELECT SUM(count) AS n FROM {T}", 11.0),
                    (
                        "SELECT SUM(count) AS n FROM {T} WHERE outcome = 'USAGE_EXCEEDED'",
                        2.0,
                    ),
                    ("SELECT SUM(spent_credits) AS n FROM {T}", 5.0),
                    (
                        "SELECT SUM(count) AS n FROM {T} WHERE has(tags, 'n=1')",
                        2.0,
                    ),
                    (
                        "SELECT SUM(count) AS n FROM {T} WHERE external_id = 'user_1'",
                        4.0,
                    ),
                ] {
                    let sql = sql.replace("{T}", &t);
                    let got = number(&srv, VERIFICATIONS, None, &sql).await;
                    assert_eq!(got, want, "{sql}");
                }
                let rl = format!("ratelimits_per_{table}_v1");
                let r = rows(&srv, RATELIMITS, None, &format!("SELECT namespace_id, SUM(passed) AS passed, SUM(total) AS total FROM {rl} GROUP BY namespace_id")).await;
                assert_eq!(r.len(), 1, "{rl}: {r:?}");
                assert_eq!(r[0]["namespace_id"], "ns");
                assert_eq!(r[0]["passed"].as_f64(), Some(2.0), "{rl}: {r:?}");
                assert_eq!(r[0]["total"].as_f64(), Some(5.0), "{rl}: {r:?}");
            }
            // The raw table, with Unkey's ClickHouse spellings.
            let r = rows(
                &srv,
                VERIFICATIONS,
                None,
                "SELECT countIf(outcome = 'VALID') AS valid, count(*) AS total, uniq(key_id) AS keys, \
                 toStartOfHour(time) AS hour FROM key_verifications_v1 \
                 WHERE time >= now() - INTERVAL 1 DAY AND time <= now() + INTERVAL 1 MINUTE \
                 GROUP BY hour ORDER BY hour",
            )
            .await;
            let valid: f64 = r.iter().map(|x| x["valid"].as_f64().unwrap()).sum();
            let total: f64 = r.iter().map(|x| x["total"].as_f64().unwrap()).sum();
            assert_eq!((valid, total), (9.0, 11.0), "{r:?}");
            assert!(
                r.iter()
                    .all(|x| x["hour"].as_i64().unwrap() % 3_600_000 == 0),
                "{r:?}"
            );
            let r = rows(
                &srv,
                VERIFICATIONS,
                None,
                "WITH per_key AS (SELECT key_id, SUM(count) AS n FROM key_verifications_per_day_v1 GROUP BY key_id) \
                 SELECT n FROM per_key ORDER BY n DESC",
            )
            .await;
            assert_eq!(
                r.iter()
                    .map(|x| x["n"].as_f64().unwrap())
                    .collect::<Vec<_>>(),
                vec![7.0, 4.0]
            );
            assert_eq!(
                number(
                    &srv,
                    RATELIMITS,
                    None,
                    "SELECT COUNT(*) AS n FROM ratelimits_v1 WHERE passed = 1"
                )
                .await,
                2.0
            );
        }
    );

    // The escape a hostile review found: sqlparser's ClickHouse reading takes `\'` as an
    // escaped quote, its printer left that quote undoubled, and SQLite and PostgreSQL read
    // the rest of the string as SQL, so `keys` (every root key's hash) came back. Sent
    // through both routes, in a string literal and in a quoted name.
    both!(
        an_escaped_quote_stays_inside_its_string,
        &["--event-flush-ms", "50"],
        |srv| {
            let api = srv.create_api().await;
            let (_, key) = srv.create_key_in(&api, json!({})).await;
            srv.verify(json!({"key": key})).await;
            let limit =
                json!({"namespace": "ns1", "identifier": "u1", "limit": 5, "duration": 60000});
            srv.ok("/v2/ratelimit.limit", limit).await;
            let reader = srv.root_key_with(&[&format!("api.{api}.read_analytics")]);
            let rl_reader = srv.root_key_with(&["ratelimit.ns1.read_analytics"]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while number(
                &srv,
                VERIFICATIONS,
                Some(&reader),
                "SELECT COUNT(*) AS n FROM key_verifications_v1",
            )
            .await
                < 1.0
                || number(
                    &srv,
                    RATELIMITS,
                    Some(&rl_reader),
                    "SELECT COUNT(*) AS n FROM ratelimits_v1",
                )
                .await
                    < 1.0
            {
                assert!(Instant::now() < deadline, "events were not written");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let hashes = key_hashes(&srv).await;
            let payload = "' AS a UNION ALL SELECT json_array(id, hash, start) FROM keys --";
            for (path, caller, table) in [
                (VERIFICATIONS, &reader, "key_verifications_v1"),
                (RATELIMITS, &rl_reader, "ratelimits_v1"),
            ] {
                // In a literal: `'\\''` is one string, `\'` and the rest, to ClickHouse.
                let query = format!("SELECT '\\\\'{payload}' AS x FROM {table}");
                let (status, body) = srv
                    .as_root(caller)
                    .call(path, json!({"query": query}))
                    .await;
                assert_eq!(status, 200, "{query}: {body}");
                let text = body.to_string();
                assert!(
                    !hashes.iter().any(|h| text.contains(h.as_str())),
                    "{query}: {text}"
                );
                let data = body["data"].as_array().unwrap();
                assert_eq!(data.len(), 1, "{body}");
                assert_eq!(data[0]["x"], format!("\\{payload}").as_str(), "{body}");

                // In a name, with either quote the targets use.
                for name in [
                    format!(
                        "SELECT 1 AS \"\\\\\\\" UNION ALL SELECT hash FROM keys --\" FROM {table}"
                    ),
                    format!(
                        "SELECT 1 AS `\\\\\\` UNION ALL SELECT hash FROM keys --` FROM {table}"
                    ),
                ] {
                    let (status, body) =
                        srv.as_root(caller).call(path, json!({"query": name})).await;
                    assert_eq!(status, 400, "{name}: {body}");
                    assert!(
                        !hashes.iter().any(|h| body.to_string().contains(h.as_str())),
                        "{name}"
                    );
                }
            }
            // The database's own layer is what answers a query the rewriter would let by:
            // here, nothing reaches it, and the probe still verifies.
            assert_eq!(srv.verify(json!({"key": key})).await["valid"], true);
        }
    );
}

mod status_403 {
    use super::*;

    both!(
        hostile_queries_reach_nothing_else,
        &[
            "--analytics-max-rows",
            "50",
            "--analytics-timeout-ms",
            "300"
        ],
        |srv| {
            let api = srv.create_api().await;
            let (_, probe) = srv.create_key_in(&api, json!({})).await;
            let workspace = workspace_of(&srv, &api).await;
            plant_foreign_rows(&srv, &workspace, &api).await;
            let reader = srv.root_key_with(&[&format!("api.{api}.read_analytics")]);
            let everything = srv.root_key_with(&["api.*.read_analytics"]);
            let own = |q: &'static str| {
                let (srv, reader) = (&srv, reader.clone());
                async move { number(srv, VERIFICATIONS, Some(&reader), q).await }
            };

            // Only the granted API of the caller's workspace, however the query asks.
            assert_eq!(
                own("SELECT COUNT(*) AS n FROM key_verifications_v1").await,
                2.0
            );
            assert_eq!(
                own("SELECT SUM(count) AS n FROM key_verifications_per_day_v1").await,
                2.0
            );
            assert_eq!(own("SELECT COUNT(*) AS n FROM key_verifications_v1 WHERE workspace_id = 'ws_other' OR 1 = 1").await, 2.0);
            assert_eq!(
                own("SELECT COUNT(*) AS n FROM key_verifications_v1 WHERE api_id = 'api_hidden'")
                    .await,
                0.0
            );
            assert_eq!(
                own("SELECT COUNT(*) AS n FROM (SELECT * FROM key_verifications_v1 UNION ALL SELECT * FROM key_verifications_v1 WHERE api_id <> 'x') AS u").await,
                4.0
            );
            assert_eq!(
                own("WITH key_verifications AS (SELECT * FROM key_verifications_v1) SELECT COUNT(*) AS n FROM key_verifications").await,
                2.0
            );
            let ws = rows(
                &srv,
                VERIFICATIONS,
                Some(&everything),
                "SELECT DISTINCT workspace_id, api_id FROM key_verifications_v1 ORDER BY api_id",
            )
            .await;
            assert_eq!(ws.len(), 2, "{ws:?}");
            assert!(
                ws.iter().all(|r| r["workspace_id"] == workspace.as_str()),
                "{ws:?}"
            );

            // No other table: by name, through a subquery, a CTE, a UNION or the catalog.
            for q in [
                "SELECT * FROM keys",
                "SELECT * FROM root_keys",
                "SELECT * FROM key_verifications",
                "SELECT * FROM sqlite_master",
                "SELECT * FROM pg_catalog.pg_tables",
                "SELECT * FROM information_schema.tables",
                "SELECT * FROM main.keys",
                "SELECT (SELECT hash FROM keys LIMIT 1) AS h FROM key_verifications_v1",
                "WITH x AS (SELECT * FROM root_keys) SELECT * FROM x",
                "SELECT key_id FROM key_verifications_v1 UNION SELECT id FROM keys",
                "SELECT * FROM key_verifications_v1 WHERE key_id IN (SELECT id FROM keys)",
                "SELECT * FROM default.key_verifications_raw_v2",
            ] {
                let (status, error) = refused(&srv, &reader, q).await;
                assert_eq!(status, 400, "{q}: {error}");
                assert_eq!(
                    error["type"],
                    "https://unkey.com/docs/errors/user/bad_request/invalid_analytics_table",
                    "{q}"
                );
                assert!(detail(&error).contains("is not allowed"), "{q}: {error}");
            }

            // No writes, no other statements, no side effects.
            for q in [
                "DELETE FROM key_verifications_v1",
                "INSERT INTO key_verifications_v1 (key_id) VALUES ('x')",
                "UPDATE keys SET enabled = 0",
                "DROP TABLE keys",
                "ATTACH DATABASE '/tmp/keyway-stolen.db' AS stolen",
                "PRAGMA query_only = OFF",
                "SELECT 1; DELETE FROM keys",
                "CREATE TABLE copy AS SELECT * FROM key_verifications_v1",
                "SELECT * INTO copy FROM key_verifications_v1",
                "SELECT * FROM key_verifications_v1 FOR UPDATE",
                "SET statement_timeout = 0",
                "COPY keys TO '/tmp/keys.csv'",
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r",
            ] {
                let (status, error) = refused(&srv, &reader, q).await;
                assert_eq!(status, 400, "{q}: {error}");
            }
            for (q, f) in [
                (
                    "SELECT load_extension('/tmp/x.so') AS x FROM key_verifications_v1",
                    "load_extension",
                ),
                (
                    "SELECT pg_sleep(5) AS x FROM key_verifications_v1",
                    "pg_sleep",
                ),
                ("SELECT pg_read_file('/etc/passwd') AS x", "pg_read_file"),
                (
                    "SELECT set_config('statement_timeout', '0', false) AS x",
                    "set_config",
                ),
                ("SELECT lo_import('/etc/passwd') AS x", "lo_import"),
                (
                    "SELECT randomblob(100000000) AS x FROM key_verifications_v1",
                    "randomblob",
                ),
                ("SELECT nextval('s') AS x", "nextval"),
                ("SELECT sqlite_version() AS x", "sqlite_version"),
            ] {
                let (status, error) = refused(&srv, &reader, q).await;
                assert_eq!(status, 400, "{q}: {error}");
                assert!(detail(&error).contains(&format!("`{f}`")), "{q}: {error}");
            }

            // Over the limits: rows and time are 422s.
            let (status, error) = refused(
                &srv,
                &everything,
                "SELECT request_id FROM key_verifications_v1",
            )
            .await;
            assert_eq!(status, 422, "{error}");
            assert!(detail(&error).contains("more than 50 rows"), "{error}");
            let started = Instant::now();
            let (status, error) = refused(
                &srv,
                &everything,
                "SELECT COUNT(*) AS n FROM key_verifications_v1 a, key_verifications_v1 b, key_verifications_v1 c",
            )
            .await;
            assert_eq!(status, 422, "{error}");
            assert!(detail(&error).contains("longer than 300 ms"), "{error}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );

            // The caller's own mistakes are 400s that say what is wrong.
            let (status, error) = refused(
                &srv,
                &reader,
                "SELECT no_such_column FROM key_verifications_v1",
            )
            .await;
            assert_eq!(status, 400, "{error}");
            assert!(detail(&error).contains("no_such_column"), "{error}");
            let (status, _) = refused(&srv, &reader, "SELEC 1").await;
            assert_eq!(status, 400);
            let (status, _) = refused(&srv, &reader, "").await;
            assert_eq!(status, 400);
            let (status, body) = srv
                .as_root(&reader)
                .call(VERIFICATIONS, json!({"query": "SELECT 1", "extra": 1}))
                .await;
            assert_eq!(status, 400, "{body}");

            // Without the grant: 403, for either route.
            let verifier = srv.root_key_with(&["api.*.verify_key"]);
            let (status, _) =
                refused(&srv, &verifier, "SELECT COUNT(*) FROM key_verifications_v1").await;
            assert_eq!(status, 403);
            assert_eq!(
                srv.as_root(&reader)
                    .status(
                        RATELIMITS,
                        json!({"query": "SELECT COUNT(*) FROM ratelimits_v1"}),
                    )
                    .await,
                403
            );

            // Nothing was changed: every row is still there and the probe key verifies.
            assert_eq!(
                number(
                    &srv,
                    VERIFICATIONS,
                    Some(&everything),
                    "SELECT COUNT(*) AS n FROM key_verifications_v1"
                )
                .await,
                2007.0
            );
            assert_eq!(srv.verify(json!({"key": probe})).await["valid"], true);
            assert!(!std::path::Path::new("/tmp/keyway-stolen.db").exists());
        }
    );
}

mod status_429 {
    use super::*;

    // One root key may hold at most KEYWAY_ANALYTICS_PER_KEY queries at once; the next is a
    // 429 in the envelope, and another key's query still runs.
    both!(
        one_caller_cannot_hold_every_analytics_connection,
        &["--analytics-per-key", "1", "--analytics-timeout-ms", "1500"],
        |srv| {
            let api = srv.create_api().await;
            let workspace = workspace_of(&srv, &api).await;
            plant_foreign_rows(&srv, &workspace, &api).await;
            let hog = srv.root_key_with(&["api.*.read_analytics"]);
            let other = srv.root_key_with(&["api.*.read_analytics"]);
            let slow = "SELECT COUNT(*) AS n FROM key_verifications_v1 a, key_verifications_v1 b, key_verifications_v1 c";
            let (hog_c, other_c) = (srv.as_root(&hog), srv.as_root(&other));
            let first = hog_c.call(VERIFICATIONS, json!({"query": slow}));
            let second = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let over = hog_c
                    .call(VERIFICATIONS, json!({"query": "SELECT 1 AS n"}))
                    .await;
                let meanwhile = other_c
                    .call(VERIFICATIONS, json!({"query": "SELECT 1 AS n"}))
                    .await;
                (over, meanwhile)
            };
            let ((slow_status, _), ((status, body), (other_status, other_body))) =
                tokio::join!(first, second);
            assert_eq!(slow_status, 422);
            assert_eq!(status, 429, "{body}");
            assert_eq!(
                body["error"]["type"],
                "https://unkey.com/docs/errors/user/too_many_requests/query_quota_exceeded"
            );
            assert!(body["meta"]["requestId"].as_str().is_some());
            assert_eq!(other_status, 200, "{other_body}");
            // Its place is free again once the query ended.
            assert_eq!(
                srv.as_root(&hog)
                    .status(VERIFICATIONS, json!({"query": "SELECT 1 AS n"}))
                    .await,
                200
            );
        }
    );

    // What a hostile review of the rebuilt sandbox found, each with only an
    // `api.<id>.read_analytics` key: a chain of operators that overflowed the stack and ended
    // the process, strings that PostgreSQL folded to 17 GB while planning, work inside one row
    // that the deadline could not interrupt, and a hang-up that freed the caller's places
    // while its query ran on.
    both!(
        the_reviews_resource_attacks_are_bounded,
        &["--analytics-timeout-ms", "1500", "--analytics-per-key", "1"],
        |srv| {
            let api = srv.create_api().await;
            let (_, key) = srv.create_key_in(&api, json!({})).await;
            let workspace = workspace_of(&srv, &api).await;
            plant_foreign_rows(&srv, &workspace, &api).await;
            let reader = srv.root_key_with(&["api.*.read_analytics"]);
            let ask = |q: String| {
                let (srv, reader) = (&srv, reader.clone());
                async move {
                    srv.as_root(&reader)
                        .call(VERIFICATIONS, json!({"query": q}))
                        .await
                }
            };

            // Chains of every length answer, none ends the process.
            for n in [300, 5000] {
                for op in [" + ", " OR ", " || "] {
                    let q = format!(
                        "SELECT {} AS x FROM key_verifications_v1",
                        vec!["1"; n].join(op)
                    );
                    let (status, body) = ask(q).await;
                    assert_eq!(status, 400, "{n} terms of {op}: {body}");
                }
            }
            let ors = (0..300)
                .map(|i| format!("outcome = 'O{i}'"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let (status, body) = ask(format!(
                "SELECT COUNT(*) AS n FROM key_verifications_v1 WHERE {ors}"
            ))
            .await;
            assert_eq!(status, 400, "{body}");
            assert!(
                body["error"]["detail"].as_str().unwrap().contains("use IN"),
                "{body}"
            );

            // Strings that grow: refused before any database sees them.
            let big = "a".repeat(30_000);
            let eight = "v||v||v||v||v||v||v||v";
            let started = Instant::now();
            let (status, body) = ask(format!(
                "WITH a AS (SELECT '{big}' AS v), b AS (SELECT {eight} AS v FROM a), c AS (SELECT {eight} AS v FROM b), \
                 d AS (SELECT {eight} AS v FROM c), e AS (SELECT {eight} AS v FROM d) \
                 SELECT length(v||v||v||v||v||v||v||v||v) AS n FROM e"
            ))
            .await;
            assert_eq!(status, 422, "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
            // Work inside one row, where the deadline cannot reach: LIKEs over long strings
            // answer within the time limit or are refused, and a wide row is refused.
            for (len, times) in [(25_000, 60), (200_000, 60)] {
                let like = format!("'{}'", "%a_".repeat(times));
                let likes = (0..3)
                    .map(|i| format!("v LIKE {like} AS x{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let started = Instant::now();
                let (status, body) = ask(format!(
                    "WITH a AS (SELECT '{}' AS v), b AS (SELECT {eight} AS v FROM a) SELECT {likes} FROM b",
                    "a".repeat(len / 8)
                ))
                .await;
                assert!([200, 422].contains(&status), "{body}");
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "{:?}",
                    started.elapsed()
                );
            }
            let wide = (0..250)
                .map(|i| format!("concat(key_id, '{}') AS c{i}", "x".repeat(100)))
                .collect::<Vec<_>>()
                .join(", ");
            let (status, body) = ask(format!("SELECT {wide} FROM key_verifications_v1")).await;
            assert_eq!(status, 422, "{body}");

            // A caller that hangs up keeps its place until its query ends.
            let slow = "SELECT COUNT(*) AS n FROM key_verifications_v1 a, key_verifications_v1 b, key_verifications_v1 c";
            let impatient = reqwest::Client::builder()
                .timeout(Duration::from_millis(300))
                .build()
                .unwrap();
            let hung_up = impatient
                .post(srv.url(VERIFICATIONS))
                .bearer_auth(&reader)
                .json(&json!({"query": slow}))
                .send()
                .await;
            assert!(hung_up.is_err(), "the slow query answered within 300 ms");
            let (status, body) = ask("SELECT 1 AS n".to_string()).await;
            assert_eq!(status, 429, "{body}");
            tokio::time::sleep(Duration::from_millis(2000)).await;
            let (status, body) = ask("SELECT 1 AS n".to_string()).await;
            assert_eq!(status, 200, "{body}");

            // The server is alive and verifies throughout.
            assert_eq!(srv.verify(json!({"key": key})).await["valid"], true);
        }
    );
}
