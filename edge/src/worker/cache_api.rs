//! The Cache API side of the snapshot tiers: entries are the origin's encoded answers,
//! stamped with when their load started.

use keyway_core::wire;
use worker::{Cache, Headers, Response};

use crate::policy::lookup::{CacheApi, CacheEntry};
use crate::policy::stats::CacheFault;

const CACHE_URL: &str = "https://keyway-snapshots.internal/v1/";
const STORED_HEADER: &str = "x-keyway-stored-ms";

#[derive(Clone, Copy)]
pub struct WorkerCache;

fn cache_url(key: &str) -> String {
    // Base64's '+', '/' and '=' would be read as URL syntax.
    let safe: String = key
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '=' => '.',
            c => c,
        })
        .collect();
    format!("{CACHE_URL}{safe}")
}

impl CacheApi for WorkerCache {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheFault> {
        let read = |e: worker::Error| CacheFault::Read(e.to_string());
        let Some(mut resp) = Cache::default()
            .get(cache_url(key), true)
            .await
            .map_err(read)?
        else {
            return Ok(None);
        };
        let stored = resp.headers().get(STORED_HEADER).map_err(read)?;
        let stored_ms = stored
            .as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite())
            .ok_or_else(|| CacheFault::Corrupt(format!("{STORED_HEADER} is {stored:?}")))?;
        let bytes = resp.bytes().await.map_err(read)?;
        Ok(Some(CacheEntry { bytes, stored_ms }))
    }

    async fn put(&self, key: &str, entry: CacheEntry, ttl_ms: f64) -> Result<(), CacheFault> {
        let write = |e: worker::Error| CacheFault::Write(e.to_string());
        let headers = Headers::new();
        headers
            .set(
                "cache-control",
                &format!("max-age={}", (ttl_ms / 1000.0).ceil().max(1.0) as u64),
            )
            .map_err(write)?;
        headers
            .set(STORED_HEADER, &format!("{}", entry.stored_ms))
            .map_err(write)?;
        headers
            .set("content-type", wire::CONTENT_TYPE)
            .map_err(write)?;
        let resp = Response::from_bytes(entry.bytes).map_err(write)?;
        Cache::default()
            .put(cache_url(key), resp.with_headers(headers))
            .await
            .map_err(write)
    }
}
