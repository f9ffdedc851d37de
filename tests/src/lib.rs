//! A kit for end-to-end tests: start the real origin binary and the real edge Worker (in
//! workerd, through `wrangler dev`), each on a free loopback port, and stop them again.
//!
//! Nothing here skips: if a process cannot start, the test fails and says how to fix it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Builds what the processes run, once per test binary: the origin binary and the
/// Worker bundle. Building here (not in each test) keeps parallel tests from racing.
pub fn build_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_origin_once();
        let root = workspace_root();
        let status = Command::new("bash").arg("edge/build.sh").current_dir(&root).status().expect("bash edge/build.sh");
        assert!(
            status.success(),
            "building the Worker failed: it needs `rustup target add wasm32-unknown-unknown`, `cargo install worker-build`, and offline also `cargo install wasm-bindgen-cli` (see .ci/run)"
        );
    });
}

/// Builds the origin binary alone, once per test binary (tests without the Worker).
pub fn build_origin_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "keyway-origin", "--bin", "keyway"])
            .current_dir(workspace_root())
            .status()
            .expect("cargo build of the origin");
        assert!(status.success(), "building the origin failed");
    });
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn random_hex() -> String {
    format!(
        "{:016x}",
        (rand_seed() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

fn rand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id())
}

/// Keeps reading a child's output (a full pipe would block it) and reports a line.
fn watch_lines(
    stream: impl std::io::Read + Send + 'static,
    label: &'static str,
    want: impl Fn(&str) -> Option<String> + Send + 'static,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if std::env::var_os("KEYWAY_TEST_LOGS").is_some() {
                eprintln!("[{label}] {line}");
            }
            if !sent && let Some(v) = want(&line) {
                let _ = tx.send(v);
                sent = true;
            }
        }
    });
    rx
}

pub struct Origin {
    pub url: String,
    pub root_key: String,
    pub secret: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Origin {
    pub fn start(extra: &[&str]) -> Origin {
        build_once();
        let dir = tempfile::tempdir().expect("tempdir");
        let root_key = format!("root_{}", random_hex());
        let secret = format!("edge_{}", random_hex());
        let db = format!("sqlite://{}", dir.path().join("keyway.db").display());
        let (child, url) = spawn_origin(&db, &root_key, &secret, extra);
        Origin {
            url,
            root_key,
            secret,
            dir,
            child: Some(child),
        }
    }

    /// An origin on a database of the caller's (several replicas share one), with the
    /// given root key.
    pub fn start_on(db: &str, root_key: &str, extra: &[&str]) -> Origin {
        build_origin_once();
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = format!("edge_{}", random_hex());
        let (child, url) = spawn_origin(db, root_key, &secret, extra);
        Origin {
            url,
            root_key: root_key.to_string(),
            secret,
            dir,
            child: Some(child),
        }
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_origin(db: &str, root_key: &str, secret: &str, extra: &[&str]) -> (Child, String) {
    let bin = workspace_root().join("target/debug/keyway");
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .env("KEYWAY_DATABASE_URL", db)
        .env("KEYWAY_ROOT_KEY", root_key)
        .env("KEYWAY_EDGE_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let rx = watch_lines(child.stderr.take().expect("stderr"), "origin", |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == "listening")
            .then(|| v["fields"]["addr"].as_str().map(str::to_string))?
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the origin did not start listening within 30 s");
    (child, format!("http://{addr}"))
}

/// The edge Worker in workerd, through `wrangler dev`.
pub struct Edge {
    pub url: String,
    pub persist: tempfile::TempDir,
    child: Option<Child>,
}

impl Edge {
    pub fn start(origin: &Origin, fresh_seconds: f64, stale_seconds: f64) -> Edge {
        Edge::start_for(&origin.url, &origin.secret, fresh_seconds, stale_seconds)
    }

    /// Starts the Worker in front of any origin URL (a binary, a container).
    pub fn start_for(
        origin_url: &str,
        secret: &str,
        fresh_seconds: f64,
        stale_seconds: f64,
    ) -> Edge {
        build_once();
        let root = workspace_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists(),
            "wrangler is missing: run `npm ci` in {}",
            root.display()
        );
        let persist = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let vars = [
            format!("KEYWAY_ORIGIN_URL:{origin_url}"),
            format!("KEYWAY_EDGE_SECRET:{secret}"),
            format!("KEYWAY_FRESH_SECONDS:{fresh_seconds}"),
            format!("KEYWAY_STALE_SECONDS:{stale_seconds}"),
            "KEYWAY_ORIGIN_TIMEOUT_MS:2000".to_string(),
        ];
        let mut cmd = Command::new(&wrangler);
        cmd.args([
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--persist-to",
        ])
        .arg(persist.path())
        .args([
            "--inspector-port",
            &free_port().to_string(),
            "--show-interactive-dev-session=false",
        ]);
        for v in &vars {
            cmd.args(["--var", v]);
        }
        // Its own process group: wrangler starts workerd as a child, and killing only
        // wrangler would leave workerd running after the test.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wrangler dev");
        let rx = watch_lines(child.stdout.take().expect("stdout"), "wrangler", |line| {
            line.contains("Ready on").then(String::new)
        });
        let _err = watch_lines(child.stderr.take().expect("stderr"), "wrangler!", |_| None);
        rx.recv_timeout(Duration::from_secs(120))
            .expect("wrangler dev did not report 'Ready on' within 120 s (set KEYWAY_TEST_LOGS=1 to see its output)");
        let edge = Edge {
            url: format!("http://127.0.0.1:{port}"),
            persist,
            child: Some(child),
        };
        edge.wait_until_serving();
        edge
    }

    fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_status(&format!("{}/v2/liveness", self.url)) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the Worker in workerd never answered /v2/liveness");
    }

    /// Sets the traffic switch through KV, as an operator would.
    pub fn set_route(&self, mode: &str) {
        let root = workspace_root();
        let out = Command::new(root.join("node_modules/.bin/wrangler"))
            .args([
                "kv",
                "key",
                "put",
                "--binding",
                "KEYWAY_CONFIG",
                "route",
                mode,
                "--local",
                "--persist-to",
            ])
            .arg(self.persist.path())
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .output()
            .expect("wrangler kv key put");
        assert!(
            out.status.success(),
            "wrangler kv key put failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let group = format!("-{}", c.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            std::thread::sleep(Duration::from_millis(300));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP/1.1 GET, for readiness polling outside any async runtime.
pub fn http_status(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A JSON client for either process.
pub struct Client {
    http: reqwest::Client,
    pub root_key: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub served_by: Option<String>,
    pub cache: Option<String>,
}

impl Client {
    pub fn new(root_key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            root_key: root_key.to_string(),
        }
    }

    pub async fn post(&self, base: &str, path: &str, body: Value) -> Reply {
        self.post_raw(base, path, body.to_string()).await
    }

    pub async fn post_raw(&self, base: &str, path: &str, body: String) -> Reply {
        self.try_post_raw(base, path, body).await.expect("request")
    }

    /// A POST that may not get an answer (a node killed mid-request).
    pub async fn try_post(&self, base: &str, path: &str, body: Value) -> Option<Reply> {
        self.try_post_raw(base, path, body.to_string()).await.ok()
    }

    async fn try_post_raw(
        &self,
        base: &str,
        path: &str,
        body: String,
    ) -> Result<Reply, reqwest::Error> {
        let resp = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&self.root_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let served_by = header("x-keyway-served-by");
        let cache = header("x-keyway-cache");
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            served_by,
            cache,
        })
    }

    pub async fn get(&self, url: &str, bearer: &str) -> Reply {
        let resp = self
            .http
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            served_by: None,
            cache: None,
        }
    }

    pub async fn create_api(&self, base: &str) -> String {
        let r = self
            .post(base, "/v2/apis.createApi", json!({"name": "e2e-api"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"]["apiId"].as_str().expect("apiId").to_string()
    }

    pub async fn create_key(&self, base: &str, api: &str, extra: Value) -> (String, String) {
        let mut body = json!({"apiId": api});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self.post(base, "/v2/keys.createKey", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        (
            r.body["data"]["keyId"].as_str().expect("keyId").into(),
            r.body["data"]["key"].as_str().expect("key").into(),
        )
    }
}
