//! Analytics storage: the rollups count exactly what the raw table holds, the modes
//! record what they say, and retention deletes only what is past its time.

use serde_json::json;
use sqlx::AnyPool;

use crate::both;

const ROLLUPS: [&str; 4] = ["per_minute", "per_hour", "per_day", "per_month"];

/// How many rows `table` holds.
async fn rows_in(db: &AnyPool, table: &str) -> i64 {
    count(db, &format!("SELECT COUNT(*) FROM {table}")).await
}

async fn count(db: &AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(db)
        .await
        .unwrap()
}

both!(rollups_count_what_the_raw_table_holds, |srv| {
    let (_, _, key) = srv.create_key(json!({"credits": {"remaining": 5}})).await;
    let (_, _, tagged) = srv.create_key(json!({})).await;
    for _ in 0..7 {
        srv.verify(json!({"key": key})).await;
    }
    for i in 0..4 {
        srv.verify(json!({"key": tagged, "tags": [format!("n={}", i % 2)]}))
            .await;
    }
    let limit = json!({"namespace": "ns", "identifier": "u1", "limit": 2, "duration": 60000});
    for _ in 0..5 {
        srv.ok("/v2/ratelimit.limit", limit.clone()).await;
    }
    // SIGTERM flushes everything buffered.
    assert_eq!(srv.signal_and_wait("TERM"), Some(0));
    let db = srv.db.pool().await.unwrap();
    assert_eq!(rows_in(&db, "key_verifications").await, 11);
    for r in ROLLUPS {
        let t = format!("key_verifications_{r}");
        assert_eq!(
            count(&db, &format!("SELECT CAST(SUM(count) AS BIGINT) FROM {t}")).await,
            11,
            "{t}"
        );
        assert_eq!(
            count(
                &db,
                &format!("SELECT CAST(SUM(count) AS BIGINT) FROM {t} WHERE outcome = 'VALID'")
            )
            .await,
            count(
                &db,
                "SELECT COUNT(*) FROM key_verifications WHERE outcome = 'VALID'"
            )
            .await,
            "{t}"
        );
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT CAST(SUM(count) AS BIGINT) FROM {t} WHERE outcome = 'USAGE_EXCEEDED'"
                )
            )
            .await,
            2,
            "{t}"
        );
        assert_eq!(
            count(
                &db,
                &format!("SELECT CAST(SUM(spent_credits) AS BIGINT) FROM {t}")
            )
            .await,
            count(
                &db,
                "SELECT CAST(SUM(spent_credits) AS BIGINT) FROM key_verifications"
            )
            .await,
            "{t}"
        );
        assert_eq!(
            count(
                &db,
                &format!("SELECT CAST(SUM(count) AS BIGINT) FROM {t} WHERE tags = '[\"n=1\"]'")
            )
            .await,
            2,
            "{t}"
        );
        let rl = format!("ratelimits_{r}");
        assert_eq!(
            count(
                &db,
                &format!("SELECT CAST(SUM(count) AS BIGINT) FROM {rl} WHERE passed = 1")
            )
            .await,
            2,
            "{rl}"
        );
        assert_eq!(
            count(
                &db,
                &format!("SELECT CAST(SUM(count) AS BIGINT) FROM {rl} WHERE passed = 0")
            )
            .await,
            3,
            "{rl}"
        );
    }
    // A hot key costs one row per bucket, not one per request (all 11 fit a day here,
    // unless the test ran across midnight).
    assert!(rows_in(&db, "key_verifications_per_day").await <= 8);
    db.close().await;
});

// Each raw row is the verification it records: the response's request id, its outcome,
// and the key's API and id only when the key was found.
both!(raw_rows_are_the_verifications_made, |srv| {
    let (api, key_id, key) = srv.create_key(json!({})).await;
    let mut made = Vec::new();
    for (body, found) in [
        (json!({"key": key}), true),
        (json!({"key": "sk_not_a_key_of_ours"}), false),
    ] {
        let (status, v) = srv.call("/v2/keys.verifyKey", body).await;
        assert_eq!(status, 200, "{v}");
        let id = v["meta"]["requestId"]
            .as_str()
            .expect("requestId")
            .to_string();
        let code = v["data"]["code"].as_str().expect("code").to_string();
        made.push((id, code, found));
    }
    assert_eq!(srv.signal_and_wait("TERM"), Some(0));
    let db = srv.db.pool().await.unwrap();
    for (id, code, found) in made {
        let row: (String, String, String, String) = sqlx::query_as(&format!(
            "SELECT outcome, api_id, key_id, served_by FROM key_verifications WHERE request_id = '{id}'"
        ))
        .fetch_one(&db)
        .await
        .unwrap_or_else(|e| panic!("no row for {id}: {e}"));
        let (api, key_id) = if found {
            (api.clone(), key_id.clone())
        } else {
            (String::new(), String::new())
        };
        assert_eq!(row, (code, api, key_id, "origin".to_string()), "{id}");
    }
    db.close().await;
});

both!(
    rollup_mode_keeps_counts_without_raw_rows,
    &["--events", "rollup"],
    |srv| {
        let (_, _, key) = srv.create_key(json!({})).await;
        for _ in 0..3 {
            srv.verify(json!({"key": key})).await;
        }
        assert_eq!(srv.signal_and_wait("TERM"), Some(0));
        let db = srv.db.pool().await.unwrap();
        assert_eq!(rows_in(&db, "key_verifications").await, 0);
        assert_eq!(
            count(
                &db,
                "SELECT CAST(SUM(count) AS BIGINT) FROM key_verifications_per_hour"
            )
            .await,
            3
        );
        db.close().await;
    }
);

both!(off_records_nothing, &["--events", "off"], |srv| {
    let (_, _, key) = srv.create_key(json!({})).await;
    srv.verify(json!({"key": key})).await;
    assert_eq!(srv.signal_and_wait("TERM"), Some(0));
    let db = srv.db.pool().await.unwrap();
    assert_eq!(rows_in(&db, "key_verifications").await, 0);
    assert_eq!(rows_in(&db, "key_verifications_per_minute").await, 0);
    assert_eq!(rows_in(&db, "ratelimits_per_minute").await, 0);
    db.close().await;
});

both!(
    retention_deletes_only_rows_past_their_time,
    &[
        "--retention-interval-seconds",
        "0.2",
        "--retention-batch",
        "2"
    ],
    |srv| {
        let db = srv.db.pool().await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let day = 86_400_000i64;
        // Raw and per-minute rows keep 7 days, per-hour 30, per-day and per-month 365.
        let rows = [
            ("key_verifications", 8, false),
            ("key_verifications", 6, true),
            ("ratelimit_events", 8, false),
            ("key_verifications_per_minute", 8, false),
            ("key_verifications_per_minute", 6, true),
            ("key_verifications_per_hour", 31, false),
            ("key_verifications_per_hour", 29, true),
            ("ratelimits_per_day", 366, false),
            ("ratelimits_per_day", 364, true),
            ("key_verifications_per_month", 400, false),
        ];
        for (i, (table, age, _)) in rows.iter().enumerate() {
            let time = now - age * day;
            let sql = match *table {
                "key_verifications" => format!(
                    "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) VALUES ({time}, 'r{i}', 'ws', 'api', 'k', NULL, 'VALID', 0, '[]', 1, 'origin')"
                ),
                "ratelimit_events" => format!(
                    "INSERT INTO ratelimit_events (time, request_id, workspace_id, namespace, identifier, passed, latency_us, served_by) VALUES ({time}, 'r{i}', 'ws', 'ns', 'id', 1, 1, 'origin')"
                ),
                t if t.starts_with("ratelimits_") => format!(
                    "INSERT INTO {t} (time, workspace_id, namespace, identifier, passed, count) VALUES ({time}, 'ws', 'ns', 'id{i}', 1, 1)"
                ),
                t => format!(
                    "INSERT INTO {t} (time, workspace_id, api_id, key_id, identity_id, outcome, tags, count, spent_credits) VALUES ({time}, 'ws', 'api', 'k{i}', '', 'VALID', '[]', 1, 0)"
                ),
            };
            sqlx::query(&sql).execute(&db).await.unwrap();
        }
        // Enough old raw rows that a batch of 2 needs several statements.
        for i in 0..5 {
            sqlx::query(&format!(
                "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) VALUES ({}, 'old{i}', 'ws', 'api', 'k', NULL, 'VALID', 0, '[]', 1, 'origin')",
                now - 10 * day
            ))
            .execute(&db)
            .await
            .unwrap();
        }
        let kept = rows.iter().filter(|r| r.2).count() as i64;
        let tables = [
            "key_verifications",
            "ratelimit_events",
            "key_verifications_per_minute",
            "key_verifications_per_hour",
            "ratelimits_per_day",
            "key_verifications_per_month",
        ];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let mut total = 0;
            for t in tables {
                total += rows_in(&db, t).await;
            }
            if total == kept {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "retention left {total} rows, expected {kept}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for (table, age, keep) in rows {
            if keep {
                let time = now - age * day;
                assert_eq!(
                    count(
                        &db,
                        &format!("SELECT COUNT(*) FROM {table} WHERE time = {time}")
                    )
                    .await,
                    1,
                    "{table} row aged {age} days must stay"
                );
            }
        }
        db.close().await;
    }
);

/// The scheduling policy of the server's thread named `name`, from `/proc` (field 41 of
/// the thread's `stat`; 0 is normal, 5 is `SCHED_IDLE`).
fn thread_policy(pid: u32, name: &str) -> Option<u32> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // After the parenthesised name, fields start at the third.
            let rest = &stat[stat.rfind(')')? + 1..];
            return rest.split_whitespace().nth(41 - 3)?.parse().ok();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_priority_writer_still_writes_every_event() {
    let srv = crate::harness::Server::start_with(
        crate::harness::Backend::Sqlite,
        &["--event-writer-priority", "idle", "--event-flush-ms", "50"],
    )
    .await;
    assert!(
        srv.log_line("the event writer runs at idle priority")
            .is_some()
    );
    assert_eq!(thread_policy(srv.pid(), "keyway-events"), Some(5));
    // The runtime's workers keep the normal class.
    assert_eq!(thread_policy(srv.pid(), "tokio-rt-worker"), Some(0));
    let (_, _, key) = srv.create_key(json!({})).await;
    for _ in 0..20 {
        srv.verify(json!({"key": key})).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while srv.metric("keyway_events_written_total").await < 20.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "events were not written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(srv.metric("keyway_events_dropped_total").await, 0.0);
}
