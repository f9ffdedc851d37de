//! End-to-end tests' parts: the origin (through `keyway-testkit`) and the edge Worker in
//! workerd, through `wrangler dev` as a developer runs it. Both are called through the
//! kit's typed [`Client`].
//!
//! The origin binary is this package's `keyway-tests-origin`, which runs exactly the
//! `keyway` command line; tests name it with `env!("CARGO_BIN_EXE_keyway-tests-origin")`
//! (cargo sets that only for the tests themselves, so the library takes it as an
//! argument). Nothing here skips: if a process cannot start, the test fails and says how
//! to fix it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use keyway_testkit::process::{OnDrop, Process, run_to_end, watch_lines};
use keyway_testkit::{OriginCommand, OriginProcess};

pub use keyway_testkit::process::http_status;
pub use keyway_testkit::{Client, Reply};
pub use keyway_testkit::{random_hex, workspace_root};

/// Builds the Worker bundle once per test binary. It is a wasm32 build through
/// worker-build and wasm-bindgen, which cargo cannot build as a dependency of a test (an
/// artifact dependency is unstable), so it is the one build a test still starts.
pub fn build_worker_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new("bash").arg("edge/build.sh").current_dir(&root).status().expect("bash edge/build.sh");
        assert!(
            status.success(),
            "building the Worker failed: it needs `rustup target add wasm32-unknown-unknown`, `cargo install worker-build`, and offline also `cargo install wasm-bindgen-cli` (see .ci/run)"
        );
    });
}

pub struct Origin {
    pub url: String,
    pub root_key: String,
    pub secret: String,
    /// The database URL, for the CLI.
    pub db: String,
    pub dir: tempfile::TempDir,
    bin: String,
    process: OriginProcess,
}

impl Origin {
    /// An origin on a fresh SQLite database of its own. `bin` is
    /// `env!("CARGO_BIN_EXE_keyway-tests-origin")`.
    pub fn start(bin: &str, extra: &[&str]) -> Origin {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}", dir.path().join("keyway.db").display());
        let root_key = format!("root_{}", random_hex());
        Origin::start_in(bin, dir, &db, &root_key, extra)
    }

    /// An origin on a database of the caller's (several replicas share one), with the
    /// given root key.
    pub fn start_on(bin: &str, db: &str, root_key: &str, extra: &[&str]) -> Origin {
        let dir = tempfile::tempdir().expect("tempdir");
        Origin::start_in(bin, dir, db, root_key, extra)
    }

    fn start_in(
        bin: &str,
        dir: tempfile::TempDir,
        db: &str,
        root_key: &str,
        extra: &[&str],
    ) -> Origin {
        let secret = format!("edge_{}", random_hex());
        let process = OriginCommand::new(bin)
            .args(extra)
            .env("KEYWAY_DATABASE_URL", db)
            .env("KEYWAY_ROOT_KEY", root_key)
            .env("KEYWAY_EDGE_SECRET", &secret)
            .start()
            .expect("the origin starts");
        Origin {
            url: process.url.clone(),
            root_key: root_key.to_string(),
            secret,
            db: db.to_string(),
            dir,
            bin: bin.to_string(),
            process,
        }
    }

    /// `keyway ARGS --database <this origin's database>`, as an operator runs it: stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).args(["--database", &self.db]);
        run_to_end(&mut cmd, &format!("keyway {args:?}")).unwrap()
    }

    /// Sends a signal (`STOP` freezes it: connections are accepted and never answered).
    pub fn signal(&self, signal: &str) {
        assert!(self.process.process.signal(signal), "kill -{signal} failed");
    }

    /// `kill -9`: no flush, no goodbye.
    pub fn kill(&mut self) {
        self.process.process.kill();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        self.process.process.stop(Duration::from_secs(20));
    }
}

/// The edge Worker in workerd, through `wrangler dev`.
pub struct Edge {
    pub url: String,
    pub persist: tempfile::TempDir,
    _process: Process,
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
        build_worker_once();
        // One `wrangler dev` starts at a time: several starting beside a release build on
        // two cores missed the 120 s ready deadline. Each waits its turn, then its own 120 s.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
        let root = workspace_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists(),
            "wrangler is missing: run `npm ci` in {}",
            root.display()
        );
        let persist = tempfile::tempdir().expect("tempdir");
        let vars = [
            format!("KEYWAY_ORIGIN_URL:{origin_url}"),
            format!("KEYWAY_EDGE_SECRET:{secret}"),
            format!("KEYWAY_FRESH_SECONDS:{fresh_seconds}"),
            format!("KEYWAY_STALE_SECONDS:{stale_seconds}"),
            "KEYWAY_ORIGIN_TIMEOUT_MS:2000".to_string(),
        ];
        let mut cmd = Command::new(&wrangler);
        // Port 0 for the Worker and the inspector: wrangler binds what the OS gives and
        // says where in its "Ready on" line.
        cmd.args(["dev", "--ip", "127.0.0.1", "--port", "0", "--persist-to"])
            .arg(persist.path())
            .args([
                "--inspector-port",
                "0",
                "--show-interactive-dev-session=false",
            ]);
        for v in &vars {
            cmd.args(["--var", v]);
        }
        cmd.current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group: wrangler starts workerd as a child, and stopping only
        // wrangler would leave workerd running after the test.
        let mut process = Process::spawn_group("wrangler dev", &mut cmd, OnDrop::Terminate)
            .expect("start wrangler dev");
        let child = process.child_mut().expect("child");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let rx = watch_lines(stdout, "wrangler".into(), None, |line| {
            let at = line.find("Ready on http://")? + "Ready on ".len();
            Some(
                line[at..]
                    .split_whitespace()
                    .next()?
                    .trim_end_matches('/')
                    .to_string(),
            )
        });
        let _err = watch_lines(stderr, "wrangler!".into(), None, |_| None);
        let url = rx.recv_timeout(Duration::from_secs(120))
            .expect("wrangler dev did not report 'Ready on' within 120 s (set KEYWAY_TEST_LOGS=1 to see its output)");
        let edge = Edge {
            url,
            persist,
            _process: process,
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
        run_to_end(
            Command::new(root.join("node_modules/.bin/wrangler"))
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
                .env("WRANGLER_SEND_METRICS", "false"),
            "wrangler kv key put",
        )
        .unwrap();
    }
}
