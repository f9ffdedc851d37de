//! Counters, caches and durability: what the in-memory design must get exactly right.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use sqlx::Row;

use crate::both;
use crate::harness::{Backend, Server};

both!(credits_exact_under_concurrency, |srv| {
    let (_, _, key) = srv.create_key(json!({"credits": {"remaining": 50}})).await;
    let calls = (0..300).map(|_| srv.call("/v2/keys.verifyKey", json!({"key": key})));
    let results = join_all(calls).await;
    let valid = results
        .iter()
        .filter(|(s, v)| *s == 200 && v["data"]["code"] == "VALID")
        .count();
    let exceeded = results
        .iter()
        .filter(|(_, v)| v["data"]["code"] == "USAGE_EXCEEDED")
        .count();
    assert_eq!((valid, exceeded), (50, 250));
});

both!(ratelimits_exact_under_concurrency, |srv| {
    let (_, _, key) = srv
        .create_key(json!({"ratelimits": [{"name": "requests", "limit": 40, "duration": 600000, "autoApply": true}]}))
        .await;
    let results =
        join_all((0..200).map(|_| srv.call("/v2/keys.verifyKey", json!({"key": key})))).await;
    let valid = results
        .iter()
        .filter(|(_, v)| v["data"]["code"] == "VALID")
        .count();
    assert_eq!(valid, 40);
    let body = json!({"namespace": "burst", "identifier": "one", "limit": 25, "duration": 600000});
    let results = join_all((0..200).map(|_| srv.call("/v2/ratelimit.limit", body.clone()))).await;
    let passed = results
        .iter()
        .filter(|(_, v)| v["data"]["success"] == true)
        .count();
    assert_eq!(passed, 25);
});

both!(revocation_is_immediate, |srv| {
    let (api, key_id, key) = srv.create_key(json!({})).await;
    assert_eq!(srv.verify(json!({"key": key})).await["code"], "VALID");
    srv.ok(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": false}),
    )
    .await;
    assert_eq!(srv.verify(json!({"key": key})).await["code"], "DISABLED");
    srv.ok(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": true}),
    )
    .await;
    assert_eq!(srv.verify(json!({"key": key})).await["code"], "VALID");
    srv.ok("/v2/keys.deleteKey", json!({"keyId": key_id})).await;
    assert_eq!(srv.verify(json!({"key": key})).await["code"], "NOT_FOUND");
    // Deleting the API revokes its keys too.
    let (_, other) = srv.create_key_in(&api, json!({})).await;
    assert_eq!(srv.verify(json!({"key": other})).await["code"], "VALID");
    srv.ok("/v2/apis.deleteApi", json!({"apiId": api})).await;
    assert_eq!(srv.verify(json!({"key": other})).await["code"], "NOT_FOUND");
});

both!(
    stale_while_revalidate,
    &[
        "--cache-fresh-seconds",
        "0.5",
        "--cache-stale-seconds",
        "60"
    ],
    |srv| {
        let (_, key_id, key) = srv.create_key(json!({})).await;
        assert_eq!(srv.verify(json!({"key": key})).await["code"], "VALID");
        let misses = srv
            .metric("keyway_snapshot_cache_total{status=\"miss\"}")
            .await;
        assert_eq!(srv.verify(json!({"key": key})).await["code"], "VALID");
        assert!(
            srv.metric("keyway_snapshot_cache_total{status=\"hit\"}")
                .await
                >= 1.0
        );
        // Change the row behind the server's back, as another replica would.
        let db = srv.db.pool().await.unwrap();
        sqlx::query("UPDATE keys SET enabled = 0 WHERE id = $1")
            .bind(&key_id)
            .execute(&db)
            .await
            .unwrap();
        db.close().await;
        // Still fresh: the cached snapshot answers.
        assert_eq!(srv.verify(json!({"key": key})).await["code"], "VALID");
        tokio::time::sleep(Duration::from_millis(700)).await;
        // Stale: answered at once from the old snapshot, refreshed in the background.
        assert_eq!(srv.verify(json!({"key": key})).await["code"], "VALID");
        assert!(
            srv.metric("keyway_snapshot_cache_total{status=\"stale\"}")
                .await
                >= 1.0
        );
        let mut code = String::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            code = srv.verify(json!({"key": key})).await["code"]
                .as_str()
                .unwrap()
                .to_string();
            if code == "DISABLED" {
                break;
            }
        }
        assert_eq!(code, "DISABLED");
        assert_eq!(
            srv.metric("keyway_snapshot_cache_total{status=\"miss\"}")
                .await,
            misses,
            "refresh happened off the request path"
        );
        // Unknown keys are cached as not found.
        srv.verify(json!({"key": "sk_random"})).await;
        let before = srv
            .metric("keyway_snapshot_cache_total{status=\"miss\"}")
            .await;
        srv.verify(json!({"key": "sk_random"})).await;
        assert_eq!(
            srv.metric("keyway_snapshot_cache_total{status=\"miss\"}")
                .await,
            before
        );
    }
);

both!(
    graceful_shutdown_persists_events_and_credits,
    &["--event-flush-ms", "60000", "--credit-flush-ms", "60000"],
    |srv| {
        let (_, key_id, key) = srv.create_key(json!({"credits": {"remaining": 100}})).await;
        for _ in 0..30 {
            srv.verify(json!({"key": key})).await;
        }
        srv.ok(
            "/v2/ratelimit.limit",
            json!({"namespace": "n", "identifier": "i", "limit": 5, "duration": 1000}),
        )
        .await;
        // Nothing has been flushed yet: the intervals are a minute.
        let db = srv.db.pool().await.unwrap();
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_verifications")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(events, 0);
        assert_eq!(srv.signal_and_wait("TERM"), Some(0));
        let events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM key_verifications WHERE key_id = $1")
                .bind(&key_id)
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(events, 30);
        let row =
            sqlx::query("SELECT outcome, served_by, spent_credits FROM key_verifications LIMIT 1")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(row.get::<String, _>("outcome"), "VALID");
        assert_eq!(row.get::<String, _>("served_by"), "origin");
        let rl: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ratelimit_events")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(rl, 1);
        let remaining: i64 = sqlx::query_scalar("SELECT remaining FROM keys WHERE id = $1")
            .bind(&key_id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(remaining, 70);
        db.close().await;
        // A new process on the same database sees it all.
        srv.restart();
        assert_eq!(srv.verify(json!({"key": key})).await["credits"], 69);
    }
);

both!(
    crash_loses_at_most_one_flush_interval,
    &["--credit-flush-ms", "200"],
    |srv| {
        let (_, key_id, key) = srv.create_key(json!({"credits": {"remaining": 100}})).await;
        for _ in 0..10 {
            srv.verify(json!({"key": key})).await;
        }
        // Longer than one flush interval: every spend so far must be durable.
        tokio::time::sleep(Duration::from_millis(600)).await;
        for _ in 0..5 {
            srv.verify(json!({"key": key})).await;
        }
        assert_eq!(srv.signal_and_wait("KILL"), None);
        let db = srv.db.pool().await.unwrap();
        let remaining: i64 = sqlx::query_scalar("SELECT remaining FROM keys WHERE id = $1")
            .bind(&key_id)
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;
        // The first 10 spends are durable; of the last 5, within 200 ms of the kill, some may be lost.
        assert!((85..=90).contains(&remaining), "remaining {remaining}");
        srv.restart();
        let k = srv.ok("/v2/keys.getKey", json!({"keyId": key_id})).await;
        assert_eq!(k["credits"]["remaining"].as_i64(), Some(remaining));
    }
);

both!(
    events_batch_on_interval,
    &["--event-flush-ms", "100"],
    |srv| {
        let (_, _, key) = srv.create_key(json!({})).await;
        srv.verify(json!({"key": key, "tags": ["path=/v1/x"]}))
            .await;
        srv.verify(json!({"key": "sk_nope"})).await;
        let db = srv.db.pool().await.unwrap();
        let mut n = 0i64;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            n = sqlx::query_scalar("SELECT COUNT(*) FROM key_verifications")
                .fetch_one(&db)
                .await
                .unwrap();
            if n == 2 {
                break;
            }
        }
        assert_eq!(n, 2);
        let tags: String =
            sqlx::query_scalar("SELECT tags FROM key_verifications WHERE outcome = 'VALID'")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(tags, r#"["path=/v1/x"]"#);
        db.close().await;
        assert!(srv.metric("keyway_events_written_total").await >= 2.0);
    }
);

// 5. A database that refuses writes mid-run loses nothing: failed balances stay dirty and
// are written once it accepts again; a shutdown that still cannot write exits non-zero
// and names the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_writes_survive_a_refusing_database() {
    let mut srv = Server::start_with(
        Backend::Sqlite,
        &["--credit-flush-ms", "100", "--shutdown-flush-seconds", "1"],
    )
    .await;
    let api = srv.create_api().await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(
            srv.create_key_in(&api, json!({"credits": {"remaining": 100}}))
                .await,
        );
    }
    let pool = srv.db.pool().await.unwrap();
    refuse_credit_writes(&pool).await;
    for (_, key) in &keys {
        for _ in 0..3 {
            srv.verify(json!({"key": key})).await;
        }
    }
    // Several flushes fail while the trigger stands.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("DROP TRIGGER refuse_credits")
        .execute(&pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stored = Vec::new();
        for (id, _) in &keys {
            let r: Option<i64> = sqlx::query_scalar("SELECT remaining FROM keys WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            stored.push(r);
        }
        if stored.iter().all(|r| *r == Some(97)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "balances not written after the database recovered: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Shutdown against a database that keeps refusing: non-zero, and the key is named.
    refuse_credit_writes(&pool).await;
    srv.verify(json!({"key": keys[0].1})).await;
    let code = srv.signal_and_wait("TERM");
    assert_ne!(code, Some(0), "shutdown must fail when balances were lost");
    let named = keyway_testkit::origin::wait_for_log_where(
        &srv.logs,
        |l| {
            l["fields"]["message"] == "credit balance not written"
                && l["fields"]["key_id"] == keys[0].0
        },
        Duration::from_secs(5),
    )
    .is_some();
    assert!(named, "the unwritten key is named in the log");
    pool.close().await;
}

/// A trigger that makes the database refuse every balance write, as a full disk or a
/// failed-over primary would.
async fn refuse_credit_writes(pool: &sqlx::AnyPool) {
    sqlx::query(
        "CREATE TRIGGER refuse_credits BEFORE UPDATE OF remaining ON keys
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(pool)
    .await
    .unwrap();
}
