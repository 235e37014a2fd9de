//! The gRPC (h2load) and HTTP (wrk) rows of the proxy benchmark: the same targets as the Dubbo
//! rows, in front of `web-provider`, loaded by the standard external generators.
//!
//! Per protocol, one `web-provider` (pinned with the load generator) and, one at a time, each
//! target in front of it: direct; nginx as an L7 proxy (`grpc_pass` behind an HTTP/2 listener,
//! or `proxy_pass` with HTTP/1.1 keep-alive upstreams); HAProxy `mode tcp` (the L4
//! comparison, and the ratio's base) and `mode http` (L7, `proto h2` for gRPC); causeway-proxy in
//! local mode with a `protocol: grpc` / `protocol: http` service. For each target:
//!
//! 1. **memory**: `VmRSS` idle, then the largest `VmRSS` sampled while h2load keeps
//!    `--rss-connections` connections open sending one request a second each;
//! 2. **latency at the fixed rate**: h2load `--rps` (per connection: rate ÷ connections) after a
//!    warm-up run; percentiles from its per-request log (time from the request's start, so not
//!    coordinated-omission free: h2load starts a request late when its connection is busy);
//! 3. **saturation**: gRPC h2load with `--window` streams per connection, HTTP wrk (closed
//!    loop, one request in flight per connection; HTTP/1.1 without pipelining).
//!
//! CPU is the target's `utime + stime` over the generator's whole measured run (connection
//! setup included, which is negligible next to the run).
//!
//! This module owns the targets and phases; [`config`] writes the targets' configurations,
//! [`generator`] runs h2load and wrk while sampling the target, [`report`] renders the tables.

mod config;
mod generator;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::web_bench::{GRPC_PATH, HTTP_PATH, LoadResult, grpc_message, probe, wrk};
use serde::Serialize;

use super::{
    Binaries, Kind, Options, Pinning, READY_TIMEOUT, loopback, memory_kib, pinned, process_tree,
    which,
};
use config::{causeway_config, haproxy_config, nginx_config};
use generator::{H2load, run_generator};
pub use report::render;

/// How long the memory phase keeps its connections busy, seconds.
const HOLD_SECONDS: u64 = 4;

/// The protocols of these rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Grpc => "gRPC (unary, HTTP/2)",
            Self::Http => "HTTP/1.1 (keep-alive)",
        }
    }

    fn saturation_generator(self) -> &'static str {
        match self {
            Self::Grpc => "h2load",
            Self::Http => "wrk",
        }
    }
}

/// A target of these rows: the Dubbo targets, with HAProxy in both of its modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Target {
    Direct,
    Nginx,
    HaproxyTcp,
    HaproxyHttp,
    Causeway,
}

impl Target {
    /// `--targets` in these rows: `haproxy` is both HAProxy modes.
    fn from_kinds(kinds: &[Kind]) -> Vec<Self> {
        kinds
            .iter()
            .flat_map(|kind| match kind {
                Kind::Direct => vec![Self::Direct],
                Kind::Nginx => vec![Self::Nginx],
                Kind::Haproxy => vec![Self::HaproxyTcp, Self::HaproxyHttp],
                Kind::Causeway => vec![Self::Causeway],
            })
            .collect()
    }

    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Nginx => "nginx",
            Self::HaproxyTcp => "haproxy-tcp",
            Self::HaproxyHttp => "haproxy-http",
            Self::Causeway => "causeway",
        }
    }

    fn label(self, protocol: Protocol) -> &'static str {
        match (self, protocol) {
            (Self::Direct, _) => "direct (no proxy)",
            (Self::Nginx, Protocol::Grpc) => "nginx `grpc_pass` (L7)",
            (Self::Nginx, Protocol::Http) => "nginx `proxy_pass` (L7)",
            (Self::HaproxyTcp, _) => "HAProxy `mode tcp` (L4)",
            (Self::HaproxyHttp, Protocol::Grpc) => "HAProxy `mode http`, `proto h2` (L7)",
            (Self::HaproxyHttp, Protocol::Http) => "HAProxy `mode http` (L7)",
            (Self::Causeway, Protocol::Grpc) => "causeway-proxy (L7 gRPC)",
            (Self::Causeway, Protocol::Http) => "causeway-proxy (L7 HTTP)",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and their configurations.

async fn ready(protocol: Protocol, address: SocketAddr, payload: usize) -> anyhow::Result<()> {
    match protocol {
        Protocol::Grpc => probe::grpc(address, payload).await,
        Protocol::Http => probe::http(address, payload).await,
    }
}

async fn start_provider(
    protocol: Protocol,
    binaries: &Binaries,
    pinning: &Pinning,
    payload: usize,
) -> anyhow::Result<(PeerProcess, SocketAddr)> {
    let address = loopback(free_port()?);
    let mut command = pinned(
        pinning.client.as_deref(),
        pinning.nice,
        &binaries.web_provider,
    );
    command
        .args(["--protocol", protocol.name(), "--listen"])
        .arg(address.to_string())
        .arg("--response-bytes")
        .arg(payload.to_string());
    let dir = PeerProcess::temp_dir(&format!("bench-{}-provider", protocol.name()))?;
    let mut process = PeerProcess::spawn("web-provider", command, dir)?;
    process
        .wait_ready(READY_TIMEOUT, || ready(protocol, address, payload))
        .await?;
    Ok((process, address))
}

/// A target in front of the provider, answering.
struct Running {
    process: Option<PeerProcess>,
    address: SocketAddr,
}

async fn start_target(
    target: Target,
    protocol: Protocol,
    binaries: &Binaries,
    pinning: &Pinning,
    provider: SocketAddr,
    options: &Options,
) -> anyhow::Result<Running> {
    if target == Target::Direct {
        return Ok(Running {
            process: None,
            address: provider,
        });
    }
    let dir = PeerProcess::temp_dir(&format!("bench-{}-{}", protocol.name(), target.name()))?;
    let address = loopback(free_port()?);
    let cpus = pinning.target.as_deref();
    let maxconn = (options.rss_connections + options.connections) * 2 + 100;
    let command = match target {
        Target::Direct => bail!("the direct target has no process"),
        Target::Nginx => {
            let nginx = which("nginx").ok_or_else(|| {
                anyhow!("nginx is not installed (scripts/bench-proxy.sh installs it)")
            })?;
            let config = dir.path().join("nginx.conf");
            std::fs::write(
                &config,
                nginx_config(protocol, dir.path(), address, provider),
            )?;
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
        Target::HaproxyTcp | Target::HaproxyHttp => {
            let haproxy = which("haproxy").ok_or_else(|| {
                anyhow!("haproxy is not installed (scripts/bench-proxy.sh installs it)")
            })?;
            let config = dir.path().join("haproxy.cfg");
            let l7 = target == Target::HaproxyHttp;
            std::fs::write(
                &config,
                haproxy_config(protocol, l7, address, provider, maxconn),
            )?;
            let mut command = pinned(cpus, pinning.nice, &haproxy);
            command.arg("-db").arg("-f").arg(&config);
            command
        }
        Target::Causeway => {
            let admin = loopback(free_port()?);
            let config = dir.path().join("causeway-proxy.yaml");
            std::fs::write(&config, causeway_config(protocol, admin, address, provider))?;
            let mut command = pinned(cpus, pinning.nice, &binaries.proxy);
            command.arg("--config").arg(&config);
            command
        }
    };
    let mut process = PeerProcess::spawn(target.name(), command, dir)?;
    let payload = options.payload_bytes;
    process
        .wait_ready(READY_TIMEOUT, || ready(protocol, address, payload))
        .await?;
    Ok(Running {
        process: Some(process),
        address,
    })
}

/// Every figure of one target for one protocol.
#[derive(Debug, Clone, Serialize)]
struct TargetResult {
    target: Target,
    rate: LoadResult,
    rate_cpu_s: Option<f64>,
    rate_others_cores: f64,
    saturate: LoadResult,
    saturate_cpu_s: Option<f64>,
    saturate_others_cores: f64,
    held: Option<LoadResult>,
    rss_idle_kib: Option<u64>,
    rss_held_kib: Option<u64>,
    hwm_kib: Option<u64>,
}

/// CPU milliseconds per 1,000 answered requests.
fn cpu_ms_per_1k(cpu_s: Option<f64>, load: &LoadResult) -> Option<f64> {
    cpu_s
        .filter(|_| load.ok > 0)
        .map(|s| s * 1e6 / load.ok as f64)
}

fn seconds(s: f64) -> u64 {
    s.ceil().max(1.0) as u64
}

/// What every target of one protocol is benchmarked with.
struct Bench<'a> {
    protocol: Protocol,
    binaries: &'a Binaries,
    pinning: &'a Pinning,
    /// The provider's address and pid.
    provider: (SocketAddr, u32),
    tools: &'a Tools,
    /// The run's scratch directory (request file, h2load logs).
    work: &'a Path,
    options: &'a Options,
}

async fn bench_target(target: Target, bench: &Bench<'_>) -> anyhow::Result<TargetResult> {
    let Bench {
        protocol,
        binaries,
        pinning,
        provider: (provider, provider_pid),
        tools,
        work,
        options,
    } = *bench;
    let running = start_target(target, protocol, binaries, pinning, provider, options).await?;
    let pids = running
        .process
        .as_ref()
        .map(|p| process_tree(p.pid()))
        .unwrap_or_default();
    let measured = !pids.is_empty();
    let path = match protocol {
        Protocol::Grpc => GRPC_PATH,
        Protocol::Http => HTTP_PATH,
    };
    let h2load = H2load {
        program: tools.h2load.clone(),
        protocol,
        url: format!("http://{}{path}", running.address),
        request_file: work.join("grpc-request.bin"),
        log_file: work.join(format!("{}-{}.log", protocol.name(), target.name())),
    };
    let generate = |program: &Path, args: Vec<String>| {
        let program = program.to_path_buf();
        let pids = pids.clone();
        let log_file = h2load.log_file.clone();
        async move {
            // h2load appends to its log file: every run starts from an empty one.
            match std::fs::remove_file(&log_file) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error).with_context(|| format!("remove {}", log_file.display()));
                }
                _ => {}
            }
            run_generator(pinning, &program, &args, &pids, provider_pid).await
        }
    };

    // 1. Memory: idle, then the largest RSS while the connections are open and busy.
    let (mut held, mut rss_idle, mut rss_held) = (None, None, None);
    if measured {
        rss_idle = Some(memory_kib(&pids).0);
        println!(
            "   {}: {} connections, 1 request/s each, for {HOLD_SECONDS} s",
            target.name(),
            options.rss_connections
        );
        let run = generate(
            &h2load.program,
            h2load.args(options.rss_connections, 1, Some(1.0), HOLD_SECONDS),
        )
        .await?;
        rss_held = Some(run.max_rss_kib);
        held = Some(h2load.result(&run.stdout)?);
    }

    // 2. The fixed rate, after a warm-up run of the same shape.
    let per_connection = options.rate / options.connections as f64;
    let rate_args = |secs: f64| {
        h2load.args(
            options.connections,
            options.window,
            Some(per_connection),
            seconds(secs),
        )
    };
    println!(
        "   {}: {} rps (h2load --rps) for {} s",
        target.name(),
        options.rate,
        options.duration
    );
    generate(&h2load.program, rate_args(options.warmup)).await?;
    let rate_run = generate(&h2load.program, rate_args(options.duration)).await?;
    let rate = h2load.result(&rate_run.stdout)?;

    // 3. Saturation: h2load for gRPC, wrk for HTTP.
    println!(
        "   {}: saturation ({}) for {} s",
        target.name(),
        protocol.saturation_generator(),
        options.sat_duration
    );
    let (saturate, saturate_run) = match protocol {
        Protocol::Grpc => {
            let args = |secs| h2load.args(options.connections, options.window, None, secs);
            generate(&h2load.program, args(seconds(options.warmup))).await?;
            let run = generate(&h2load.program, args(seconds(options.sat_duration))).await?;
            (h2load.result(&run.stdout)?, run)
        }
        Protocol::Http => {
            let wrk_program = tools.wrk.clone().ok_or_else(|| {
                anyhow!("wrk is not installed (scripts/bench-proxy.sh installs it)")
            })?;
            let args = |secs: u64| -> Vec<String> {
                vec![
                    "-t".into(),
                    "1".into(),
                    "-c".into(),
                    options.connections.to_string(),
                    "-d".into(),
                    format!("{secs}s"),
                    "--latency".into(),
                    h2load.url.clone(),
                ]
            };
            generate(&wrk_program, args(seconds(options.warmup))).await?;
            let run = generate(&wrk_program, args(seconds(options.sat_duration))).await?;
            (wrk::parse(&run.stdout)?, run)
        }
    };
    let hwm = measured.then(|| memory_kib(&pids).1);
    drop(running);
    Ok(TargetResult {
        target,
        rate,
        rate_cpu_s: measured.then_some(rate_run.target_cpu_s),
        rate_others_cores: rate_run.others_cores,
        saturate,
        saturate_cpu_s: measured.then_some(saturate_run.target_cpu_s),
        saturate_others_cores: saturate_run.others_cores,
        held,
        rss_idle_kib: rss_idle,
        rss_held_kib: rss_held,
        hwm_kib: hwm,
    })
}

/// The external load generators.
struct Tools {
    h2load: PathBuf,
    wrk: Option<PathBuf>,
}

/// One protocol's rows of one run.
#[derive(Debug, Serialize)]
pub struct ProtocolRun {
    protocol: Protocol,
    targets: Vec<TargetResult>,
    failures: Vec<(String, String)>,
}

impl ProtocolRun {
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// Runs every target of `options` for `protocol`.
pub async fn bench(
    protocol: Protocol,
    binaries: &Binaries,
    pinning: &Pinning,
    options: &Options,
) -> anyhow::Result<ProtocolRun> {
    let tools = Tools {
        h2load: which("h2load").ok_or_else(|| {
            anyhow!("h2load is not installed (package nghttp2-client; scripts/bench-proxy.sh installs it)")
        })?,
        wrk: which("wrk"),
    };
    let work = tempfile::Builder::new()
        .prefix(&format!("proxy-bench-{}-", protocol.name()))
        .tempdir()?;
    std::fs::write(
        work.path().join("grpc-request.bin"),
        grpc_message(options.payload_bytes),
    )?;
    println!("== {}", protocol.title());
    let (provider_process, provider) =
        start_provider(protocol, binaries, pinning, options.payload_bytes).await?;
    let mut targets = Vec::new();
    let mut failures = Vec::new();
    for target in Target::from_kinds(&options.targets) {
        println!("== {} {}", protocol.name(), target.label(protocol));
        let bench = Bench {
            protocol,
            binaries,
            pinning,
            provider: (provider, provider_process.pid()),
            tools: &tools,
            work: work.path(),
            options,
        };
        match bench_target(target, &bench).await {
            Ok(result) => {
                println!(
                    "   {:.0} rps p50 {:.3} ms p99 {:.3} ms; saturation {:.0} rps",
                    result.rate.rps,
                    result.rate.latency_ms.p50,
                    result.rate.latency_ms.p99,
                    result.saturate.rps
                );
                targets.push(result);
            }
            Err(error) => {
                eprintln!("   {} not measured: {error:#}", target.name());
                failures.push((target.label(protocol).to_owned(), format!("{error:#}")));
            }
        }
    }
    drop(provider_process);
    Ok(ProtocolRun {
        protocol,
        targets,
        failures,
    })
}

/// The section these rows are appended to.
pub const SECTION: &str = "## Proxy: gRPC and HTTP data plane";

/// The section's heading and introduction, when the document has no such section yet.
pub const SECTION_INTRO: &str = "\
## Proxy: gRPC and HTTP data plane

See the method above the runs; every run of `scripts/bench-proxy.sh` with gRPC or HTTP in
`--protocols` appends itself below.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_is_both_modes_here() {
        assert_eq!(
            Target::from_kinds(&[Kind::Direct, Kind::Haproxy, Kind::Causeway]),
            [
                Target::Direct,
                Target::HaproxyTcp,
                Target::HaproxyHttp,
                Target::Causeway
            ]
        );
    }
}
