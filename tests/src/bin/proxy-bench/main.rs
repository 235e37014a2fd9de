//! `proxy-bench`: the data-plane benchmark of issue 6 in one command (`scripts/bench-proxy.sh`):
//! the Dubbo rows here, the gRPC (h2load) and HTTP (wrk) rows in [`web`]; `--protocols` picks.
//!
//! One fixed-response Dubbo provider (`dubbo-provider`, 1 KiB answers) and, in front of it, one
//! target at a time on free loopback ports with temporary directories:
//!
//! - `direct`: no proxy, the baseline every hop is compared with;
//! - `nginx`: nginx's `stream` module (`proxy_pass`), one process (`master_process off`);
//! - `haproxy`: HAProxy in `mode tcp`, one thread;
//! - `causeway`: the release `causeway-proxy` in local-config mode (a generated config with one
//!   Dubbo service whose static endpoint is the provider), an L7 Dubbo proxy.
//!
//! For each target, the same load from `dubbo-load`:
//!
//! 1. **memory**: the target's `VmRSS` idle, then with `--rss-connections` connections open
//!    (each has sent `--rss-requests` requests and stays open), and `VmHWM` at the end of the
//!    target's turn (proxies only);
//! 2. **latency**: `--rate` requests per second open loop over `--connections` connections, after
//!    a warm-up; p50/p90/p99/p99.9/max from the intended send time; the target's CPU time
//!    (`utime + stime` of it and its child processes from `/proc`) over exactly the measured
//!    window gives CPU per 1,000 requests;
//! 3. **saturation**: closed loop, `--window` requests in flight per connection: throughput,
//!    latency and CPU.
//!
//! Added latency per hop = target p50/p99 − direct p50/p99 of the same run; ratios are
//! saturation throughputs. On a machine with two or more CPUs, processes are pinned with
//! `taskset`: the load generator and the provider share CPU 0 and the target has CPU 1 to itself
//! (`--no-pin` turns it off), so every proxy gets exactly one core and the figures do not depend
//! on where the scheduler happens to put things; each proxy therefore runs single-threaded
//! (nginx one process, HAProxy `nbthread 1`, causeway-proxy's runtime sizes itself to its one
//! allowed CPU).
//!
//! The gRPC and HTTP rows ([`web`]) use the same targets, pinning and `/proc` readings with
//! their own provider (`web-provider`) and the external generators h2load and wrk.

mod web;

use causeway_tests::bench::entry::{self, Runtime};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use causeway_tests::dubbo_bench::load::{HoldReport, probe};
use causeway_tests::dubbo_bench::{DEFAULT_PAYLOAD_BYTES, LoadReport, Percentiles};
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The issue's targets.
const TARGET_ADDED_P99_MS: f64 = 0.2;
const TARGET_RATIO_VS_HAPROXY: f64 = 1.0;
const TARGET_RSS_MB: f64 = 30.0;
/// Linux reports `/proc/<pid>/stat` CPU times in USER_HZ, which is 100 on every architecture.
const USER_HZ: f64 = 100.0;
/// How long a target may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

const USAGE: &str = "\
usage: proxy-bench [--quick] [--protocols LIST] [--targets LIST] [--rate RPS] [--connections N] [--window N]
                   [--warmup-s S] [--duration-s S] [--sat-duration-s S]
                   [--rss-connections N] [--rss-requests N] [--payload-bytes N]
                   [--no-pin] [--nice N] [--runs N] [--doc PATH | --no-doc] [--json PATH]
                   [--no-build]

  --quick            a short smoke run: 2 s warm-up, 5 s windows, 200 held connections
  --protocols LIST   comma-separated, in order (default: dubbo,grpc,http); gRPC is loaded by
                     h2load, HTTP by h2load --h1 at the fixed rate and wrk at saturation
  --targets LIST     comma-separated, in order (default: direct,nginx,haproxy,causeway);
                     for gRPC and HTTP, nginx is an L7 proxy and haproxy is run in both
                     `mode tcp` and `mode http`
  --rate RPS         open-loop rate (default: 2000)
  --connections N    connections for the rate and saturation phases (default: 64)
  --window N         requests in flight per connection at saturation (default: 8; gRPC
                     streams per connection at both rates; HTTP/1.1 always 1)
  --warmup-s S       warm-up before each measured window (default: 5)
  --duration-s S     measured window at the fixed rate (default: 20)
  --sat-duration-s S measured window at saturation (default: 15)
  --rss-connections N  connections held open for the memory figure (default: 1000)
  --rss-requests N   requests sent on each of them (default: 5)
  --payload-bytes N  request and response string length (default: 1024)
  --no-pin           do not pin processes to CPUs (default: load generator and provider on
                     CPU 0, the target on CPU 1)
  --nice N           niceness of every benchmark process (default: -10, so other users'
                     builds on a shared machine disturb the figures less; needs root,
                     otherwise nice warns and runs them at the normal priority)
  --runs N           repeat the whole benchmark N times, each reported (default: 1)
  --doc PATH         append the results here (default: docs/benchmarks.md of the workspace)
  --no-doc           do not write the results anywhere but stdout
  --json PATH        also write every raw figure as JSON
  --no-build         do not build the binaries first (default: build them when run by cargo)

Needs nginx (with the stream module), haproxy, h2load (nghttp2-client) and wrk on the PATH;
scripts/bench-proxy.sh installs them when missing.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Direct,
    Nginx,
    Haproxy,
    Causeway,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::Causeway => "causeway",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct (no proxy)",
            Self::Nginx => "nginx `stream` (L4)",
            Self::Haproxy => "HAProxy `mode tcp` (L4)",
            Self::Causeway => "causeway-proxy (L7 Dubbo)",
        }
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "direct" => Self::Direct,
            "nginx" => Self::Nginx,
            "haproxy" => Self::Haproxy,
            "causeway" | "causeway-proxy" => Self::Causeway,
            other => bail!("unknown target {other:?}: expected direct, nginx, haproxy, causeway"),
        })
    }
}

#[derive(Debug, Clone)]
struct Options {
    /// The Dubbo rows.
    dubbo: bool,
    /// The gRPC and HTTP rows, in order.
    web: Vec<web::Protocol>,
    targets: Vec<Kind>,
    rate: f64,
    connections: usize,
    window: usize,
    warmup: f64,
    duration: f64,
    sat_duration: f64,
    rss_connections: usize,
    rss_requests: usize,
    payload_bytes: usize,
    pin: bool,
    nice: i32,
    runs: usize,
    quick: bool,
    doc: Option<PathBuf>,
    json: Option<PathBuf>,
    build: bool,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let mut options = Self {
            dubbo: true,
            web: vec![web::Protocol::Grpc, web::Protocol::Http],
            targets: vec![Kind::Direct, Kind::Nginx, Kind::Haproxy, Kind::Causeway],
            rate: 2000.0,
            connections: 64,
            window: 8,
            warmup: 5.0,
            duration: 20.0,
            sat_duration: 15.0,
            rss_connections: 1000,
            rss_requests: 5,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            pin: true,
            nice: -10,
            runs: 1,
            quick: false,
            doc: Some(workspace_root().join("docs").join("benchmarks.md")),
            json: None,
            build: true,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
            match flag.as_str() {
                "--quick" => {
                    options.quick = true;
                    options.warmup = 2.0;
                    options.duration = 5.0;
                    options.sat_duration = 5.0;
                    options.rss_connections = 200;
                }
                "--protocols" => {
                    options.dubbo = false;
                    options.web.clear();
                    for protocol in value()?.split(',').map(str::trim) {
                        match protocol {
                            "dubbo" => options.dubbo = true,
                            "grpc" => options.web.push(web::Protocol::Grpc),
                            "http" => options.web.push(web::Protocol::Http),
                            other => {
                                bail!("unknown protocol {other:?}: expected dubbo, grpc, http")
                            }
                        }
                    }
                }
                "--targets" => {
                    options.targets = value()?
                        .split(',')
                        .map(|t| Kind::parse(t.trim()))
                        .collect::<anyhow::Result<_>>()?;
                }
                "--rate" => options.rate = value()?.parse().context("--rate")?,
                "--connections" => {
                    options.connections = value()?.parse().context("--connections")?;
                }
                "--window" => options.window = value()?.parse().context("--window")?,
                "--warmup-s" => options.warmup = value()?.parse().context("--warmup-s")?,
                "--duration-s" => options.duration = value()?.parse().context("--duration-s")?,
                "--sat-duration-s" => {
                    options.sat_duration = value()?.parse().context("--sat-duration-s")?;
                }
                "--rss-connections" => {
                    options.rss_connections = value()?.parse().context("--rss-connections")?;
                }
                "--rss-requests" => {
                    options.rss_requests = value()?.parse().context("--rss-requests")?;
                }
                "--payload-bytes" => {
                    options.payload_bytes = value()?.parse().context("--payload-bytes")?;
                }
                "--no-pin" => options.pin = false,
                "--nice" => options.nice = value()?.parse().context("--nice")?,
                "--runs" => options.runs = value()?.parse().context("--runs")?,
                "--doc" => options.doc = Some(PathBuf::from(value()?)),
                "--no-doc" => options.doc = None,
                "--json" => options.json = Some(PathBuf::from(value()?)),
                "--no-build" => options.build = false,
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        ensure!(!options.targets.is_empty(), "--targets is empty");
        ensure!(
            options.dubbo || !options.web.is_empty(),
            "--protocols is empty"
        );
        ensure!(
            options.rate > 0.0 && options.connections > 0 && options.window > 0,
            "--rate, --connections and --window must be positive"
        );
        ensure!(
            options.duration > 0.0 && options.sat_duration > 0.0,
            "durations must be positive"
        );
        ensure!(options.runs > 0, "--runs must be positive");
        Ok(Some(options))
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// The binaries the benchmark runs.
#[derive(Debug)]
struct Binaries {
    load: PathBuf,
    provider: PathBuf,
    proxy: PathBuf,
    web_provider: PathBuf,
}

/// Builds the binaries in this executable's target directory and profile when cargo launched
/// the bench (so the figures are always for the current source), then finds them there.
fn binaries(options: &Options) -> anyhow::Result<Binaries> {
    ensure!(
        !cfg!(debug_assertions),
        "a debug build measures nothing useful: run with `cargo run --release` \
         (scripts/bench-proxy.sh)"
    );
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    if options.build
        && let Some(cargo) = std::env::var_os("CARGO")
    {
        let target_dir = profile_dir
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", profile_dir.display()))?;
        println!(
            "building causeway-proxy, dubbo-load, dubbo-provider, web-provider (release) into {}",
            target_dir.display()
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "--locked"])
            .args(["-p", "causeway-proxy", "--bin", "causeway-proxy"])
            .args(["-p", "causeway-tests", "--bin", "dubbo-load"])
            .args([
                "--bin",
                "dubbo-provider",
                "--bin",
                "web-provider",
                "--target-dir",
            ])
            .arg(target_dir)
            .current_dir(workspace_root())
            .status()
            .context("run cargo build")?;
        ensure!(status.success(), "building the binaries failed: {status}");
    }
    let find = |name: &str| -> anyhow::Result<PathBuf> {
        let path = profile_dir.join(name);
        ensure!(
            path.is_file(),
            "{} not found: build it with `cargo build --release`",
            path.display()
        );
        Ok(path)
    };
    Ok(Binaries {
        load: find("dubbo-load")?,
        provider: find("dubbo-provider")?,
        proxy: find("causeway-proxy")?,
        web_provider: find("web-provider")?,
    })
}

/// Which CPUs each side runs on (`None`: wherever the scheduler likes).
#[derive(Debug, Clone)]
struct Pinning {
    client: Option<String>,
    target: Option<String>,
    /// Niceness of every benchmark process: negative gives them a larger share of the CPUs
    /// than other users' work (builds of other engineers on a shared machine).
    nice: i32,
}

impl Pinning {
    fn new(pin: bool, nice: i32) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        if pin && cpus >= 2 && which("taskset").is_some() {
            let rest = if cpus == 2 {
                "1".to_owned()
            } else {
                format!("1-{}", cpus - 1)
            };
            Self {
                client: Some("0".to_owned()),
                target: Some(rest),
                nice,
            }
        } else {
            Self {
                client: None,
                target: None,
                nice,
            }
        }
    }

    fn describe(&self) -> String {
        let pinning = match (&self.client, &self.target) {
            (Some(client), Some(target)) => format!(
                "load generator and provider on CPU {client}, the target on CPU {target} (`taskset`)"
            ),
            _ => "not pinned".to_owned(),
        };
        format!("{pinning}, every benchmark process at `nice {}`", self.nice)
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `program` run on `cpus` (through `taskset`) at niceness `nice` (through `nice`); both exec
/// what they run, so the pid is the program's.
fn pinned(cpus: Option<&str>, nice: i32, program: &Path) -> Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if nice != 0 {
        argv.extend(["nice".into(), "-n".into(), nice.to_string().into()]);
    }
    if let Some(cpus) = cpus {
        argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
    }
    argv.push(program.into());
    let mut args = argv.into_iter();
    let mut command = Command::new(args.next().unwrap_or_else(|| program.into()));
    command.args(args);
    command
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts the provider and waits until it answers.
async fn start_provider(
    binaries: &Binaries,
    pinning: &Pinning,
    payload_bytes: usize,
) -> anyhow::Result<(PeerProcess, SocketAddr)> {
    let address = loopback(free_port()?);
    let mut command = pinned(pinning.client.as_deref(), pinning.nice, &binaries.provider);
    command
        .arg("--listen")
        .arg(address.to_string())
        .arg("--response-bytes")
        .arg(payload_bytes.to_string());
    let dir = PeerProcess::temp_dir("bench-provider")?;
    let mut process = PeerProcess::spawn("dubbo-provider", command, dir)?;
    process
        .wait_ready(READY_TIMEOUT, || probe(address, payload_bytes))
        .await?;
    Ok((process, address))
}

/// A target in front of the provider, started and answering.
struct Target {
    process: Option<PeerProcess>,
    address: SocketAddr,
}

async fn start_target(
    kind: Kind,
    binaries: &Binaries,
    pinning: &Pinning,
    provider: SocketAddr,
    options: &Options,
) -> anyhow::Result<Target> {
    if kind == Kind::Direct {
        return Ok(Target {
            process: None,
            address: provider,
        });
    }
    let dir = PeerProcess::temp_dir(&format!("bench-{}", kind.name()))?;
    let address = loopback(free_port()?);
    let cpus = pinning.target.as_deref();
    let command = match kind {
        Kind::Direct => bail!("the direct target has no process"),
        Kind::Nginx => {
            let nginx = which("nginx").ok_or_else(|| {
                anyhow!("nginx is not installed (scripts/bench-proxy.sh installs it)")
            })?;
            let config = dir.path().join("nginx.conf");
            std::fs::write(&config, nginx_config(dir.path(), address, provider)?)?;
            let mut command = pinned(cpus, pinning.nice, &nginx);
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&config);
            command
        }
        Kind::Haproxy => {
            let haproxy = which("haproxy").ok_or_else(|| {
                anyhow!("haproxy is not installed (scripts/bench-proxy.sh installs it)")
            })?;
            let config = dir.path().join("haproxy.cfg");
            std::fs::write(&config, haproxy_config(address, provider, options))?;
            let mut command = pinned(cpus, pinning.nice, &haproxy);
            // -db: stay in the foreground, no daemon, so the guard owns the process.
            command.arg("-db").arg("-f").arg(&config);
            command
        }
        Kind::Causeway => {
            let admin = loopback(free_port()?);
            let config = dir.path().join("causeway-proxy.yaml");
            std::fs::write(&config, causeway_config(admin, address, provider))?;
            let mut command = pinned(cpus, pinning.nice, &binaries.proxy);
            command.arg("--config").arg(&config);
            command
        }
    };
    let mut process = PeerProcess::spawn(kind.name(), command, dir)?;
    let payload = options.payload_bytes;
    process
        .wait_ready(READY_TIMEOUT, || probe(address, payload))
        .await?;
    Ok(Target {
        process: Some(process),
        address,
    })
}

fn nginx_config(dir: &Path, listen: SocketAddr, provider: SocketAddr) -> anyhow::Result<String> {
    // Debian builds the stream module as a dynamic module (package libnginx-mod-stream).
    let module = ["/usr/lib/nginx/modules/ngx_stream_module.so"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let load_module = module.map_or(String::new(), |m| format!("load_module {};\n", m.display()));
    Ok(format!(
        "# Generated by proxy-bench: one process (one core), a plain TCP proxy to the provider.
# No master: the process that serves is the one the bench owns, measures and stops (a killed
# master would leave its worker running).
{load_module}daemon off;
master_process off;
worker_rlimit_nofile 16384;
pid {pid};
error_log {log} warn;
events {{
    worker_connections 8192;
}}
stream {{
    upstream provider {{
        server {provider};
    }}
    server {{
        listen {listen};
        proxy_pass provider;
        tcp_nodelay on;
        proxy_connect_timeout 5s;
        proxy_timeout 120s;
    }}
}}
",
        pid = dir.join("nginx.pid").display(),
        log = dir.join("error.log").display(),
    ))
}

fn haproxy_config(listen: SocketAddr, provider: SocketAddr, options: &Options) -> String {
    let maxconn = (options.rss_connections + options.connections) * 2 + 100;
    format!(
        "# Generated by proxy-bench: one thread (one core), a plain TCP proxy to the provider.
global
    nbthread 1
    maxconn {maxconn}

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s

frontend dubbo
    bind {listen}
    default_backend provider

backend provider
    server provider {provider}
"
    )
}

fn causeway_config(admin: SocketAddr, listen: SocketAddr, provider: SocketAddr) -> String {
    use causeway_tests::dubbo_bench::{INTERFACE, METHOD, VERSION};
    format!(
        "# Generated by proxy-bench: one Dubbo service whose static endpoint is the provider.
admin_listen: {admin}
listen:
- {{protocol: dubbo, address: {listen}}}
workload: proxy-bench
services:
- host: io.causeway.bench.echoservice-1-0-0
  port: {port}
  protocol: dubbo
  dubbo: {{interface: {INTERFACE}, version: {VERSION}, methods: [{METHOD}]}}
  endpoints:
  - {{address: {ip}, port: {port}, labels: {{version: v1, app: bench-provider}}}}
",
        ip = provider.ip(),
        port = provider.port(),
    )
}

// ---------------------------------------------------------------------------------------------
// /proc.

/// The process and its direct children (none of today's targets forks, but a proxy that does
/// is measured whole).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                == Some(pid)
            {
                pids.push(child);
            }
        }
    }
    pids
}

/// `/proc/<pid>/stat` fields after the command name: state, ppid, …
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user + system) used so far by `pids`.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| stat_fields(*pid))
        .map(|f| {
            // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (ticks(11) + ticks(12)) / USER_HZ
        })
        .sum()
}

/// `(VmRSS, VmHWM)` in KiB, summed over `pids`.
fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut total = (0, 0);
    for pid in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        for line in text.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                total.0 += value(line);
            } else if line.starts_with("VmHWM:") {
                total.1 += value(line);
            }
        }
    }
    total
}

/// CPU seconds the whole machine has spent busy (everything but idle and I/O wait).
fn machine_busy_seconds() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = text.lines().next() else {
        return 0.0;
    };
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) / USER_HZ
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Driving dubbo-load.

/// Runs `dubbo-load` with `args`, calling `on_event` for each progress event; returns its final
/// JSON line. For `--hold`, `on_event` returning `true` closes its stdin, which releases the
/// connections.
async fn run_load(
    binaries: &Binaries,
    pinning: &Pinning,
    args: &[String],
    mut on_event: impl FnMut(&str, u32) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let command = pinned(pinning.client.as_deref(), pinning.nice, &binaries.load);
    let mut command = tokio::process::Command::from(command);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().context("start dubbo-load")?;
    let pid = child.id().unwrap_or(0);
    let mut stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("dubbo-load has no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut last = None;
    while let Some(line) = lines.next_line().await? {
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("dubbo-load printed {line:?}"))?;
        if let Some(event) = value.get("event").and_then(|e| e.as_str()) {
            if on_event(event, pid) {
                stdin = None;
            }
        } else {
            last = Some(value);
        }
    }
    drop(stdin);
    let status = child.wait().await?;
    ensure!(status.success(), "dubbo-load {args:?} failed: {status}");
    last.ok_or_else(|| anyhow!("dubbo-load printed no result"))
}

/// Every figure of one target in one run.
#[derive(Debug, Clone, Serialize)]
struct TargetResult {
    kind: Kind,
    /// Load average when the target's turn started.
    load_average: String,
    rate: LoadReport,
    /// Target CPU seconds over the rate window.
    rate_cpu_s: Option<f64>,
    /// Cores other processes kept busy over the rate window.
    rate_others_cores: f64,
    saturate: LoadReport,
    saturate_cpu_s: Option<f64>,
    saturate_others_cores: f64,
    hold: Option<HoldReport>,
    rss_idle_kib: Option<u64>,
    rss_held_kib: Option<u64>,
    hwm_kib: Option<u64>,
}

impl TargetResult {
    fn cpu_ms_per_1k(cpu_s: Option<f64>, report: &LoadReport) -> Option<f64> {
        let requests = report.received as f64;
        cpu_s
            .filter(|_| requests > 0.0)
            .map(|s| s * 1000.0 / requests * 1000.0)
    }
}

async fn bench_target(
    kind: Kind,
    binaries: &Binaries,
    pinning: &Pinning,
    (provider, provider_pid): (SocketAddr, u32),
    options: &Options,
) -> anyhow::Result<TargetResult> {
    let load_average = load_average();
    let target = start_target(kind, binaries, pinning, provider, options).await?;
    let pids = target
        .process
        .as_ref()
        .map(|p| process_tree(p.pid()))
        .unwrap_or_default();
    let measured = !pids.is_empty();
    let address = target.address.to_string();
    let common = |mode: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["--target", &address]
            .into_iter()
            .chain(mode.iter().copied())
            .map(str::to_owned)
            .collect();
        args.extend([
            "--payload-bytes".to_owned(),
            options.payload_bytes.to_string(),
        ]);
        args
    };

    // 1. Memory, on the fresh process: idle, then with the connections held.
    let (mut hold, mut rss_idle, mut rss_held) = (None, None, None);
    if measured {
        rss_idle = Some(memory_kib(&pids).0);
        println!(
            "   {}: holding {} connections",
            kind.name(),
            options.rss_connections
        );
        let connections = options.rss_connections.to_string();
        let requests = options.rss_requests.to_string();
        let mut held = None;
        let value = run_load(
            binaries,
            pinning,
            &common(&["--hold", &connections, "--requests", &requests]),
            |event, _| {
                if event == "holding" {
                    // Let the allocator settle the last responses before reading.
                    std::thread::sleep(Duration::from_millis(200));
                    held = Some(memory_kib(&pids).0);
                    return true;
                }
                false
            },
        )
        .await?;
        rss_held = held;
        hold = Some(serde_json::from_value(
            value.get("hold").cloned().unwrap_or_default(),
        )?);
    }

    // 2. Latency at the fixed rate; 3. saturation. CPU over exactly the measured windows.
    let warmup = options.warmup.to_string();
    let timed = |phase: Vec<String>| {
        let mut args = phase;
        args.extend([
            "--connections".to_owned(),
            options.connections.to_string(),
            "--warmup-s".to_owned(),
            warmup.clone(),
        ]);
        args
    };
    let rate = options.rate.to_string();
    let duration = options.duration.to_string();
    println!(
        "   {}: {} rps open loop for {} s",
        kind.name(),
        options.rate,
        options.duration
    );
    let rate_run = measured_run(
        binaries,
        pinning,
        &timed(common(&["--rate", &rate, "--duration-s", &duration])),
        &pids,
        provider_pid,
    )
    .await?;
    let window = options.window.to_string();
    let sat_duration = options.sat_duration.to_string();
    println!(
        "   {}: saturation, {} in flight per connection, for {} s",
        kind.name(),
        options.window,
        options.sat_duration
    );
    let saturate_run = measured_run(
        binaries,
        pinning,
        &timed(common(&[
            "--saturate",
            "--window",
            &window,
            "--duration-s",
            &sat_duration,
        ])),
        &pids,
        provider_pid,
    )
    .await?;
    let hwm = measured.then(|| memory_kib(&pids).1);
    drop(target);
    Ok(TargetResult {
        kind,
        load_average,
        rate: rate_run.report,
        rate_cpu_s: measured.then_some(rate_run.target_cpu_s),
        rate_others_cores: rate_run.others_cores,
        saturate: saturate_run.report,
        saturate_cpu_s: measured.then_some(saturate_run.target_cpu_s),
        saturate_others_cores: saturate_run.others_cores,
        hold,
        rss_idle_kib: rss_idle,
        rss_held_kib: rss_held,
        hwm_kib: hwm,
    })
}

/// One timed `dubbo-load` run; the target's CPU seconds between its window events.
async fn measured_run(
    binaries: &Binaries,
    pinning: &Pinning,
    args: &[String],
    pids: &[u32],
    provider_pid: u32,
) -> anyhow::Result<Measured> {
    // (target CPU, CPU of the benchmark's own processes, machine busy CPU) at each event.
    let sample = |load_pid: u32| {
        let ours: Vec<u32> = pids
            .iter()
            .copied()
            .chain([provider_pid, load_pid])
            .collect();
        (
            cpu_seconds(pids),
            cpu_seconds(&ours),
            machine_busy_seconds(),
        )
    };
    let (mut start, mut end) = (None, None);
    let value = run_load(binaries, pinning, args, |event, load_pid| {
        match event {
            "measure_start" => start = Some(sample(load_pid)),
            "measure_end" => end = Some(sample(load_pid)),
            _ => {}
        }
        false
    })
    .await?;
    let report: LoadReport =
        serde_json::from_value(value.get("report").cloned().unwrap_or_default())
            .context("read dubbo-load's report")?;
    let (Some(start), Some(end)) = (start, end) else {
        bail!("dubbo-load reported no measured window");
    };
    let others = ((end.2 - start.2) - (end.1 - start.1)).max(0.0) / report.duration_s;
    Ok(Measured {
        report,
        target_cpu_s: end.0 - start.0,
        others_cores: others,
    })
}

/// A timed run and what the machine did meanwhile.
struct Measured {
    report: LoadReport,
    target_cpu_s: f64,
    /// Cores busy with processes that are not part of the benchmark (other engineers' builds on
    /// a shared machine): the noise indicator next to each figure.
    others_cores: f64,
}

// ---------------------------------------------------------------------------------------------
// Report.

#[derive(Debug, Serialize)]
struct Run {
    started: String,
    load_before: String,
    load_after: String,
    pinning: String,
    targets: Vec<TargetResult>,
    failures: Vec<(Kind, String)>,
}

fn utc_date(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0))
}

fn render(run: &Run, options: &Options) -> String {
    let mut out = String::new();
    let direct = run.targets.iter().find(|t| t.kind == Kind::Direct);
    let haproxy = run.targets.iter().find(|t| t.kind == Kind::Haproxy);
    let _ = writeln!(
        out,
        "### Run of {}{}\n",
        run.started,
        if options.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        out,
        "Commit {}; load average (1/5/15 min) {} before, {} after, on {} CPUs; pinning: {}. \
         {} connections, {} B request and response strings; {} rps open loop ({} s warm-up, {} s \
         measured); saturation with {} in flight per connection ({} s measured); memory with {} \
         connections × {} requests.\n",
        git_head(),
        run.load_before,
        run.load_after,
        std::thread::available_parallelism().map_or(1, usize::from),
        run.pinning,
        options.connections,
        options.payload_bytes,
        options.rate,
        options.warmup,
        options.duration,
        options.window,
        options.sat_duration,
        options.rss_connections,
        options.rss_requests,
    );
    let _ = writeln!(
        out,
        "#### Latency at {} rps, open loop (ms, from the intended send time)\n",
        options.rate
    );
    let _ = writeln!(
        out,
        "| Target | other load (cores) | achieved rps | p50 | p90 | p99 | p99.9 | max | errors / lost | added p50 | added p99 | CPU ms per 1,000 req |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for t in &run.targets {
        let l = &t.rate.latency_ms;
        let added = |f: fn(&LoadReport) -> f64| {
            direct
                .filter(|d| d.kind != t.kind)
                .map_or("–".to_owned(), |d| {
                    format!("{:+.3}", f(&t.rate) - f(&d.rate))
                })
        };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} / {} | {} | {} | {} |",
            t.kind.label(),
            t.rate_others_cores,
            t.rate.achieved_rps,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            t.rate.errors,
            t.rate.lost,
            added(|r| r.latency_ms.p50),
            added(|r| r.latency_ms.p99),
            opt(TargetResult::cpu_ms_per_1k(t.rate_cpu_s, &t.rate), 1),
        );
    }
    let _ = writeln!(
        out,
        "\nThe same requests from their actual send (the generator's own scheduling lag removed; \
         not coordinated-omission free, but what a hop adds when CPU 0 is shared):\n"
    );
    let _ = writeln!(
        out,
        "| Target | p50 | p90 | p99 | p99.9 | added p50 | added p99 | generator lag p50 / p99 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let from_send = |t: &TargetResult| t.rate.from_send_ms.unwrap_or_default();
    for t in &run.targets {
        let l = from_send(t);
        let added = |f: fn(&Percentiles) -> f64| {
            direct
                .filter(|d| d.kind != t.kind)
                .map_or("–".to_owned(), |d| {
                    format!("{:+.3}", f(&l) - f(&from_send(d)))
                })
        };
        let lag = t.rate.send_lag_ms.unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {:.3} / {:.3} |",
            t.kind.label(),
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            added(|p| p.p50),
            added(|p| p.p99),
            lag.p50,
            lag.p99,
        );
    }
    let _ = writeln!(
        out,
        "\n#### Saturation ({} connections × {} in flight)\n",
        options.connections, options.window
    );
    let _ = writeln!(
        out,
        "| Target | other load (cores) | rps | ÷ direct | ÷ HAProxy | p50 ms | p99 ms | errors / lost | target CPU (% of a core) | CPU ms per 1,000 req | requests per CPU-second (÷ HAProxy) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    // What one core could carry if the target alone were the limit: the capacity comparison
    // that survives a run in which the load generator's side was the bottleneck.
    let per_cpu_second = |t: &TargetResult| {
        TargetResult::cpu_ms_per_1k(t.saturate_cpu_s, &t.saturate)
            .filter(|ms| *ms > 0.0)
            .map(|ms| 1e6 / ms)
    };
    let haproxy_per_cpu = haproxy.and_then(per_cpu_second);
    for t in &run.targets {
        let ratio = |base: Option<&TargetResult>| {
            base.filter(|b| b.saturate.achieved_rps > 0.0)
                .map_or("–".to_owned(), |b| {
                    format!("{:.2}×", t.saturate.achieved_rps / b.saturate.achieved_rps)
                })
        };
        let cores = t
            .saturate_cpu_s
            .map(|s| s / t.saturate.duration_s.max(f64::EPSILON) * 100.0);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {} | {} | {:.3} | {:.3} | {} / {} | {} | {} | {} |",
            t.kind.label(),
            t.saturate_others_cores,
            t.saturate.achieved_rps,
            ratio(direct),
            ratio(haproxy),
            t.saturate.latency_ms.p50,
            t.saturate.latency_ms.p99,
            t.saturate.errors,
            t.saturate.lost,
            opt(cores, 0),
            opt(
                TargetResult::cpu_ms_per_1k(t.saturate_cpu_s, &t.saturate),
                1
            ),
            per_cpu_second(t).map_or("–".to_owned(), |r| match haproxy_per_cpu {
                Some(h) => format!("{r:.0} ({:.2}×)", r / h),
                None => format!("{r:.0}"),
            }),
        );
    }
    let _ = writeln!(out, "\n#### Memory (the proxy process)\n");
    let _ = writeln!(
        out,
        "| Target | RSS idle | RSS with {} connections | answered OK | peak RSS (VmHWM) over its turn |",
        options.rss_connections
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for t in run.targets.iter().filter(|t| t.kind != Kind::Direct) {
        let answered = t.hold.map_or("–".to_owned(), |h| {
            format!(
                "{} of {} ({} connections)",
                h.ok,
                h.ok + h.failed,
                h.connections
            )
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.kind.label(),
            mib(t.rss_idle_kib),
            mib(t.rss_held_kib),
            answered,
            mib(t.hwm_kib),
        );
    }
    for (kind, error) in &run.failures {
        let _ = writeln!(out, "\n**{} not measured**: {error}", kind.label());
    }
    if let Some(causeway) = run.targets.iter().find(|t| t.kind == Kind::Causeway) {
        let _ = writeln!(out, "\nAgainst the issue's targets:\n");
        if let Some(d) = direct {
            let added = causeway.rate.latency_ms.p99 - d.rate.latency_ms.p99;
            let from_send = causeway.rate.from_send_ms.unwrap_or_default().p99
                - d.rate.from_send_ms.unwrap_or_default().p99;
            let _ = writeln!(
                out,
                "- added p99 at {} rps: {:+.3} ms from the intended send, {:+.3} ms from the actual \
                 send (target ≤ {TARGET_ADDED_P99_MS} ms): **{}** / **{}**",
                options.rate,
                added,
                from_send,
                verdict(added <= TARGET_ADDED_P99_MS),
                verdict(from_send <= TARGET_ADDED_P99_MS),
            );
        }
        if let Some(h) = haproxy.filter(|h| h.saturate.achieved_rps > 0.0) {
            let ratio = causeway.saturate.achieved_rps / h.saturate.achieved_rps;
            let per_cpu = per_cpu_second(causeway)
                .zip(haproxy_per_cpu)
                .map_or("–".to_owned(), |(c, h)| format!("{:.2}×", c / h));
            let _ = writeln!(
                out,
                "- saturation throughput ÷ HAProxy: {ratio:.2}× measured, {per_cpu} per CPU-second \
                 (target ≥ {TARGET_RATIO_VS_HAPROXY:.1}×): **{}**",
                verdict(ratio >= TARGET_RATIO_VS_HAPROXY)
            );
        }
        if let Some(held) = causeway.rss_held_kib {
            let mb = held as f64 / 1024.0;
            let _ = writeln!(
                out,
                "- RSS with {} connections: {mb:.1} MB (target ≤ {TARGET_RSS_MB:.0} MB at 1,000): **{}**",
                options.rss_connections,
                verdict(mb <= TARGET_RSS_MB)
            );
        }
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

const SECTION: &str = "## Proxy: Dubbo data plane";

const SECTION_INTRO: &str = "\
## Proxy: Dubbo data plane

See the method above the runs; every run of `scripts/bench-proxy.sh` appends itself below.
";

/// Appends `run` at the end of the proxy section (creating the section if needed).
fn append_to_doc(path: &Path, run: &str) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.trim().is_empty() {
        text = "# Benchmarks\n\n".to_owned();
    }
    let Some(section_start) = text.find(SECTION) else {
        let mut text = text.trim_end().to_owned();
        text.push_str("\n\n");
        text.push_str(SECTION_INTRO);
        text.push('\n');
        text.push_str(run);
        return std::fs::write(path, text).with_context(|| format!("write {}", path.display()));
    };
    // The section ends where the next level-2 heading starts, or at the end of the file.
    let body_start = section_start + SECTION.len();
    let section_end = text
        .get(body_start..)
        .and_then(|rest| rest.find("\n## "))
        .map_or(text.len(), |i| body_start + i + 1);
    let (before, after) = text.split_at(section_end);
    let mut new = before.trim_end().to_owned();
    new.push_str("\n\n");
    new.push_str(run);
    if !after.is_empty() {
        new.push('\n');
        new.push_str(after);
    }
    std::fs::write(path, new).with_context(|| format!("write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Entry point.

async fn one_run(binaries: &Binaries, pinning: &Pinning, options: &Options) -> anyhow::Result<Run> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let load_before = load_average();
    println!("load average before: {load_before}");
    let (provider_process, provider) =
        start_provider(binaries, pinning, options.payload_bytes).await?;
    let mut targets = Vec::new();
    let mut failures = Vec::new();
    for &kind in &options.targets {
        println!("== {}", kind.label());
        let provider = (provider, provider_process.pid());
        match bench_target(kind, binaries, pinning, provider, options).await {
            Ok(result) => {
                println!(
                    "   {:.0} rps p50 {:.3} ms p99 {:.3} ms; saturation {:.0} rps",
                    result.rate.achieved_rps,
                    result.rate.latency_ms.p50,
                    result.rate.latency_ms.p99,
                    result.saturate.achieved_rps
                );
                targets.push(result);
            }
            Err(error) => {
                eprintln!("   {} not measured: {error:#}", kind.name());
                failures.push((kind, format!("{error:#}")));
            }
        }
    }
    drop(provider_process);
    Ok(Run {
        started: utc_date(now),
        load_before,
        load_after: load_average(),
        pinning: pinning.describe(),
        targets,
        failures,
    })
}

async fn run(options: Options) -> anyhow::Result<bool> {
    let binaries = binaries(&options)?;
    let pinning = Pinning::new(options.pin, options.nice);
    let mut runs = Vec::new();
    let mut web_runs = Vec::new();
    for index in 0..options.runs {
        println!("run {} of {}", index + 1, options.runs);
        if options.dubbo {
            let run = one_run(&binaries, &pinning, &options).await?;
            let report = render(&run, &options);
            println!("\n{report}");
            if let Some(doc) = &options.doc {
                append_to_doc(doc, &report)?;
                println!("appended to {}", doc.display());
            }
            runs.push(run);
        }
        if !options.web.is_empty() {
            let started = utc_date(SystemTime::now().duration_since(UNIX_EPOCH)?);
            let load_before = load_average();
            let mut protocols = Vec::new();
            for &protocol in &options.web {
                protocols.push(web::bench(protocol, &binaries, &pinning, &options).await?);
            }
            let mut report = web_run_heading(&started, &load_before, &pinning, &options);
            for protocol in &protocols {
                report.push('\n');
                report.push_str(&web::render(protocol, &options));
            }
            println!("\n{report}");
            if let Some(doc) = &options.doc {
                causeway_tests::bench::report::append_to_doc(
                    doc,
                    web::SECTION,
                    web::SECTION_INTRO,
                    &report,
                )?;
                println!("appended to {}", doc.display());
            }
            web_runs.push(protocols);
        }
    }
    if let Some(path) = &options.json {
        let all = serde_json::json!({ "dubbo": runs, "grpc_http": web_runs });
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(
        runs.iter().all(|r| r.failures.is_empty())
            && web_runs.iter().flatten().all(|p| !p.failed()),
    )
}

/// The heading and conditions of one run of the gRPC and HTTP rows.
fn web_run_heading(
    started: &str,
    load_before: &str,
    pinning: &Pinning,
    options: &Options,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Run of {started}{}\n",
        if options.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        out,
        "Commit {}; load average (1/5/15 min) {load_before} before, {} after, on {} CPUs; \
         pinning: {}. {} connections, {} B request and response payloads; {} rps ({} s warm-up \
         run, {} s measured); saturation {} s after a {} s warm-up run; memory with {} \
         connections.",
        git_head(),
        load_average(),
        std::thread::available_parallelism().map_or(1, usize::from),
        pinning.describe(),
        options.connections,
        options.payload_bytes,
        options.rate,
        options.warmup,
        options.duration,
        options.sat_duration,
        options.warmup,
        options.rss_connections,
    );
    out
}

fn main() -> ExitCode {
    // One thread: the driver mostly waits, and should take as little CPU as it can.
    entry::main(
        "proxy-bench",
        USAGE,
        Runtime::CurrentThread,
        || Options::parse(std::env::args().skip(1)),
        run,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_issue_figures() {
        let options = Options::parse(Vec::new()).unwrap().unwrap();
        assert_eq!(options.rate, 2000.0);
        assert_eq!(options.connections, 64);
        assert_eq!(options.rss_connections, 1000);
        assert_eq!(options.payload_bytes, 1024);
        assert_eq!(
            options.targets,
            [Kind::Direct, Kind::Nginx, Kind::Haproxy, Kind::Causeway]
        );
        let quick = Options::parse(["--quick".to_owned()]).unwrap().unwrap();
        assert!(quick.quick && quick.duration < options.duration);
        assert!(Options::parse(["--targets".to_owned(), "envoy".to_owned()]).is_err());
        assert!(options.dubbo && options.web == [web::Protocol::Grpc, web::Protocol::Http]);
        let grpc = Options::parse(["--protocols".to_owned(), "grpc".to_owned()])
            .unwrap()
            .unwrap();
        assert!(!grpc.dubbo && grpc.web == [web::Protocol::Grpc]);
        assert!(Options::parse(["--protocols".to_owned(), "thrift".to_owned()]).is_err());
    }

    #[test]
    fn configs_point_at_the_provider() {
        let listen = loopback(30001);
        let provider = loopback(30002);
        let nginx = nginx_config(Path::new("/tmp/x"), listen, provider).unwrap();
        assert!(nginx.contains("server 127.0.0.1:30002;"));
        assert!(nginx.contains("listen 127.0.0.1:30001;"));
        let options = Options::parse(Vec::new()).unwrap().unwrap();
        let haproxy = haproxy_config(listen, provider, &options);
        assert!(
            haproxy.contains("mode tcp") && haproxy.contains("server provider 127.0.0.1:30002")
        );
        let causeway = causeway_config(loopback(30000), listen, provider);
        assert!(causeway.contains("port: 30002") && causeway.contains("address: 127.0.0.1"));
    }

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let pid = std::process::id();
        let (rss, hwm) = memory_kib(&[pid]);
        assert!(rss > 0 && hwm >= rss);
        assert!(cpu_seconds(&[pid]) >= 0.0);
        assert!(process_tree(pid).contains(&pid));
    }

    #[test]
    fn runs_are_appended_inside_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("benchmarks.md");
        std::fs::write(
            &path,
            "# Benchmarks\n\n## Bridge: registry scale\n\nbridge\n",
        )
        .unwrap();
        append_to_doc(&path, "### Run 1\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text + "\n## Later\n\nother\n").unwrap();
        append_to_doc(&path, "### Run 2\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let (bridge, proxy) = (text.find("bridge\n").unwrap(), text.find(SECTION).unwrap());
        let (run1, run2) = (
            text.find("### Run 1").unwrap(),
            text.find("### Run 2").unwrap(),
        );
        let later = text.find("## Later").unwrap();
        assert!(
            bridge < proxy && proxy < run1 && run1 < run2 && run2 < later,
            "{text}"
        );
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(
            utc_date(Duration::from_secs(1_709_210_096)),
            "2024-02-29 12:34 UTC"
        );
    }
}
