//! Drives load with oha (crates.io) and reads its JSON report.
//!
//! oha is used rather than wrk because it paces a fixed request rate and, with
//! `--latency-correction`, measures each latency from when the request was due, not from
//! when a busy connection got round to sending it (coordinated omission). It also writes
//! JSON, so no text scraping.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pace {
    /// As fast as `connections` closed loops go: the throughput ceiling.
    Max,
    /// A fixed rate, latency measured from each request's due time.
    Fixed { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct Shot {
    pub addr: SocketAddr,
    pub path: &'static str,
    /// `None` sends a GET; `Some` POSTs this JSON.
    pub body: Option<String>,
    pub bearer: Option<String>,
    pub connections: usize,
    pub duration: Duration,
    pub pace: Pace,
}

/// What one run measured. Latencies are in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measured {
    pub requests: u64,
    pub throughput: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    /// Requests that failed or answered other than 200.
    pub errors: u64,
    /// (percentile, ms) pairs from p10 to p99.99, for the distribution chart.
    pub curve: Vec<(f64, f64)>,
}

pub fn oha_available() -> Result<()> {
    let out = Command::new("oha")
        .arg("--version")
        .output()
        .context("oha is missing: `cargo install oha --locked` (.ci/run does it)")?;
    if !out.status.success() {
        bail!("oha --version failed");
    }
    Ok(())
}

pub fn run(shot: &Shot) -> Result<Measured> {
    let url = format!("http://{}{}", shot.addr, shot.path);
    let mut cmd = Command::new("oha");
    cmd.args(["--no-tui", "--output-format", "json", "-w"])
        .args(["-z", &format!("{}ms", shot.duration.as_millis())])
        .args(["-c", &shot.connections.to_string()])
        // A hung request must show as an error, not stall the run.
        .args(["-t", "10s"]);
    if let Some(body) = &shot.body {
        cmd.args(["-m", "POST", "-T", "application/json", "-d", body]);
    }
    if let Some(token) = &shot.bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if let Pace::Fixed { rate } = shot.pace {
        cmd.args([
            "-q",
            &format!("{:.0}", rate.max(1.0)),
            "--latency-correction",
        ]);
    }
    cmd.arg(&url);
    let out = cmd.output().context("running oha")?;
    if !out.status.success() {
        bail!(
            "oha failed against {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&out.stdout).with_context(|| format!("reading oha's report for {url}"))
}

#[derive(Deserialize)]
struct Report {
    summary: Summary,
    #[serde(rename = "latencyPercentiles")]
    latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution")]
    status_codes: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution")]
    errors: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Summary {
    total: f64,
}

pub fn parse(json: &[u8]) -> Result<Measured> {
    let r: Report = serde_json::from_slice(json)?;
    let answered: u64 = r.status_codes.values().sum();
    let failed: u64 = r.errors.values().sum();
    let not_ok: u64 = r
        .status_codes
        .iter()
        .filter(|(code, _)| code.as_str() != "200")
        .map(|(_, n)| n)
        .sum();
    let pct = |name: &str| -> f64 {
        r.latency_percentiles
            .get(name)
            .copied()
            .flatten()
            .map_or(f64::NAN, |s| s * 1000.0)
    };
    let mut curve: Vec<(f64, f64)> = r
        .latency_percentiles
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix('p')?.parse::<f64>().ok()?, (*v)? * 1000.0)))
        .collect();
    curve.sort_by(|a, b| a.0.total_cmp(&b.0));
    let requests = answered + failed;
    Ok(Measured {
        requests,
        throughput: if r.summary.total > 0.0 {
            answered as f64 / r.summary.total
        } else {
            0.0
        },
        p50: pct("p50"),
        p90: pct("p90"),
        p99: pct("p99"),
        p999: pct("p99.9"),
        errors: failed + not_ok,
        curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.01, "fastest": 0.0001,
                  "average": 0.001, "requestsPerSec": 5000.0, "totalData": 10,
                  "sizePerRequest": 1, "sizePerSec": 5.0},
      "latencyPercentiles": {"p10": 0.0002, "p25": 0.0003, "p50": 0.0005, "p75": 0.0007,
                             "p90": 0.0009, "p95": 0.001, "p99": 0.002, "p99.9": 0.004,
                             "p99.99": 0.008},
      "statusCodeDistribution": {"200": 9990, "503": 6},
      "errorDistribution": {"connection closed": 4}
    }"#;

    #[test]
    fn reads_percentiles_in_ms_and_counts_every_failure() {
        let m = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(m.requests, 10_000);
        assert_eq!(m.errors, 10);
        assert!((m.throughput - 4998.0).abs() < 1e-9);
        assert!((m.p50 - 0.5).abs() < 1e-9);
        assert!((m.p999 - 4.0).abs() < 1e-9);
        assert_eq!(m.curve.len(), 9);
        assert_eq!(m.curve[0].0, 10.0);
        assert_eq!(m.curve[8].0, 99.99);
    }

    #[test]
    fn a_run_without_answers_has_no_throughput_and_nan_percentiles() {
        let empty = r#"{"summary":{"total":1.0},"latencyPercentiles":{"p50":null},
                        "statusCodeDistribution":{},"errorDistribution":{"refused":3}}"#;
        let m = parse(empty.as_bytes()).unwrap();
        assert_eq!(m.throughput, 0.0);
        assert_eq!(m.errors, 3);
        assert!(m.p50.is_nan());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"not json").is_err());
    }
}
