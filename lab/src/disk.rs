//! What the run left on disk: the database's size, the rows in each analytics table, and
//! the bytes per recorded verification. Read through `analytics.getVerifications` and
//! `analytics.getRatelimits`, the way an operator would, after the event buffer drained.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// The SQLite file plus its write-ahead log.
    pub database_bytes: u64,
    /// Verifications the raw table holds.
    pub verifications: u64,
    pub bytes_per_verification: f64,
    /// Rows per public analytics table (each stands for one stored table).
    pub rows: Vec<(String, u64)>,
}

const TABLES: [(&str, &str); 10] = [
    ("/v2/analytics.getVerifications", "key_verifications_v1"),
    (
        "/v2/analytics.getVerifications",
        "key_verifications_per_minute_v1",
    ),
    (
        "/v2/analytics.getVerifications",
        "key_verifications_per_hour_v1",
    ),
    (
        "/v2/analytics.getVerifications",
        "key_verifications_per_day_v1",
    ),
    (
        "/v2/analytics.getVerifications",
        "key_verifications_per_month_v1",
    ),
    ("/v2/analytics.getRatelimits", "ratelimits_v1"),
    ("/v2/analytics.getRatelimits", "ratelimits_per_minute_v1"),
    ("/v2/analytics.getRatelimits", "ratelimits_per_hour_v1"),
    ("/v2/analytics.getRatelimits", "ratelimits_per_day_v1"),
    ("/v2/analytics.getRatelimits", "ratelimits_per_month_v1"),
];

async fn count(
    http: &reqwest::Client,
    origin: SocketAddr,
    root_key: &str,
    path: &str,
    table: &str,
) -> Result<u64> {
    let body: Value = http
        .post(format!("http://{origin}{path}"))
        .bearer_auth(root_key)
        .json(&json!({"query": format!("SELECT COUNT(*) AS n FROM {table}")}))
        .timeout(Duration::from_secs(120))
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("counting {table}"))?
        .json()
        .await?;
    body["data"][0]["n"]
        .as_u64()
        .with_context(|| format!("counting {table}: {body}"))
}

/// `db` is the SQLite file the origin writes; its `-wal` beside it counts too.
pub async fn measure(
    http: &reqwest::Client,
    origin: SocketAddr,
    root_key: &str,
    db: &Path,
    flush: Duration,
) -> Result<DiskReport> {
    // Let the last batch of events land.
    tokio::time::sleep(flush).await;
    let mut rows = Vec::new();
    for (path, table) in TABLES {
        rows.push((
            table.to_string(),
            count(http, origin, root_key, path, table).await?,
        ));
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_file_name(format!(
        "{}-wal",
        db.file_name().and_then(|n| n.to_str()).unwrap_or("lab.db")
    ));
    let database_bytes = size(db) + size(&wal);
    let verifications = rows[0].1;
    Ok(DiskReport {
        database_bytes,
        verifications,
        bytes_per_verification: database_bytes as f64 / verifications.max(1) as f64,
        rows,
    })
}

pub fn markdown(d: &DiskReport) -> String {
    let mut s = format!(
        "\n## Disk\n\nAfter the run, the origin's SQLite database (file and write-ahead log) holds **{:.1} MiB**: **{:.0} bytes per recorded verification** over {} raw verification rows (every table and index included, keys and rollups too; retention at its defaults).\n\n| table | rows |\n|---|---:|\n",
        d.database_bytes as f64 / 1048576.0,
        d.bytes_per_verification,
        d.verifications
    );
    for (t, n) in &d.rows {
        s.push_str(&format!("| `{t}` | {n} |\n"));
    }
    s
}
