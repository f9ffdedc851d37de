//! A `redis-server` of a test's own, keeping nothing on disk.
//!
//! Redis cannot report a port the OS chose, so the kit picks a free one and treats a
//! lost race as what it is: the server exits instead of saying it is ready, and the kit
//! tries another port.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{OnDrop, Process, watch_lines};

pub struct Redis {
    pub port: u16,
    process: Option<Process>,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let mut last = None;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("finding a free port")?
                .port();
            let mut r = Redis {
                port,
                process: None,
            };
            match r.restart() {
                Ok(()) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty, as a Redis without persistence comes
    /// back after a restart.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut process = Process::spawn(
            "redis-server (Debian's redis-server package)",
            &mut cmd,
            OnDrop::Kill,
        )?;
        let stdout = process
            .child_mut()
            .and_then(|c| c.stdout.take())
            .context("redis-server's stdout")?;
        let rx = watch_lines(stdout, "redis".into(), None, |line| {
            line.contains("Ready to accept connections")
                .then(String::new)
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                self.process = Some(process);
                return Ok(());
            }
            if !process.is_running() {
                bail!("redis-server exited on port {} (taken?)", self.port);
            }
            if std::time::Instant::now() > deadline {
                bail!("redis-server was not ready within 10 s");
            }
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }
}
