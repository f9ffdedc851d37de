//! Starts the real `keyway serve` on an ephemeral port, against a fresh database.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

pub use keyway_testkit::{Backend, Logs, TestDb};
use keyway_testkit::{OriginCommand, OriginProcess, random_hex};

pub struct Server {
    pub base: String,
    pub root_key: String,
    pub db: TestDb,
    process: Option<OriginProcess>,
    pub client: reqwest::Client,
    pub extra: Vec<String>,
    /// Every log line the current process wrote, as JSON.
    pub logs: Logs,
}

impl Server {
    pub async fn start_with(backend: Backend, extra: &[&str]) -> Server {
        let db = TestDb::new(backend).await.expect("test database");
        let root_key = format!("root_{}", random_hex());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let logs = Logs::default();
        let process = spawn(&db.url, &root_key, &extra, &logs);
        Server {
            base: process.url.clone(),
            root_key,
            db,
            process: Some(process),
            client: reqwest::Client::new(),
            extra,
            logs,
        }
    }

    /// Another server with this one's root key and arguments, on another database
    /// (one `keyway migrate` filled, say).
    pub fn on_database(&self, db: TestDb) -> Server {
        let logs = Logs::default();
        let process = spawn(&db.url, &self.root_key, &self.extra, &logs);
        Server {
            base: process.url.clone(),
            root_key: self.root_key.clone(),
            db,
            process: Some(process),
            client: reqwest::Client::new(),
            extra: self.extra.clone(),
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
        keyway_testkit::origin::wait_for_log(&self.logs, message, Duration::from_secs(5))
    }

    /// Starts another process on the same database (after a stop or a kill).
    pub fn restart(&mut self) {
        self.logs.lock().unwrap().clear();
        let process = spawn(&self.db.url, &self.root_key, &self.extra, &self.logs);
        self.base = process.url.clone();
        self.process = Some(process);
    }

    /// Sends a signal and waits for the exit; returns the exit code.
    pub fn signal_and_wait(&mut self, signal: &str) -> Option<i32> {
        let mut p = self.process.take()?;
        assert!(p.process.signal(signal), "kill -{signal} failed");
        let status = p
            .process
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("server did not exit after SIG{signal}"));
        status.code()
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .and_then(|p| p.process.pid())
            .expect("a running server")
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

fn spawn(db_url: &str, root_key: &str, extra: &[String], logs: &Logs) -> OriginProcess {
    OriginCommand::new(env!("CARGO_BIN_EXE_keyway"))
        .args(extra)
        .env("KEYWAY_DATABASE_URL", db_url)
        .env("KEYWAY_ROOT_KEY", root_key)
        .env("KEYWAY_LOG", "info")
        .logs(logs.clone())
        .start()
        .expect("start keyway")
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
