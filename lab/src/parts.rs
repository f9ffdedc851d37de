//! The real parts, started as processes through `keyway-testkit`: the origin, the axum
//! hello-world, Redis, and workerd serving the edge bundle and two hello-world Workers.
//!
//! The origin and the axum hello-world are this binary run again (`keyway-lab origin`,
//! `keyway-lab hello-axum`): the lab is built with the profile it is run with (release,
//! as the README says), so what it measures is the origin's own code in that profile,
//! with the `keyway` binary's allocator, and no test or run needs a nested cargo build
//! for them. Only the Worker bundles are built here: a wasm32 build through worker-build
//! cannot be a cargo dependency.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keyway_testkit::process::{OnDrop, Process, watch_lines};
use keyway_testkit::workerd::{Worker, copy_bundle};
use keyway_testkit::{OriginCommand, Workerd, WorkerdConfig};

pub use keyway_testkit::workspace_root;

/// A started process and the address it listens on; it stops when dropped, so no part
/// outlives the lab.
pub struct Part {
    pub addr: SocketAddr,
    process: Process,
}

impl Part {
    pub fn pid(&self) -> u32 {
        self.process.pid().unwrap_or(0)
    }
}

/// The Rust hello-world Worker's crate, built like the edge.
const HELLO_RUST_DIR: &str = "lab/hello-worker";

/// Builds the two Worker bundles: the edge and the Rust hello-world.
pub fn build(root: &Path) -> Result<()> {
    for (dir, what) in [
        ("edge", "building the edge bundle (edge/build.sh)"),
        (
            HELLO_RUST_DIR,
            "building the Rust hello-world Worker (edge/build.sh lab/hello-worker)",
        ),
    ] {
        let out = Command::new("bash")
            .current_dir(root)
            .args(["edge/build.sh", dir])
            .env_remove("CARGO_TARGET_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context(what)?;
        if !out.status.success() {
            bail!("{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// This binary, to run again as the origin or the axum hello-world.
fn this_binary() -> Result<PathBuf> {
    std::env::current_exe().context("finding the lab's own binary")
}

pub struct OriginSettings<'a> {
    pub database: &'a Path,
    pub root_key: &'a str,
    pub edge_secret: &'a str,
    /// `KEYWAY_CACHE_CAPACITY`; 0 turns the snapshot cache off.
    pub cache_capacity: u64,
    /// `KEYWAY_REDIS_URL`: cluster mode, counters in Redis.
    pub redis_url: Option<&'a str>,
}

pub fn start_origin(s: &OriginSettings, log: &Path) -> Result<Part> {
    let mut cmd = Command::new(this_binary()?);
    cmd.arg("origin");
    let mut origin = OriginCommand::from_command(cmd)
        .env(
            "KEYWAY_DATABASE_URL",
            format!("sqlite://{}", s.database.display()),
        )
        .env("KEYWAY_ROOT_KEY", s.root_key)
        .env("KEYWAY_EDGE_SECRET", s.edge_secret)
        .env("KEYWAY_CACHE_CAPACITY", s.cache_capacity.to_string())
        // Warnings only, as a loaded deployment would log, but the line with the address.
        .env("KEYWAY_LOG", "warn,keyway_origin::server=info")
        .log_file(log.to_path_buf())
        .terminate_on_drop();
    if let Some(url) = s.redis_url {
        origin = origin.env("KEYWAY_REDIS_URL", url);
    }
    let started = origin.start()?;
    Ok(Part {
        addr: started.addr,
        process: started.process,
    })
}

/// The axum hello-world (`keyway-lab hello-axum`), on a port the OS chooses.
pub fn start_hello_axum() -> Result<Part> {
    let mut cmd = Command::new(this_binary()?);
    cmd.args(["hello-axum", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut process = Process::spawn("hello-axum", &mut cmd, OnDrop::Terminate)?;
    let stdout = process
        .child_mut()
        .and_then(|c| c.stdout.take())
        .context("hello-axum's stdout")?;
    let rx = watch_lines(stdout, "hello-axum".into(), None, |line| {
        line.strip_prefix("listening on ").map(str::to_string)
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the axum hello-world did not say where it listens")?
        .parse()?;
    Ok(Part { addr, process })
}

/// One edge Worker inside the workerd config: its name (and socket) and its settings.
pub struct EdgeWorker {
    pub name: &'static str,
    pub tiers: &'static str,
    pub route: &'static str,
}

pub struct WorkerdSettings<'a> {
    pub origin_url: String,
    pub edge_secret: &'a str,
    pub cache_service: SocketAddr,
    pub workers: &'a [EdgeWorker],
}

/// The sockets of the two hello-world Workers.
pub const HELLO_JS: &str = "hello";
pub const HELLO_RUST: &str = "helloRust";

/// The edge Worker's bindings as a deployment sets them (long cache times: the lab
/// measures hits).
pub fn edge_worker(name: &str, origin_url: &str, secret: &str, route: &str) -> Worker {
    Worker::bundle(name, "edge")
        .network()
        .binding("KEYWAY_ORIGIN_URL", origin_url)
        .binding("KEYWAY_EDGE_SECRET", secret)
        .binding("KEYWAY_FRESH_SECONDS", 600)
        .binding("KEYWAY_STALE_SECONDS", 600)
        .binding("KEYWAY_ROUTE", route)
}

/// The workerd config: every edge Worker is the same bundle with its own settings and
/// its own isolate, all in one workerd process, plus two hello-worlds: one in JS, and
/// one in Rust through the same `worker` crate entry point as the edge.
pub fn workerd_config(s: &WorkerdSettings, hello_rust: Worker) -> WorkerdConfig {
    let mut config = WorkerdConfig::new();
    for w in s.workers {
        config = config.worker(
            edge_worker(w.name, &s.origin_url, s.edge_secret, w.route)
                .cache_api("cache")
                .binding("KEYWAY_EDGE_TIERS", w.tiers),
        );
    }
    config
        .worker(Worker::js(HELLO_JS, "hello.js"))
        .worker(hello_rust)
        .external("cache", s.cache_service)
}

/// The Rust hello-world Worker, with its bundle copied into `dir` beside the config.
pub fn hello_rust_worker(root: &Path, dir: &Path) -> Result<Worker> {
    copy_bundle(
        &root.join(HELLO_RUST_DIR).join("build"),
        &dir.join("hello-rust"),
    )?;
    Ok(Worker::bundle(HELLO_RUST, "hello-rust"))
}

/// The workerd hello-world: the least a Worker can do, answering JSON of the size of a
/// verification answer.
const HELLO_JS_SOURCE: &str = r#"export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response('{"meta":{"requestId":"req_0"},"data":{"valid":true,"code":"VALID","keyId":"key_0"}}', {
      headers: { "content-type": "application/json" },
    });
  },
};
"#;

/// Copies the bundles next to the config and starts workerd; every Worker listens on a
/// port the OS chose (`Workerd::addr` by name).
pub fn start_workerd(root: &Path, dir: &Path, s: &WorkerdSettings) -> Result<Workerd> {
    copy_bundle(&root.join("edge/build"), &dir.join("edge"))?;
    let hello_rust = hello_rust_worker(root, dir)?;
    std::fs::write(dir.join("hello.js"), HELLO_JS_SOURCE)?;
    Workerd::start(dir, &workerd_config(s, hello_rust))
}

/// Resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS missing from /proc status")?;
    Ok(kb * 1024)
}
