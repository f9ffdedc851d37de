//! `compare`: start everything, seed, run every scenario under every profile, report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar};

use crate::cache_api::CacheService;
use crate::delay::{self, DelayProxy};
use crate::load::{self, Measured, Pace, Shot};
use crate::parts::{self, EdgeWorker, OriginSettings, Part, WorkerdSettings};
use crate::profiles::Profile;
use crate::report::{self, Report, Row};
use crate::scenarios::{self, Ask, Scenario, Server};
use crate::seed::{self, Seeded};
use keyway_testkit::Client;

pub struct Options {
    pub quick: bool,
    pub profiles: Vec<Profile>,
    pub out: PathBuf,
    pub seconds: f64,
    pub warm_seconds: f64,
    pub memory_keys: usize,
    /// Requests per second of the fixed-rate runs outside `local`.
    pub rate: f64,
    pub max_connections: usize,
    pub skip_build: bool,
    /// Only these scenarios (all when empty): for a profiling loop, not for a report.
    pub only: Vec<String>,
    pub command: String,
}

/// What every profile shares: the processes that do not depend on the network model.
struct Bench {
    root: PathBuf,
    dir: tempfile::TempDir,
    secret: String,
    root_key: String,
    origin: Part,
    cold: Part,
    hello_axum: Part,
    cache: CacheService,
    keys: Seeded,
    http: reqwest::Client,
}

pub async fn compare(opts: &Options) -> Result<Report> {
    let ui = MultiProgress::new();
    load::oha_available()?;
    let root = parts::workspace_root();
    if !opts.skip_build {
        let s = ui.add(ProgressBar::new_spinner());
        s.set_message("building the edge bundle and the Rust hello-world Worker");
        s.enable_steady_tick(Duration::from_millis(120));
        let r = root.clone();
        tokio::task::spawn_blocking(move || parts::build(&r)).await??;
        s.finish_and_clear();
    }
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let bench = start(&root).await?;

    let per_profile = scenarios::ALL.len() as u64 * 2;
    let total = ui.add(crate::progress::bar(
        per_profile * opts.profiles.len() as u64,
        "runs",
    ));
    let mut profiles = Vec::new();
    for profile in &opts.profiles {
        total.set_message(format!("profile {}", profile.name));
        let (rows, rounds) = run_profile(&bench, opts, *profile, &total).await?;
        profiles.push(report::profile_report(*profile, rows, rounds));
    }
    total.finish_and_clear();
    let targets = profiles
        .iter()
        .find(|p| p.profile.name == "local")
        .map(|p| report::targets(&p.rows, &p.throughput_rounds))
        .unwrap_or_default();
    let disk = crate::disk::measure(
        &bench.http,
        bench.origin.addr,
        &bench.root_key,
        &bench.dir.path().join("lab.db"),
        Duration::from_secs(6),
    )
    .await?;
    drop(bench);

    let memory = if opts.memory_keys > 0 {
        let dir = tempfile::tempdir()?;
        Some(crate::memory::run(dir.path(), opts.memory_keys, &ui).await?)
    } else {
        None
    };

    let report = Report {
        command: opts.command.clone(),
        quick: opts.quick,
        started_at,
        seconds_per_run: opts.seconds,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_generator: oha_version(),
        method: report::METHOD.to_vec(),
        profiles,
        targets,
        memory,
        disk: Some(disk),
    };
    write(&opts.out, &report)?;
    Ok(report)
}

fn oha_version() -> String {
    std::process::Command::new("oha")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "oha".into())
}

pub fn write(out: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(out.join("report.md"), report::markdown(report))?;
    crate::chart::latency_svg(&out.join("latency.svg"), &report.profiles)?;
    Ok(())
}

async fn start(root: &Path) -> Result<Bench> {
    let dir = tempfile::tempdir()?;
    let secret = format!("lab_edge_{:032x}", rand::random::<u128>());
    let root_key = format!("root_lab_{:032x}", rand::random::<u128>());
    let db = dir.path().join("lab.db");
    let origin = parts::start_origin(
        &OriginSettings {
            database: &db,
            root_key: &root_key,
            edge_secret: &secret,
            cache_capacity: 2_000_000,
            redis_url: None,
        },
        &dir.path().join("origin.log"),
    )?;
    // The cold origin shares the database; it starts second so migrations have run.
    let cold = parts::start_origin(
        &OriginSettings {
            database: &db,
            root_key: &root_key,
            edge_secret: &secret,
            cache_capacity: 0,
            redis_url: None,
        },
        &dir.path().join("origin-cold.log"),
    )?;
    let hello_axum = parts::start_hello_axum()?;
    let cache = CacheService::start().await?;
    let http = reqwest::Client::new();
    let keys = seed::seed(&Client::with_http(
        http.clone(),
        &format!("http://{}", origin.addr),
        &root_key,
    ))
    .await?;
    Ok(Bench {
        root: root.to_path_buf(),
        dir,
        secret,
        root_key,
        origin,
        cold,
        hello_axum,
        cache,
        keys,
        http,
    })
}

impl Bench {
    /// The verifyKey body a scenario sends: its seeded key.
    fn verify_body(&self, sc: &Scenario) -> String {
        match sc.ask {
            Ask::Plain => seed::verify_body(&self.keys.plain, true),
            Ask::Stateful => seed::verify_body(&self.keys.stateful, false),
        }
    }
}

/// Where the caller connects: straight to the server, or through a delay proxy.
async fn reach(
    target: SocketAddr,
    one_way_ms: u64,
    keep: &mut Vec<DelayProxy>,
) -> Result<SocketAddr> {
    if one_way_ms == 0 {
        return Ok(target);
    }
    let p = delay::start(target, Duration::from_millis(one_way_ms)).await?;
    let addr = p.addr;
    keep.push(p);
    Ok(addr)
}

async fn run_profile(
    b: &Bench,
    opts: &Options,
    profile: Profile,
    total: &ProgressBar,
) -> Result<(Vec<Row>, Vec<report::ThroughputRound>)> {
    let mut proxies = Vec::new();
    let origin_for_edge = reach(b.origin.addr, profile.edge_origin_ms, &mut proxies).await?;
    let workers: Vec<EdgeWorker> = scenarios::EDGE_WORKERS
        .iter()
        .map(|(name, tiers, route)| EdgeWorker { name, tiers, route })
        .collect();
    b.cache.set_read_delay(profile.cache_read);
    b.cache.clear();
    let workerd_dir = b.dir.path().join(format!("workerd-{}", profile.name));
    std::fs::create_dir_all(&workerd_dir)?;
    let settings = WorkerdSettings {
        origin_url: format!("http://{origin_for_edge}"),
        edge_secret: &b.secret,
        cache_service: b.cache.addr,
        workers: &workers,
    };
    let workerd = parts::start_workerd(&b.root, &workerd_dir, &settings)?;

    let selected = |sc: &Scenario| opts.only.is_empty() || opts.only.iter().any(|o| o == sc.name);
    let server_addr = |sc: &Scenario| -> Result<SocketAddr> {
        Ok(match sc.server {
            Server::HelloAxum => b.hello_axum.addr,
            Server::Origin => b.origin.addr,
            Server::OriginCold => b.cold.addr,
            Server::HelloWorkerd => workerd.addr(parts::HELLO_JS).context("no JS hello")?,
            Server::HelloRustWorker => workerd.addr(parts::HELLO_RUST).context("no Rust hello")?,
            Server::Edge(name) => workerd.addr(name).context("unknown edge worker")?,
        })
    };
    let mut rows = Vec::new();
    for sc in scenarios::ALL.into_iter().filter(|sc| selected(sc)) {
        let server_addr = server_addr(&sc)?;
        let one_way = if sc.server.at_edge() {
            profile.client_edge_ms
        } else {
            profile.client_origin_ms
        };
        let addr = reach(server_addr, one_way, &mut proxies).await?;
        let body = b.verify_body(&sc);
        total.set_message(format!("{}: {}", profile.name, sc.name));
        let base = Shot {
            addr,
            path: "/v2/keys.verifyKey",
            body: Some(body.clone()),
            bearer: Some(b.root_key.clone()),
            connections: 4,
            duration: Duration::from_secs_f64(opts.warm_seconds),
            pace: Pace::Max,
        };
        // Warm: fills the caches under test and opens the connections' paths.
        oha(base.clone()).await?;
        let path_check = check_path(&b.http, addr, &body, &b.root_key, &sc).await;
        if profile.is_local() {
            let max = oha(Shot {
                connections: opts.max_connections,
                duration: Duration::from_secs_f64(opts.seconds),
                ..base.clone()
            })
            .await?;
            let half = (max.throughput / 2.0).max(1.0);
            rows.push(row(&sc, Pace::Max, opts.max_connections, max, &path_check));
            total.inc(1);
            let conns = 16;
            let pace = Pace::Fixed { rate: half };
            let at_half = Shot {
                connections: conns,
                duration: Duration::from_secs_f64(opts.seconds),
                pace,
                ..base.clone()
            };
            if sc.name == "origin-hot" {
                // The tail target compares with the hello-world at this same rate, not
                // at its own half rate (a higher one). One run of each varied by several
                // times on a shared 2-core machine, so the two alternate and each keeps
                // its median run by p99.
                let (mut ours, mut hello) = (Vec::new(), Vec::new());
                for _ in 0..alternating_rounds(opts.quick) {
                    ours.push(oha(at_half.clone()).await?);
                    hello.push(
                        oha(Shot {
                            addr: b.hello_axum.addr,
                            ..at_half.clone()
                        })
                        .await?,
                    );
                }
                rows.push(row(&sc, pace, conns, median_by_p99(ours), &path_check));
                rows.push(row(
                    &scenarios::HELLO_AT_ORIGIN_RATE,
                    pace,
                    conns,
                    median_by_p99(hello),
                    "hello-world",
                ));
            } else {
                let fixed = oha(at_half).await?;
                rows.push(row(&sc, pace, conns, fixed, &path_check));
            }
        } else {
            total.inc(1);
            // Enough connections for the rate at the longest round trip here, twice over.
            let conns = 64;
            let fixed = oha(Shot {
                connections: conns,
                duration: Duration::from_secs_f64(opts.seconds),
                pace: Pace::Fixed { rate: opts.rate },
                ..base.clone()
            })
            .await?;
            rows.push(row(
                &sc,
                Pace::Fixed { rate: opts.rate },
                conns,
                fixed,
                &path_check,
            ));
        }
        total.inc(1);
    }
    let mut rounds = Vec::new();
    if profile.is_local() {
        // The throughput targets compare flat-out runs of two servers. One run of each,
        // minutes apart, varied by a fifth on this shared machine, so the targets'
        // scenarios also run in alternating rounds and each ratio is taken within one
        // round; the report keeps every round and the targets use the median.
        let paired: Vec<Scenario> = scenarios::ALL
            .into_iter()
            .filter(|sc| scenarios::THROUGHPUT_TARGETS.contains(&sc.name) && selected(sc))
            .collect();
        for r in 0..alternating_rounds(opts.quick) {
            total.set_message(format!("{}: throughput round {}", profile.name, r + 1));
            let mut order = paired.clone();
            // Every other round runs backwards, so a drift in the machine's speed during
            // a round does not always favour the same side.
            if r % 2 == 1 {
                order.reverse();
            }
            let mut round = report::ThroughputRound::default();
            for sc in &order {
                let m = oha(Shot {
                    addr: server_addr(sc)?,
                    path: "/v2/keys.verifyKey",
                    body: Some(b.verify_body(sc)),
                    bearer: Some(b.root_key.clone()),
                    connections: opts.max_connections,
                    duration: Duration::from_secs_f64(opts.seconds),
                    pace: Pace::Max,
                })
                .await?;
                round.throughput.insert(sc.name, m.throughput);
            }
            rounds.push(round);
        }
    }
    drop(workerd);
    drop(proxies);
    Ok((rows, rounds))
}

/// Alternating runs for the targets (origin-hot and the hello-world at one rate for the
/// tail; the throughput targets' scenarios flat out): an odd count, so the median is one
/// real run or one round's ratio.
fn alternating_rounds(quick: bool) -> usize {
    if quick { 1 } else { 3 }
}

/// The run whose p99 is the median of the runs'.
fn median_by_p99(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.p99.total_cmp(&b.p99));
    runs.swap_remove(runs.len() / 2)
}

fn row(sc: &Scenario, pace: Pace, connections: usize, measured: Measured, check: &str) -> Row {
    Row {
        scenario: sc.name,
        model: sc.model,
        pace,
        connections,
        measured,
        path_check: check.to_string(),
    }
}

/// oha blocks; it runs off the runtime, whose threads also serve the delay proxies.
async fn oha(shot: Shot) -> Result<Measured> {
    tokio::task::spawn_blocking(move || load::run(&shot)).await?
}

/// One request, to confirm the scenario measures the path it names: a VALID answer,
/// served where it should be, from the cache tier it should be.
async fn check_path(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: &str,
    root_key: &str,
    sc: &Scenario,
) -> String {
    match check_path_inner(http, addr, body, root_key, sc).await {
        Ok(s) => s,
        Err(e) => format!("unexpected: {e}"),
    }
}

async fn check_path_inner(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: &str,
    root_key: &str,
    sc: &Scenario,
) -> Result<String> {
    let resp = http
        .post(format!("http://{addr}/v2/keys.verifyKey"))
        .bearer_auth(root_key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let served = header("x-keyway-served-by");
    let cache = header("x-keyway-cache");
    let status = resp.status();
    let v: serde_json::Value = resp.json().await?;
    if status != 200 || v["data"]["valid"] != true {
        bail!("status {status}, body {v}");
    }
    let mut seen = vec!["VALID".to_string()];
    if let Some(want) = sc.expect_served_by {
        if served.as_deref() != Some(want) {
            bail!("served by {served:?}, wanted {want}");
        }
        seen.push(format!("served by {want}"));
    }
    if let Some(want) = sc.expect_cache {
        if cache.as_deref() != Some(want) {
            bail!("cache {cache:?}, wanted {want}");
        }
        seen.push(format!("cache {want}"));
    }
    Ok(seen.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p99: f64) -> Measured {
        Measured {
            requests: 1,
            throughput: 1.0,
            p50: p99 / 2.0,
            p90: p99,
            p99,
            p999: p99,
            errors: 0,
            curve: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_median_run_by_p99() {
        assert_eq!(median_by_p99(vec![run(9.0), run(1.0), run(4.0)]).p99, 4.0);
        assert_eq!(median_by_p99(vec![run(2.0)]).p99, 2.0);
        assert_eq!(alternating_rounds(false) % 2, 1);
    }
}
