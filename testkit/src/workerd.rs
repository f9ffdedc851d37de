//! workerd, the Workers runtime, started directly (not through wrangler's dev proxy,
//! which would add itself to every measurement) from a config this module writes.
//!
//! Each Worker gets a socket on `127.0.0.1:0` unless told otherwise; workerd reports the
//! ports it bound on its control descriptor, which the kit points at its stdout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::process::{OnDrop, Process, watch_lines};
use crate::workspace_root;

/// The compatibility date every Worker here runs at (as `wrangler.toml` says).
const COMPATIBILITY_DATE: &str = "2025-09-01";

pub struct Worker {
    name: String,
    modules: Vec<(String, &'static str, String)>,
    bindings: Vec<(String, String)>,
    outbound: bool,
    cache: Option<String>,
    address: String,
}

impl Worker {
    /// A worker-build bundle (`index.js` + `index_bg.wasm`) in `dir`, relative to the
    /// config file.
    pub fn bundle(name: &str, dir: &str) -> Worker {
        let at = |f: &str| {
            if dir.is_empty() || dir == "." {
                f.to_string()
            } else {
                format!("{dir}/{f}")
            }
        };
        Worker::new(
            name,
            vec![
                ("index.js".into(), "esModule", at("index.js")),
                ("index_bg.wasm".into(), "wasm", at("index_bg.wasm")),
            ],
        )
    }

    /// One JavaScript module, relative to the config file.
    pub fn js(name: &str, file: &str) -> Worker {
        let module = Path::new(file)
            .file_name()
            .map_or_else(|| file.to_string(), |f| f.to_string_lossy().into_owned());
        Worker::new(name, vec![(module, "esModule", file.to_string())])
    }

    fn new(name: &str, modules: Vec<(String, &'static str, String)>) -> Worker {
        Worker {
            name: name.to_string(),
            modules,
            bindings: Vec::new(),
            outbound: false,
            cache: None,
            address: "127.0.0.1:0".into(),
        }
    }

    /// A text binding (a `[vars]` entry or a secret).
    pub fn binding(mut self, name: &str, value: impl ToString) -> Worker {
        self.bindings.push((name.to_string(), value.to_string()));
        self
    }

    /// Lets `fetch()` reach loopback and private addresses (the origin).
    pub fn network(mut self) -> Worker {
        self.outbound = true;
        self
    }

    /// Backs the Cache API with this external service.
    pub fn cache_api(mut self, service: &str) -> Worker {
        self.cache = Some(service.to_string());
        self
    }

    /// A fixed address instead of a port the OS chooses.
    pub fn listen(mut self, address: &str) -> Worker {
        self.address = address.to_string();
        self
    }
}

#[derive(Default)]
pub struct WorkerdConfig {
    workers: Vec<Worker>,
    externals: Vec<(String, SocketAddr)>,
}

/// A capnp text literal.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl WorkerdConfig {
    pub fn new() -> WorkerdConfig {
        WorkerdConfig::default()
    }

    pub fn worker(mut self, w: Worker) -> WorkerdConfig {
        self.workers.push(w);
        self
    }

    /// An HTTP service outside workerd (the lab's Cache API backend).
    pub fn external(mut self, name: &str, addr: SocketAddr) -> WorkerdConfig {
        self.externals.push((name.to_string(), addr));
        self
    }

    pub fn render(&self) -> String {
        let mut services = String::new();
        let mut sockets = String::new();
        let mut workers = String::new();
        for w in &self.workers {
            let n = &w.name;
            services.push_str(&format!("    (name = {}, worker = .{n}),\n", quoted(n)));
            sockets.push_str(&format!(
                "    (name = {q}, address = {a}, http = (), service = {q}),\n",
                q = quoted(n),
                a = quoted(&w.address)
            ));
            let modules: Vec<String> = w
                .modules
                .iter()
                .map(|(name, kind, path)| {
                    format!(
                        "    (name = {}, {kind} = embed {}),\n",
                        quoted(name),
                        quoted(path)
                    )
                })
                .collect();
            let bindings: Vec<String> = w
                .bindings
                .iter()
                .map(|(k, v)| format!("    (name = {}, text = {}),\n", quoted(k), quoted(v)))
                .collect();
            workers.push_str(&format!(
                "const {n} :Workerd.Worker = (\n  modules = [\n{}  ],\n  compatibilityDate = {},\n",
                modules.concat(),
                quoted(COMPATIBILITY_DATE)
            ));
            if w.outbound {
                workers.push_str("  globalOutbound = \"loopback\",\n");
            }
            if let Some(c) = &w.cache {
                workers.push_str(&format!("  cacheApiOutbound = {},\n", quoted(c)));
            }
            if !bindings.is_empty() {
                workers.push_str(&format!("  bindings = [\n{}  ],\n", bindings.concat()));
            }
            workers.push_str(");\n");
        }
        for (name, addr) in &self.externals {
            services.push_str(&format!(
                "    (name = {}, external = (address = {}, http = ())),\n",
                quoted(name),
                quoted(&addr.to_string())
            ));
        }
        format!(
            "using Workerd = import \"/workerd/workerd.capnp\";\nconst config :Workerd.Config = (\n  services = [\n{services}    (name = \"loopback\", network = (allow = [\"public\", \"private\", \"local\"])),\n  ],\n  sockets = [\n{sockets}  ],\n);\n{workers}"
        )
    }
}

/// workerd's own binary from npm (`npm ci`), not the node wrapper in `.bin`, so signals
/// reach it.
pub fn workerd_bin() -> Result<PathBuf> {
    let bin = workspace_root().join("node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    if !bin.exists() {
        bail!("workerd is missing at {}: run `npm ci`", bin.display());
    }
    Ok(bin)
}

/// Copies a worker-build bundle (`<from>/index.js`, `<from>/index_bg.wasm`) to `to`.
pub fn copy_bundle(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for f in ["index.js", "index_bg.wasm"] {
        std::fs::copy(from.join(f), to.join(f)).with_context(|| {
            format!("copying {}; did edge/build.sh run?", from.join(f).display())
        })?;
    }
    Ok(())
}

pub struct Workerd {
    ports: HashMap<String, u16>,
    pub process: Process,
}

impl Workerd {
    /// Writes `dir/workerd.capnp` (module paths are relative to `dir`), starts workerd
    /// with its log in `dir/workerd.log`, and waits until every socket listens.
    pub fn start(dir: &Path, config: &WorkerdConfig) -> Result<Workerd> {
        let file = dir.join("workerd.capnp");
        std::fs::write(&file, config.render())?;
        let log = dir.join("workerd.log");
        let mut cmd = Command::new(workerd_bin()?);
        cmd.arg("serve")
            .arg(&file)
            .args(["--experimental", "--control-fd=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut process = Process::spawn("workerd", &mut cmd, OnDrop::Terminate)?;
        let stdout = process
            .child_mut()
            .and_then(|c| c.stdout.take())
            .context("workerd's stdout")?;
        let rx = watch_lines(stdout, "workerd".into(), None, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["event"] != "listen" {
                return None;
            }
            Some(format!("{}={}", v["socket"].as_str()?, v["port"]))
        });
        let mut ports = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while ports.len() < config.workers.len() {
            if let Ok(msg) = rx.recv_timeout(Duration::from_millis(100))
                && let Some((socket, port)) = msg.split_once('=')
                && let Ok(port) = port.parse::<u16>()
            {
                ports.insert(socket.to_string(), port);
                continue;
            }
            if !process.is_running() || Instant::now() > deadline {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("workerd did not listen on every socket; it said:\n{said}");
            }
        }
        Ok(Workerd { ports, process })
    }

    pub fn addr(&self, socket: &str) -> Option<SocketAddr> {
        self.ports
            .get(socket)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
    }

    /// `http://127.0.0.1:<port>` of a Worker's socket.
    pub fn url(&self, socket: &str) -> Option<String> {
        self.addr(socket).map(|a| format!("http://{a}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_worker_socket_and_binding() {
        let c = WorkerdConfig::new()
            .worker(
                Worker::bundle("edge", "edge")
                    .network()
                    .cache_api("cache")
                    .binding("KEYWAY_EDGE_SECRET", "a\"b"),
            )
            .worker(Worker::js("hello", "hello.js").listen("127.0.0.1:18788"))
            .external("cache", SocketAddr::from(([127, 0, 0, 1], 9)))
            .render();
        assert!(c.contains("(name = \"edge\", worker = .edge)"));
        assert!(c.contains("esModule = embed \"edge/index.js\""));
        assert!(c.contains("wasm = embed \"edge/index_bg.wasm\""));
        assert!(c.contains("(name = \"KEYWAY_EDGE_SECRET\", text = \"a\\\"b\")"));
        assert!(c.contains("address = \"127.0.0.1:18788\""));
        assert!(c.contains("cacheApiOutbound = \"cache\""));
        assert!(c.contains("external = (address = \"127.0.0.1:9\""));
    }
}
