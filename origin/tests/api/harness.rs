//! Starts the real `keyway serve` on an ephemeral port, against a fresh database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::AnyPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database for one test: a SQLite file in a temp dir, or a PostgreSQL database that
/// is created here and dropped when the test ends.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("keyway.db").display());
                TestDb {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let name = format!("keyway_test_{}", rand_suffix());
                let admin = AnyPool::connect(PG_ADMIN).await.expect(
                    "PostgreSQL must run on 127.0.0.1:5432 with trust auth for user postgres (start it with pg_ctlcluster)",
                );
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .expect("create database");
                admin.close().await;
                TestDb {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    pub async fn pool(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime we may block; use a private one on a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(admin) = AnyPool::connect(PG_ADMIN).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&admin)
                                .await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn rand_suffix() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rng().next_u64())
}

pub struct Server {
    pub base: String,
    pub root_key: String,
    pub db: TestDb,
    child: Option<Child>,
    pub client: reqwest::Client,
    extra: Vec<String>,
    /// Every log line the current process wrote, as JSON.
    pub logs: Logs,
}

pub type Logs = Arc<Mutex<Vec<Value>>>;

impl Server {
    pub async fn start_with(backend: Backend, extra: &[&str]) -> Server {
        let db = TestDb::new(backend).await;
        let root_key = format!("root_{}", rand_suffix());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let logs = Logs::default();
        let (child, base) = spawn(&db.url, &root_key, &extra, &logs);
        Server {
            base,
            root_key,
            db,
            child: Some(child),
            client: reqwest::Client::new(),
            extra,
            logs,
        }
    }

    /// Runs `keyway ARGS --database <this server's database>`; returns stdout, or
    /// panics with stderr on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
        assert!(
            out.status.success(),
            "keyway {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_keyway"))
            .args(args)
            .args(["--database", &self.db.url])
            .output()
            .unwrap()
    }

    /// A root key with exactly these grants, made with the CLI as an operator would.
    pub fn root_key_with(&self, grants: &[&str]) -> String {
        let mut args = vec!["root-keys", "create"];
        for g in grants {
            args.extend(["--permission", g]);
        }
        if grants.is_empty() {
            // No --permission means every grant; a key that may do nothing gets one
            // grant no route checks.
            args.extend(["--permission", "nothing.*.nothing"]);
        }
        self.cli(&args).trim().to_string()
    }

    /// The first log line whose message is `message`, waiting up to 5 s for it: lines
    /// reach the test through a reader thread, a little after the server wrote them.
    pub fn log_line(&self, message: &str) -> Option<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|v| v["fields"]["message"] == message)
                .cloned();
            if found.is_some() || std::time::Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts another process on the same database (after a stop or a kill).
    pub fn restart(&mut self) {
        self.logs.lock().unwrap().clear();
        let (child, base) = spawn(&self.db.url, &self.root_key, &self.extra, &self.logs);
        self.child = Some(child);
        self.base = base;
    }

    /// Sends a signal and waits for the exit; returns the exit code.
    pub fn signal_and_wait(&mut self, signal: &str) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .ok()?;
        assert!(status.success(), "kill -{signal} failed");
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "server did not exit after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST with the root key; returns status and JSON body.
    pub async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        self.call_as(path, Some(&self.root_key.clone()), body).await
    }

    pub async fn call_as(&self, path: &str, root_key: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(k) = root_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.root_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call(path, body.clone()).await;
        assert_eq!(status, 200, "{path} {body} → {v}");
        v["data"].clone()
    }

    pub async fn create_api(&self) -> String {
        let d = self
            .ok("/v2/apis.createApi", json!({"name": "test-api"}))
            .await;
        d["apiId"].as_str().expect("apiId").to_string()
    }

    /// Creates a key in a new API; returns (api id, key id, key).
    pub async fn create_key(&self, extra: Value) -> (String, String, String) {
        let api = self.create_api().await;
        let (k, key) = self.create_key_in(&api, extra).await;
        (api, k, key)
    }

    pub async fn create_key_in(&self, api: &str, extra: Value) -> (String, String) {
        let mut body = json!({"apiId": api});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let d = self.ok("/v2/keys.createKey", body).await;
        (
            d["keyId"].as_str().expect("keyId").into(),
            d["key"].as_str().expect("key").into(),
        )
    }

    pub async fn verify(&self, body: Value) -> Value {
        self.ok("/v2/keys.verifyKey", body).await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(db_url: &str, root_key: &str, extra: &[String], logs: &Logs) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .env("KEYWAY_DATABASE_URL", db_url)
        .env("KEYWAY_ROOT_KEY", root_key)
        .env("KEYWAY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keyway");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let logs = Arc::clone(logs);
    // Keep draining stderr for the process's life, or it blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("KEYWAY_TEST_LOGS").is_some() {
                eprintln!("[keyway] {line}");
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if !sent
                && v["fields"]["message"] == "listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_string());
                sent = true;
            }
            logs.lock().unwrap().push(v);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("keyway did not start listening within 30 s");
    (child, format!("http://{addr}"))
}

/// Runs one async test body against both SQLite and PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident, |$srv:ident| $body:block) => {
        both!($name, &[], |$srv| $body);
    };
    ($name:ident, $args:expr, |$srv:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                #[allow(unused_mut)]
                let mut $srv =
                    $crate::harness::Server::start_with($crate::harness::Backend::Sqlite, $args)
                        .await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                #[allow(unused_mut)]
                let mut $srv =
                    $crate::harness::Server::start_with($crate::harness::Backend::Postgres, $args)
                        .await;
                $body
            }
        }
    };
}
