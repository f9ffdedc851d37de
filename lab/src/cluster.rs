//! The cluster part: what putting the counters in Redis costs a verification.
//!
//! Two release origins in one run, each on its own SQLite file: `single` keeps its
//! counters in memory, `cluster` keeps them in a `redis-server` of the lab's own
//! (`KEYWAY_REDIS_URL`). Both verify the same two kinds of key: `plain` (permissions, no
//! counters: Redis must not be on its path) and `stateful` (credits and a rate limit: one
//! Redis script call). Each pair is measured at a fixed rate for latency and flat out for
//! throughput, alternating the two origins so that the machine's noise falls on both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::load::{self, Measured, Pace, Shot};
use crate::parts::{self, OriginSettings, Part};
use crate::seed::{self, Seeded};
use keyway_testkit::Client;

pub struct Options {
    pub out: PathBuf,
    pub seconds: f64,
    pub rate: f64,
    pub connections: usize,
    pub rounds: usize,
    pub command: String,
}

#[derive(Serialize)]
pub struct Row {
    pub key: &'static str,
    pub origin: &'static str,
    /// At the fixed rate: latency without queueing.
    pub paced: Measured,
    /// Flat out with `connections` loops: the throughput ceiling.
    pub max: Measured,
}

#[derive(Serialize)]
pub struct Report {
    pub command: String,
    pub rate: f64,
    pub seconds: f64,
    pub rounds: usize,
    pub rows: Vec<Row>,
    /// cluster p50 minus single p50 for the stateful key at the fixed rate, in ms: the
    /// target is at most 0.2.
    pub stateful_p50_added_ms: f64,
    pub stateful_throughput_ratio: f64,
    pub plain_p50_added_ms: f64,
}

struct Origin {
    name: &'static str,
    part: Part,
    keys: Seeded,
}

pub async fn run(opts: &Options) -> Result<Report> {
    load::oha_available()?;
    let dir = tempfile::tempdir()?;
    let redis = keyway_testkit::Redis::start()?;
    let redis_url = redis.url();
    let root_key = format!("root_lab_{}", std::process::id());
    let http = reqwest::Client::new();
    let mut origins = Vec::new();
    for (name, redis_url) in [("single", None), ("cluster", Some(redis_url.as_str()))] {
        let part = parts::start_origin(
            &OriginSettings {
                database: &dir.path().join(format!("{name}.db")),
                root_key: &root_key,
                edge_secret: "lab_cluster_secret_unused",
                cache_capacity: 2_000_000,
                redis_url,
            },
            &dir.path().join(format!("{name}.log")),
        )?;
        let keys = seed::seed(&Client::with_http(
            http.clone(),
            &format!("http://{}", part.addr),
            &root_key,
        ))
        .await?;
        origins.push(Origin { name, part, keys });
    }
    let mut samples: Vec<(&'static str, &'static str, Measured, Measured)> = Vec::new();
    for round in 0..opts.rounds {
        for key in ["plain", "stateful"] {
            // Alternate which origin goes first, round by round.
            let order: Vec<&Origin> = if round % 2 == 0 {
                origins.iter().collect()
            } else {
                origins.iter().rev().collect()
            };
            for o in order {
                let body = seed::verify_body(
                    if key == "plain" {
                        &o.keys.plain
                    } else {
                        &o.keys.stateful
                    },
                    key == "plain",
                );
                let shot = |pace, connections| Shot {
                    addr: o.part.addr,
                    path: "/v2/keys.verifyKey",
                    body: Some(body.clone()),
                    bearer: Some(root_key.clone()),
                    connections,
                    duration: Duration::from_secs_f64(opts.seconds),
                    pace,
                };
                // Warm the caches and connections before measuring.
                let mut warm = shot(Pace::Max, 4);
                warm.duration = Duration::from_millis(300);
                load::run(&warm)?;
                let paced = load::run(&shot(Pace::Fixed { rate: opts.rate }, 4))?;
                let max = load::run(&shot(Pace::Max, opts.connections))?;
                samples.push((key, o.name, paced, max));
            }
        }
    }
    drop(origins);
    drop(redis);
    let rows = merge(samples);
    let find = |key: &str, origin: &str| rows.iter().find(|r| r.key == key && r.origin == origin);
    let added = |key: &str| match (find(key, "cluster"), find(key, "single")) {
        (Some(c), Some(s)) => c.paced.p50 - s.paced.p50,
        _ => f64::NAN,
    };
    let ratio = match (find("stateful", "cluster"), find("stateful", "single")) {
        (Some(c), Some(s)) if s.max.throughput > 0.0 => c.max.throughput / s.max.throughput,
        _ => f64::NAN,
    };
    let report = Report {
        command: opts.command.clone(),
        rate: opts.rate,
        seconds: opts.seconds,
        rounds: opts.rounds,
        stateful_p50_added_ms: added("stateful"),
        stateful_throughput_ratio: ratio,
        plain_p50_added_ms: added("plain"),
        rows,
    };
    write(&opts.out, &report)?;
    Ok(report)
}

/// One row per (key, origin): the median round of each measure.
fn merge(samples: Vec<(&'static str, &'static str, Measured, Measured)>) -> Vec<Row> {
    let mut rows = Vec::new();
    for key in ["plain", "stateful"] {
        for origin in ["single", "cluster"] {
            let mut mine: Vec<&(&str, &str, Measured, Measured)> = samples
                .iter()
                .filter(|s| s.0 == key && s.1 == origin)
                .collect();
            if mine.is_empty() {
                continue;
            }
            mine.sort_by(|a, b| a.2.p50.total_cmp(&b.2.p50));
            let paced = mine[mine.len() / 2].2.clone();
            mine.sort_by(|a, b| a.3.throughput.total_cmp(&b.3.throughput));
            let max = mine[mine.len() / 2].3.clone();
            rows.push(Row {
                key,
                origin,
                paced,
                max,
            });
        }
    }
    rows
}

fn write(out: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("cluster.json"), serde_json::to_vec_pretty(report)?)?;
    let mut md = String::new();
    md.push_str("# Cluster mode: counters in Redis against counters in memory\n\n");
    md.push_str(&format!(
        "`{}`: {} round(s), {:.1} s per run; latency at {:.0} req/s over 4 connections, throughput flat out. Median round shown.\n\n",
        report.command, report.rounds, report.seconds, report.rate
    ));
    md.push_str("| key | origin | p50 ms | p99 ms | req/s flat out | p99 ms flat out | errors |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in &report.rows {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.0} | {:.2} | {} |\n",
            r.key,
            r.origin,
            r.paced.p50,
            r.paced.p99,
            r.max.throughput,
            r.max.p99,
            r.paced.errors + r.max.errors
        ));
    }
    md.push_str(&format!(
        "\nStateful verification: cluster p50 is single-node p50 {:+.3} ms (target: at most +0.2 ms); throughput ratio {:.2}.\nPlain key (Redis not on its path): {:+.3} ms at p50.\n",
        report.stateful_p50_added_ms, report.stateful_throughput_ratio, report.plain_p50_added_ms
    ));
    std::fs::write(out.join("cluster.md"), md)?;
    Ok(())
}
