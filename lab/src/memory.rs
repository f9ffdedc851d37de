//! The memory scenario: what the origin's resident memory grows by when it holds N hot
//! keys. A fresh origin on its own database, N keys written in bulk, every one verified
//! once (so its snapshot is cached), then resident memory read from /proc.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use crate::parts::{self, OriginSettings};
use crate::seed;
use keyway_testkit::Client;

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub keys: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub bytes_per_key: f64,
    pub verified_valid: u64,
    pub warm_seconds: f64,
}

pub async fn run(dir: &Path, keys: usize, ui: &indicatif::MultiProgress) -> Result<MemoryReport> {
    let db = dir.join("memory.db");
    let root_key = "root_lab_memory_only";
    let origin = parts::start_origin(
        &OriginSettings {
            database: &db,
            root_key,
            edge_secret: "lab_memory_secret_unused",
            cache_capacity: (keys as u64 + 1_000).max(2_000_000),
            redis_url: None,
        },
        &dir.join("origin-memory.log"),
    )?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let api = Client::with_http(http.clone(), &format!("http://{}", origin.addr), root_key);
    let created = api
        .data("/v2/apis.createApi", json!({"name": "memory"}))
        .await?;
    let api_id = created["apiId"].as_str().context("no apiId")?;
    let (template_id, template_key) = api.try_create_key_in(api_id, json!({})).await?;
    // Exercise the whole path once so code and pools are paged in before the baseline.
    for _ in 0..100 {
        api.data("/v2/keys.verifyKey", json!({"key": template_key}))
            .await?;
    }

    let bar = ui.add(crate::progress::bar(keys as u64, "memory: writing keys"));
    let plains = seed::bulk_keys(&db, &template_id, keys, &bar).await?;
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = parts::rss_bytes(origin.pid())?;

    let bar = ui.add(crate::progress::bar(
        keys as u64,
        "memory: verifying each key once",
    ));
    let valid = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let url = format!("http://{}/v2/keys.verifyKey", origin.addr);
    futures::stream::iter(plains.iter())
        .for_each_concurrent(32, |k| {
            let (http, url, valid, bar) = (&http, &url, valid.clone(), &bar);
            async move {
                let ok = http
                    .post(url)
                    .bearer_auth(root_key)
                    .json(&json!({"key": k}))
                    .send()
                    .await
                    .ok();
                if let Some(resp) = ok
                    && let Ok(v) = resp.json::<serde_json::Value>().await
                    && v["data"]["valid"] == true
                {
                    valid.fetch_add(1, Ordering::Relaxed);
                }
                bar.inc(1);
            }
        })
        .await;
    let warm_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let verified_valid = valid.load(Ordering::Relaxed);
    if verified_valid != keys as u64 {
        bail!("only {verified_valid} of {keys} bulk keys verified VALID");
    }
    // Let the analytics batches flush (every 5 s) so their buffers are not counted.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rss_after = parts::rss_bytes(origin.pid())?;
    drop(origin);
    Ok(MemoryReport {
        keys: keys as u64,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        bytes_per_key: rss_after.saturating_sub(rss_before) as f64 / keys as f64,
        verified_valid,
        warm_seconds,
    })
}
