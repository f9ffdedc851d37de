//! Starts the origin's `serve` on a port the OS chooses and reads the bound address from
//! its `listening` log line.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::process::{OnDrop, Process, watch_lines};

/// Every JSON log line a process wrote, in order.
pub type Logs = Arc<Mutex<Vec<Value>>>;

/// The first line in `logs` whose message is `message`, waiting up to `timeout`: lines
/// reach the logs through a reader thread, a little after the process wrote them.
pub fn wait_for_log(logs: &Logs, message: &str, timeout: Duration) -> Option<Value> {
    wait_for_log_where(logs, |v| v["fields"]["message"] == message, timeout)
}

/// The first line in `logs` that `matches`, waiting up to `timeout` as [`wait_for_log`]
/// does (the reader thread may still be draining a process that has already exited).
pub fn wait_for_log_where(
    logs: &Logs,
    matches: impl Fn(&Value) -> bool,
    timeout: Duration,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|v| matches(v))
            .cloned();
        if found.is_some() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `<program> serve --listen 127.0.0.1:0 --log-format json <args>`, where the program
/// runs `keyway_origin::cli` (the `keyway` binary, or a test's or the lab's own).
pub struct OriginCommand {
    cmd: Command,
    args: Vec<String>,
    log_set: bool,
    log_file: Option<PathBuf>,
    logs: Logs,
    on_drop: OnDrop,
}

impl OriginCommand {
    pub fn new(program: impl AsRef<OsStr>) -> OriginCommand {
        OriginCommand::from_command(Command::new(program))
    }

    /// A command that already names the program and any arguments before `serve`.
    pub fn from_command(cmd: Command) -> OriginCommand {
        OriginCommand {
            cmd,
            args: Vec::new(),
            log_set: false,
            log_file: None,
            logs: Logs::default(),
            on_drop: OnDrop::Kill,
        }
    }

    /// Options of `serve`.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> OriginCommand {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> OriginCommand {
        if key == "KEYWAY_LOG" {
            self.log_set = true;
        }
        self.cmd.env(key, value);
        self
    }

    /// Also writes every log line to this file.
    pub fn log_file(mut self, path: PathBuf) -> OriginCommand {
        self.log_file = Some(path);
        self
    }

    /// Collects the JSON log lines here (a restarted process can share its predecessor's).
    pub fn logs(mut self, logs: Logs) -> OriginCommand {
        self.logs = logs;
        self
    }

    /// SIGTERM on drop (drain and flush) instead of SIGKILL.
    pub fn terminate_on_drop(mut self) -> OriginCommand {
        self.on_drop = OnDrop::Terminate;
        self
    }

    pub fn start(mut self) -> Result<OriginProcess> {
        if !self.log_set {
            self.cmd.env("KEYWAY_LOG", "info,sqlx=warn");
        }
        self.cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut process = Process::spawn("origin", &mut self.cmd, self.on_drop)?;
        let stderr = process
            .child_mut()
            .and_then(|c| c.stderr.take())
            .context("the origin's stderr")?;
        let sink = match &self.log_file {
            Some(p) => Some(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
            None => None,
        };
        let logs = Arc::clone(&self.logs);
        let rx = watch_lines(stderr, "origin".into(), sink, move |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            let addr = (v["fields"]["message"] == "listening")
                .then(|| v["fields"]["addr"].as_str().map(str::to_string))
                .flatten();
            logs.lock().unwrap_or_else(PoisonError::into_inner).push(v);
            addr
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if !process.is_running() || Instant::now() > deadline {
                let last: Vec<String> = self
                    .logs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .rev()
                    .take(5)
                    .map(Value::to_string)
                    .collect();
                bail!(
                    "the origin did not report listening within 30 s (running: {}); its last log lines: {last:?}",
                    process.is_running()
                );
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("the origin logged the address {addr:?}"))?;
        Ok(OriginProcess {
            addr,
            url: format!("http://{addr}"),
            logs: self.logs,
            process,
        })
    }
}

pub struct OriginProcess {
    pub addr: SocketAddr,
    /// `http://<addr>`
    pub url: String,
    pub logs: Logs,
    pub process: Process,
}
