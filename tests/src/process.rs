//! A peer server running as a child process, owned by a guard.
//!
//! The guard owns the process and a temporary directory (data and the process's log). Dropping it
//! kills the process, waits for it, and removes the directory, so a test that panics still leaves
//! nothing behind. Readiness is probed, never slept on, and the startup time is logged.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;

use crate::eventually::POLL_INTERVAL;

/// A running peer: killed and cleaned up on drop.
pub struct PeerProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    log_dir: PathBuf,
    /// Owned when the process alone uses the directory; `None` when a longer-lived owner keeps it
    /// (a peer that is stopped and restarted on the same data).
    owned_dir: Option<TempDir>,
}

impl PeerProcess {
    /// Creates the temporary directory a peer keeps its data and log in.
    pub fn temp_dir(name: &str) -> anyhow::Result<TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("causeway-{name}-"))
            .tempdir()
            .context("create a temporary directory")
    }

    /// Starts `command` with stdout and stderr going to `<dir>/<name>.log`; the directory is
    /// removed when the guard drops.
    pub fn spawn(name: &str, command: Command, dir: TempDir) -> anyhow::Result<Self> {
        let mut process = Self::spawn_in(name, command, dir.path())?;
        process.owned_dir = Some(dir);
        Ok(process)
    }

    /// Starts `command` logging into `<log_dir>/<name>.log` (appending, so a restarted peer keeps
    /// its earlier log). The caller owns `log_dir` and must keep it alive longer than the guard.
    pub fn spawn_in(name: &str, mut command: Command, log_dir: &Path) -> anyhow::Result<Self> {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .context("create the peer's log file")?;
        let log_err = log.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("start {name}: {command:?}"))?;
        tracing::debug!(peer = name, pid = child.id(), "started");
        Ok(Self {
            name: name.to_owned(),
            child,
            log_path,
            log_dir: log_dir.to_owned(),
            owned_dir: None,
        })
    }

    /// The directory holding the peer's log (and, for [`Self::spawn`], its data).
    pub fn dir(&self) -> &Path {
        &self.log_dir
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the peer's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited with {status}; last log lines:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Polls `probe` until it succeeds, the process dies, or `timeout` passes. Returns (and logs)
    /// how long the peer took to become ready.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut probe: F,
    ) -> anyhow::Result<Duration>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let started = tokio::time::Instant::now();
        loop {
            self.ensure_running()?;
            let last_error = match probe().await {
                Ok(()) => {
                    let took = started.elapsed();
                    tracing::info!(peer = %self.name, startup_ms = took.as_millis() as u64, "peer ready");
                    return Ok(took);
                }
                Err(error) => error,
            };
            if started.elapsed() >= timeout {
                anyhow::bail!(
                    "{} not ready after {timeout:?} ({last_error:#}); last log lines:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(POLL_INTERVAL * 5).await;
        }
    }

    /// Stops the process now (as a crash would: SIGKILL), keeping the directory, and waits for it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill()?;
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // Kill before the TempDir field is dropped, so nothing writes into a removed directory.
        if let Err(error) = self.kill() {
            tracing::warn!(peer = %self.name, %error, "could not stop peer");
        }
    }
}

impl std::fmt::Debug for PeerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("dir", &self.log_dir)
            .finish()
    }
}
