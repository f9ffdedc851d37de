//! Keys for the scenarios, created through the public API like a user would, and the
//! bulk keys for the memory scenario, written straight into the SQLite file because a
//! million `createKey` calls would take longer than everything else together.

use std::path::Path;

use anyhow::{Context, Result};
use keyway_core::key;
use keyway_testkit::Client;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, QueryBuilder, Sqlite};

pub struct Seeded {
    /// Permissions, no counters: the edge decides it alone.
    pub plain: String,
    /// Credits and an auto-applied rate limit: only the origin can decide it.
    pub stateful: String,
}

pub async fn seed(api: &Client) -> Result<Seeded> {
    let created = api
        .data("/v2/apis.createApi", json!({"name": "lab"}))
        .await?;
    let api_id = created["apiId"]
        .as_str()
        .context("createApi gave no apiId")?
        .to_string();
    let (_, plain) = api
        .try_create_key_in(
            &api_id,
            json!({
                "prefix": "lab",
                "permissions": ["api.read", "api.write"],
            }),
        )
        .await?;
    let (_, stateful) = api
        .try_create_key_in(&api_id, json!({
            "prefix": "lab",
            "credits": {"remaining": 1_000_000_000_000u64},
            "ratelimits": [{"name": "requests", "limit": 1_000_000_000u64, "duration": 60_000, "autoApply": true}],
        }))
        .await?;
    Ok(Seeded { plain, stateful })
}

/// The body every verification scenario sends for a key.
pub fn verify_body(key: &str, with_permissions: bool) -> String {
    if with_permissions {
        json!({"key": key, "permissions": "api.read AND api.write"}).to_string()
    } else {
        json!({"key": key}).to_string()
    }
}

/// Writes `count` keys shaped like the template key (same workspace, API and keyspace),
/// and returns their plain text. SQLite allows 32,766 parameters per statement; a batch
/// of 4,000 rows of 7 stays under it.
pub async fn bulk_keys(
    db: &Path,
    template_key_id: &str,
    count: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<String>> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .context("opening the lab database")?;
    let (workspace, api, keyspace): (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT workspace_id, api_id, keyspace_id FROM keys WHERE id = ?")
            .bind(template_key_id)
            .fetch_one(&mut conn)
            .await
            .context("reading the template key")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut plains = Vec::with_capacity(count);
    let mut i = 0usize;
    while i < count {
        let batch = (count - i).min(4_000);
        let mut rows = Vec::with_capacity(batch);
        for _ in 0..batch {
            let random: [u8; 16] = rand::random();
            let minted = key::mint(Some("mem"), &random)?;
            rows.push((
                format!("key_mem{i:09}"),
                minted.hash.as_str().to_string(),
                minted.start,
            ));
            plains.push(minted.key.into_inner());
            i += 1;
        }
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO keys (id, hash, start, workspace_id, api_id, keyspace_id, enabled, created_at) ",
        );
        q.push_values(rows, |mut b, (id, hash, start)| {
            b.push_bind(id)
                .push_bind(hash)
                .push_bind(start)
                .push_bind(workspace.clone())
                .push_bind(api.clone())
                .push_bind(keyspace.clone())
                .push("1")
                .push_bind(now);
        });
        q.build()
            .execute(&mut conn)
            .await
            .context("inserting memory keys")?;
        progress.inc(batch as u64);
    }
    Ok(plains)
}
