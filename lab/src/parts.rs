//! The real parts, built and started as processes: the release origin, the axum
//! hello-world, and workerd serving the edge bundle and a hello-world Worker.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child process that is stopped when dropped, so no part outlives the lab.
pub struct Part {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
}

impl Part {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        // SIGTERM first: the origin drains and flushes; workerd exits at once.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the release origin, the hello-world and the edge bundle: the lab measures
/// what a user would deploy, never a debug build.
pub fn build(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo).current_dir(root).args([
            "build",
            "--release",
            "-p",
            "keyway-origin",
            "--bin",
            "keyway",
            "--example",
            "hello_world",
        ]),
        "building the origin",
    )?;
    run(
        Command::new("bash")
            .current_dir(root)
            .arg("edge/build.sh")
            .env_remove("CARGO_TARGET_DIR"),
        "building the edge bundle (edge/build.sh)",
    )?;
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| what.to_string())?;
    if !out.status.success() {
        bail!("{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
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

pub fn start_origin(
    root: &Path,
    name: &'static str,
    s: &OriginSettings,
    log: &Path,
) -> Result<Part> {
    let addr = free_port()?;
    let mut cmd = Command::new(root.join("target/release/keyway"));
    if let Some(url) = s.redis_url {
        cmd.env("KEYWAY_REDIS_URL", url);
    }
    let child = cmd
        .arg("serve")
        .env("KEYWAY_LISTEN", addr.to_string())
        .env(
            "KEYWAY_DATABASE_URL",
            format!("sqlite://{}", s.database.display()),
        )
        .env("KEYWAY_ROOT_KEY", s.root_key)
        .env("KEYWAY_EDGE_SECRET", s.edge_secret)
        .env("KEYWAY_CACHE_CAPACITY", s.cache_capacity.to_string())
        .env("KEYWAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting the origin (target/release/keyway)")?;
    let part = Part { name, addr, child };
    wait_http(&part, "/v2/liveness")?;
    Ok(part)
}

/// A `redis-server` of the lab's own on a free port, keeping nothing on disk.
pub fn start_redis() -> Result<Part> {
    let addr = free_port()?;
    let child = Command::new("redis-server")
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server (Debian's redis-server package)")?;
    let part = Part {
        name: "redis",
        addr,
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(part.addr).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not listen on {} within 10 s", part.addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(part)
}

pub fn start_hello_axum(root: &Path) -> Result<Part> {
    let addr = free_port()?;
    let child = Command::new(root.join("target/release/examples/hello_world"))
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the axum hello-world")?;
    let part = Part {
        name: "hello-axum",
        addr,
        child,
    };
    wait_http(&part, "/")?;
    Ok(part)
}

/// One Worker inside the workerd config: a socket name, its port and its settings.
pub struct EdgeWorker {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub tiers: &'static str,
    pub route: &'static str,
}

pub struct WorkerdSettings<'a> {
    pub origin_url: String,
    pub edge_secret: &'a str,
    pub cache_service: SocketAddr,
    pub workers: &'a [EdgeWorker],
    pub hello: SocketAddr,
}

/// The workerd config (embedded paths are relative to the config file): every edge Worker is the same bundle with its own
/// settings and its own isolate, all in one workerd process, plus a JS hello-world.
pub fn workerd_config(s: &WorkerdSettings) -> String {
    let mut services = String::new();
    let mut sockets = String::new();
    let mut workers = String::new();
    for w in s.workers {
        services.push_str(&format!(
            "    (name = \"{n}\", worker = .{n}),\n",
            n = w.name
        ));
        sockets.push_str(&format!(
            "    (name = \"{n}\", address = \"{a}\", http = (), service = \"{n}\"),\n",
            n = w.name,
            a = w.addr
        ));
        workers.push_str(&format!(
            r#"const {n} :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  globalOutbound = "loopback",
  cacheApiOutbound = "cache",
  bindings = [
    (name = "KEYWAY_ORIGIN_URL", text = "{origin}"),
    (name = "KEYWAY_EDGE_SECRET", text = "{secret}"),
    (name = "KEYWAY_FRESH_SECONDS", text = "600"),
    (name = "KEYWAY_STALE_SECONDS", text = "600"),
    (name = "KEYWAY_ROUTE", text = "{route}"),
    (name = "KEYWAY_EDGE_TIERS", text = "{tiers}"),
  ],
);
"#,
            n = w.name,
            origin = s.origin_url,
            secret = s.edge_secret,
            route = w.route,
            tiers = w.tiers,
        ));
    }
    format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
{services}    (name = "hello", worker = .hello),
    (name = "loopback", network = (allow = ["public", "private", "local"])),
    (name = "cache", external = (address = "{cache}", http = ())),
  ],
  sockets = [
{sockets}    (name = "hello", address = "{hello}", http = (), service = "hello"),
  ],
);
{workers}const hello :Workerd.Worker = (
  modules = [(name = "hello.js", esModule = embed "hello.js")],
  compatibilityDate = "2025-09-01",
);
"#,
        cache = s.cache_service,
        hello = s.hello,
    )
}

/// The workerd hello-world: the least a Worker can do, answering JSON of the size of a
/// verification answer.
const HELLO_JS: &str = r#"export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response('{"meta":{"requestId":"req_0"},"data":{"valid":true,"code":"VALID","keyId":"key_0"}}', {
      headers: { "content-type": "application/json" },
    });
  },
};
"#;

pub fn start_workerd(root: &Path, dir: &Path, s: &WorkerdSettings) -> Result<Part> {
    for f in ["index.js", "index_bg.wasm"] {
        std::fs::copy(root.join("edge/build").join(f), dir.join(f))
            .with_context(|| format!("copying edge/build/{f}; did edge/build.sh run?"))?;
    }
    std::fs::write(dir.join("hello.js"), HELLO_JS)?;
    let config = dir.join("lab.capnp");
    std::fs::write(&config, workerd_config(s))?;
    let bin = root.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    if !bin.exists() {
        bail!("workerd is missing at {}: run `npm ci`", bin.display());
    }
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .arg("--experimental")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("workerd.log"))?)
        .spawn()
        .context("starting workerd")?;
    let part = Part {
        name: "workerd",
        addr: s.hello,
        child,
    };
    if let Err(e) = wait_http(&part, "/") {
        let log = std::fs::read_to_string(dir.join("workerd.log")).unwrap_or_default();
        bail!("{e}; workerd said:\n{log}");
    }
    Ok(part)
}

fn wait_http(part: &Part, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(part.addr) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not answer on {} within 30 s", part.name, part.addr)
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
