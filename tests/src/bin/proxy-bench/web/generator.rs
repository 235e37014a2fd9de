//! Running the external load generators (h2load, wrk) on the client CPU while sampling the
//! target's CPU and memory, and the h2load arguments of each phase.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use causeway_tests::web_bench::{LoadResult, h2load};
use tokio::io::AsyncReadExt as _;

use super::Protocol;
use crate::{Pinning, cpu_seconds, machine_busy_seconds, memory_kib, pinned};

/// How often the target is sampled while a generator runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What one generator run measured on the side of the target.
pub(super) struct Sampled {
    pub(super) stdout: String,
    /// Target CPU seconds over the run.
    pub(super) target_cpu_s: f64,
    /// Cores busy with processes outside the benchmark over the run.
    pub(super) others_cores: f64,
    /// The largest target `VmRSS` sampled while the generator ran, KiB.
    pub(super) max_rss_kib: u64,
}

/// Runs `program args` on the client CPU, sampling the target (`pids`) meanwhile.
pub(super) async fn run_generator(
    pinning: &Pinning,
    program: &Path,
    args: &[String],
    pids: &[u32],
    provider_pid: u32,
) -> anyhow::Result<Sampled> {
    let command = pinned(pinning.client.as_deref(), pinning.nice, program);
    let mut command = tokio::process::Command::from(command);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let name = program.display().to_string();
    let mut child = command.spawn().with_context(|| format!("start {name}"))?;
    let generator_pid = child.id().unwrap_or(0);
    let ours: Vec<u32> = pids
        .iter()
        .copied()
        .chain([provider_pid, generator_pid])
        .collect();
    let (cpu_start, ours_start, busy_start) = (
        cpu_seconds(pids),
        cpu_seconds(&ours),
        machine_busy_seconds(),
    );
    let started = std::time::Instant::now();
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("{name} has no stdout"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("{name} has no stderr"))?;
    let read_out = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });
    let read_err = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut max_rss_kib = 0;
    // The last samples before the generator exits: its own CPU is only readable while it runs.
    let (mut cpu_end, mut ours_end, mut busy_end) = (cpu_start, ours_start, busy_start);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            () = tokio::time::sleep(SAMPLE_EVERY) => {
                max_rss_kib = max_rss_kib.max(memory_kib(pids).0);
                (cpu_end, ours_end, busy_end) =
                    (cpu_seconds(pids), cpu_seconds(&ours), machine_busy_seconds());
            }
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    // The target outlives the generator: its final figure is exact.
    cpu_end = cpu_end.max(cpu_seconds(pids));
    let stdout = read_out.await.unwrap_or_default();
    let stderr = read_err.await.unwrap_or_default();
    ensure!(
        status.success(),
        "{name} {args:?} failed: {status}\n{stdout}{stderr}"
    );
    let others = ((busy_end - busy_start) - (ours_end - ours_start)).max(0.0) / elapsed.max(1e-9);
    Ok(Sampled {
        stdout,
        target_cpu_s: cpu_end - cpu_start,
        others_cores: others,
        max_rss_kib,
    })
}

/// The pieces every h2load run of one protocol shares.
pub(super) struct H2load {
    pub(super) program: PathBuf,
    pub(super) protocol: Protocol,
    pub(super) url: String,
    pub(super) request_file: PathBuf,
    pub(super) log_file: PathBuf,
}

impl H2load {
    /// Arguments for `connections` connections, `streams` in flight on each (HTTP/1.1: no
    /// pipelining, always 1), `rps` per connection or as fast as they go, for `seconds`.
    pub(super) fn args(
        &self,
        connections: usize,
        streams: usize,
        rps: Option<f64>,
        seconds: u64,
    ) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-t".into(),
            "1".into(),
            "-c".into(),
            connections.to_string(),
            "-D".into(),
            seconds.to_string(),
            "--log-file".into(),
            self.log_file.display().to_string(),
        ];
        match self.protocol {
            Protocol::Grpc => {
                args.extend(["-m".into(), streams.to_string()]);
                args.extend(["-H".into(), "content-type: application/grpc".into()]);
                args.extend(["-H".into(), "te: trailers".into()]);
                args.extend(["-d".into(), self.request_file.display().to_string()]);
            }
            Protocol::Http => args.extend(["--h1".into(), "-m".into(), "1".into()]),
        }
        if let Some(rps) = rps {
            args.push(format!("--rps={rps}"));
        }
        args.push(self.url.clone());
        args
    }

    pub(super) fn result(&self, stdout: &str) -> anyhow::Result<LoadResult> {
        let summary = h2load::parse_summary(stdout)?;
        let log = std::fs::read_to_string(&self.log_file)
            .with_context(|| format!("read {}", self.log_file.display()))?;
        h2load::result(&summary, &h2load::parse_log(&log)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2load_arguments_follow_the_protocol() {
        let h2load = H2load {
            program: PathBuf::from("h2load"),
            protocol: Protocol::Grpc,
            url: "http://127.0.0.1:1/causeway.bench.Echo/Echo".to_owned(),
            request_file: PathBuf::from("/tmp/req"),
            log_file: PathBuf::from("/tmp/log"),
        };
        let grpc = h2load.args(64, 8, Some(31.25), 20).join(" ");
        assert!(
            grpc.contains("-c 64 -D 20") && grpc.contains("-m 8"),
            "{grpc}"
        );
        assert!(
            grpc.contains("-d /tmp/req") && grpc.contains("--rps=31.25"),
            "{grpc}"
        );
        let http = H2load {
            protocol: Protocol::Http,
            ..h2load
        }
        .args(64, 8, None, 5)
        .join(" ");
        assert!(http.contains("--h1 -m 1") && !http.contains("--rps") && !http.contains("-d "));
    }
}
