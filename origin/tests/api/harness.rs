//! Starts the real `keyway serve` on an ephemeral port, against a fresh database.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

pub use keyway_testkit::{Backend, Client, Logs, TestDb};
use keyway_testkit::{OriginCommand, OriginProcess, random_hex};

/// A running `keyway serve` and its database. The HTTP calls (`call`, `ok`,
/// `create_key`, `verify`, `metric`, ...) come from the kit's [`Client`] through `Deref`;
/// what is here is the process: its CLI, logs, signals and restarts.
pub struct Server {
    pub root_key: String,
    pub db: TestDb,
    process: Option<OriginProcess>,
    client: Client,
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
            client: Client::new(&process.url, &root_key),
            root_key,
            db,
            process: Some(process),
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
            client: Client::new(&process.url, &self.root_key),
            root_key: self.root_key.clone(),
            db,
            process: Some(process),
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
        self.client = Client::new(&process.url, &self.root_key);
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
}

/// The API calls are the kit's typed client, bound to the running process.
impl std::ops::Deref for Server {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// An error answer in Unkey's envelope: status, request id, type, title and detail, and
/// the field list exactly when it is a 400.
pub fn assert_envelope(v: &Value, status: u16) {
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(
        v["meta"]["requestId"].as_str().unwrap().starts_with("req_"),
        "{v}"
    );
    assert!(
        v["error"]["type"]
            .as_str()
            .unwrap()
            .starts_with("https://unkey.com/docs/errors/"),
        "{v}"
    );
    assert!(
        v["error"]["title"].is_string() && v["error"]["detail"].is_string(),
        "{v}"
    );
    if status == 400 {
        assert!(v["error"]["errors"].is_array(), "{v}");
    } else {
        assert!(v["error"].get("errors").is_none(), "{v}");
    }
}

/// Three 32-byte master keys, base64, for the recoverable-key stories.
pub const MASTER_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const MASTER_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
pub const MASTER_C: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A key's SHA-256 as standard base64, the way Unkey stores it (`migrateKeys`).
pub fn sha256_base64(key: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(key.as_bytes()))
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
            both!(@on sqlite, Sqlite, $args, |$srv| $body);
            both!(@on postgres, Postgres, $args, |$srv| $body);
        }
    };
    (@on $test:ident, $backend:ident, $args:expr, |$srv:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            #[allow(unused_mut)]
            let mut $srv =
                $crate::harness::Server::start_with($crate::harness::Backend::$backend, $args)
                    .await;
            $body
        }
    };
}
