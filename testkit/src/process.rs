//! A child process that stops when dropped, and a reader for its output.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How a dropped process is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// SIGKILL: tests that are done with a process need nothing from it.
    Kill,
    /// SIGTERM, then SIGKILL after 10 s: the origin drains and flushes.
    Terminate,
}

pub struct Process {
    pub name: String,
    pid: u32,
    child: Option<Child>,
    /// Signals go to the process group (the process was started as its leader), for
    /// launchers such as wrangler whose children must stop with them.
    group: bool,
    on_drop: OnDrop,
}

impl Process {
    pub fn spawn(name: &str, cmd: &mut Command, on_drop: OnDrop) -> Result<Process> {
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Process {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            group: false,
            on_drop,
        })
    }

    /// Starts `cmd` as the leader of a new process group; signals reach the whole group.
    pub fn spawn_group(name: &str, cmd: &mut Command, on_drop: OnDrop) -> Result<Process> {
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        let mut p = Process::spawn(name, cmd, on_drop)?;
        p.group = true;
        Ok(p)
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it still runs (false once it exited or was stopped here).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`, ...); false if nothing ran.
    pub fn signal(&self, signal: &str) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        self.signal_pid(pid, signal)
    }

    fn signal_pid(&self, pid: u32, signal: &str) -> bool {
        let target = if self.group {
            format!("-{pid}")
        } else {
            pid.to_string()
        };
        Command::new("kill")
            .args([format!("-{signal}"), "--".into(), target])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits for the exit; None if it did not exit within `timeout` (it keeps running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait up to `grace`, then SIGKILL. Returns how it exited.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let status = self.wait_exit(grace);
        self.kill();
        status
    }

    /// SIGKILL: no flush, no goodbye. A group's other members go too, even when the
    /// leader already exited.
    pub fn kill(&mut self) {
        if self.group {
            self.signal_pid(self.pid, "KILL");
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        match self.on_drop {
            OnDrop::Kill => self.kill(),
            OnDrop::Terminate => {
                self.stop(Duration::from_secs(10));
            }
        }
    }
}

/// Drains a child's output on a thread for the process's life (a full pipe would block
/// it), copying each line to `sink` if given and to stderr under `KEYWAY_TEST_LOGS`.
/// `on_line` sees every line; the first value it returns is sent on the channel.
pub fn watch_lines<F>(
    stream: impl Read + Send + 'static,
    label: String,
    mut sink: Option<std::fs::File>,
    mut on_line: F,
) -> mpsc::Receiver<String>
where
    F: FnMut(&str) -> Option<String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let echo = std::env::var_os("KEYWAY_TEST_LOGS").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[{label}] {line}");
            }
            if let Some(f) = sink.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if let Some(v) = on_line(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

/// A plain HTTP/1.1 GET over loopback, for readiness polling outside any async runtime.
/// Returns the status code.
pub fn http_status(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // Only the status line: a server may keep the connection open despite the header.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs a command to its end and hands back its stdout, or an error naming `what` with
/// everything the command printed: a failed step in a test or the lab says why.
pub fn run_to_end(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
