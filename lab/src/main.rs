//! keyway-lab: the edge and the origin measured side by side, with their baselines,
//! under modelled networks. `cargo run --release -p keyway-lab -- compare`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod cache_api;
mod chart;
mod cluster;
mod compare;
mod delay;
mod disk;
mod hello;
mod load;
mod memory;
mod parts;
mod profiles;
mod progress;
mod report;
mod scenarios;
mod seed;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

// The origin runs inside this binary (`keyway-lab origin`), so it gets the allocator the
// `keyway` binary has; the hello-world gets the same, so the comparison is of work alone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keyway-lab",
    about = "Edge against origin, measured in one run"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the origin, workerd and the baselines; run every scenario under every
    /// profile; write report.json, report.md and latency.svg.
    Compare {
        /// A short run (under two minutes once built) that still covers everything.
        #[arg(long)]
        quick: bool,
        /// Where the report goes. Default: lab/results, or target/lab-quick with --quick.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Profiles to run, comma-separated (local, near, far, seed), or `none` for the
        /// memory scenario alone.
        #[arg(long, value_delimiter = ',', default_value = "local,near,far,seed")]
        profiles: Vec<String>,
        /// Seconds per measured run. Default: 10, or 1.5 with --quick.
        #[arg(long)]
        seconds: Option<f64>,
        /// Keys held by the origin in the memory scenario. Default: 1,000,000, or 20,000
        /// with --quick.
        #[arg(long)]
        memory_keys: Option<usize>,
        /// Requests per second of the fixed-rate runs outside `local`.
        #[arg(long)]
        rate: Option<f64>,
        /// Use the Worker bundles already built.
        #[arg(long)]
        skip_build: bool,
        /// Run only these scenarios (comma-separated): for profiling, not for a report.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Cluster mode against a single node: verifications with counters in Redis and in
    /// memory, in one run; writes cluster.md and cluster.json.
    Cluster {
        /// A short run (about half a minute once built).
        #[arg(long)]
        quick: bool,
        /// Where the report goes. Default: lab/results, or target/lab-quick with --quick.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds per measured run. Default: 10, or 1 with --quick.
        #[arg(long)]
        seconds: Option<f64>,
        /// Rounds, alternating which origin goes first; the median is reported.
        /// Default: 3, or 1 with --quick.
        #[arg(long)]
        rounds: Option<usize>,
        /// Requests per second of the latency runs.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// Checks that a report is complete and well-formed (never that a timing was met).
    Check {
        /// The folder holding report.json.
        dir: PathBuf,
    },
    /// The origin's own command line (`keyway`), as the lab runs it:
    /// `keyway-lab origin serve ...`.
    #[command(disable_help_flag = true)]
    Origin {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// The axum hello-world baseline; prints `listening on <addr>`.
    HelloAxum {
        #[arg(default_value = "127.0.0.1:18081")]
        addr: String,
    },
    /// Writes a workerd config serving the edge bundle (edge/build) on one address, for
    /// scripts/bench-edge.sh: `<dir>/workerd.capnp`.
    EdgeConfig {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        listen: String,
        #[arg(long)]
        origin_url: String,
        #[arg(long, env = "KEYWAY_EDGE_SECRET", hide_env_values = true)]
        secret: String,
        /// Also serve the Rust hello-world Worker (built by `edge/build.sh
        /// lab/hello-worker`) here, in the same workerd.
        #[arg(long)]
        hello_rust_listen: Option<String>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyway-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a report goes unless `--out` says: lab/results, or target/lab-quick with --quick.
fn out_dir(out: Option<PathBuf>, quick: bool) -> PathBuf {
    out.unwrap_or_else(|| {
        let root = parts::workspace_root();
        if quick {
            root.join("target/lab-quick")
        } else {
            root.join("lab/results")
        }
    })
}

/// The command as run, for the report's header.
fn command_line() -> String {
    std::iter::once("keyway-lab".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Compare {
            quick,
            out,
            profiles,
            seconds,
            memory_keys,
            rate,
            skip_build,
            only,
        } => {
            let profiles = profiles
                .iter()
                .filter(|n| n.as_str() != "none")
                .map(|n| profiles::by_name(n).with_context(|| format!("no profile named {n}")))
                .collect::<Result<Vec<_>>>()?;
            let out = out_dir(out, quick);
            let opts = compare::Options {
                quick,
                profiles,
                out: out.clone(),
                seconds: seconds.unwrap_or(if quick { 1.5 } else { 10.0 }),
                warm_seconds: if quick { 0.3 } else { 2.0 },
                memory_keys: memory_keys.unwrap_or(if quick { 20_000 } else { 1_000_000 }),
                rate: rate.unwrap_or(if quick { 200.0 } else { 500.0 }),
                max_connections: 32,
                skip_build,
                only,
                command: command_line(),
            };
            let rt = runtime()?;
            let report = rt.block_on(compare::compare(&opts))?;
            for t in &report.targets {
                println!(
                    "target {}: {:.2} ({})",
                    t.name,
                    t.measured,
                    if t.met { "met" } else { "missed" }
                );
            }
            if let Some(m) = &report.memory {
                println!(
                    "memory: {:.0} bytes per hot key over {} keys",
                    m.bytes_per_key, m.keys
                );
            }
            println!(
                "report: {}/report.md, report.json, latency.svg",
                out.display()
            );
            Ok(())
        }
        Cmd::Cluster {
            quick,
            out,
            seconds,
            rounds,
            rate,
        } => {
            let out = out_dir(out, quick);
            let opts = cluster::Options {
                out: out.clone(),
                seconds: seconds.unwrap_or(if quick { 1.0 } else { 10.0 }),
                rate,
                connections: 32,
                rounds: rounds.unwrap_or(if quick { 1 } else { 3 }).max(1),
                command: command_line(),
            };
            let rt = runtime()?;
            let report = rt.block_on(cluster::run(&opts))?;
            for r in &report.rows {
                println!(
                    "{} {}: p50 {:.3} ms, p99 {:.3} ms at {:.0} req/s; {:.0} req/s flat out",
                    r.key, r.origin, r.paced.p50, r.paced.p99, opts.rate, r.max.throughput
                );
            }
            println!(
                "stateful: cluster p50 {:+.3} ms over single node (target +0.2), throughput ratio {:.2}",
                report.stateful_p50_added_ms, report.stateful_throughput_ratio
            );
            println!("report: {}/cluster.md, cluster.json", out.display());
            Ok(())
        }
        Cmd::Origin { args } => {
            keyway_origin::cli::run(std::iter::once("keyway".into()).chain(args))
        }
        Cmd::HelloAxum { addr } => hello::serve(&addr),
        Cmd::EdgeConfig {
            dir,
            listen,
            origin_url,
            secret,
            hello_rust_listen,
        } => {
            let root = parts::workspace_root();
            keyway_testkit::workerd::copy_bundle(&root.join("edge/build"), &dir.join("edge"))?;
            let mut config = keyway_testkit::WorkerdConfig::new()
                .worker(parts::edge_worker("edge", &origin_url, &secret, "edge").listen(&listen));
            if let Some(addr) = hello_rust_listen {
                config = config.worker(parts::hello_rust_worker(&root, &dir)?.listen(&addr));
            }
            std::fs::write(dir.join("workerd.capnp"), config.render())?;
            println!("{}", dir.join("workerd.capnp").display());
            Ok(())
        }
        Cmd::Check { dir } => {
            let raw = std::fs::read(dir.join("report.json"))
                .with_context(|| format!("reading {}/report.json", dir.display()))?;
            let json: serde_json::Value = serde_json::from_slice(&raw)?;
            let profiles: Vec<&str> = profiles::ALL.iter().map(|p| p.name).collect();
            let scenarios: Vec<&str> = scenarios::ALL.iter().map(|s| s.name).collect();
            let mut problems = report::validate(&json, &profiles, &scenarios);
            for f in ["report.md", "latency.svg"] {
                let ok = std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0);
                if !ok {
                    problems.push(format!("{f} is missing or empty"));
                }
            }
            if let Ok(svg) = std::fs::read_to_string(dir.join("latency.svg"))
                && (!svg.contains("<svg") || !svg.contains("polyline"))
            {
                problems.push("latency.svg has no plotted lines".into());
            }
            if problems.is_empty() {
                println!("{}: complete and well-formed", dir.display());
                Ok(())
            } else {
                bail!("the report is incomplete:\n- {}", problems.join("\n- "))
            }
        }
    }
}
