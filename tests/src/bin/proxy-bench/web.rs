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

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::web_bench::{
    GRPC_METHOD, GRPC_PATH, GRPC_SERVICE, HTTP_HOST, HTTP_PATH, LoadResult, grpc_message, h2load,
    probe, wrk,
};
use serde::Serialize;
use tokio::io::AsyncReadExt as _;

use super::{
    Binaries, Kind, Options, Pinning, READY_TIMEOUT, cpu_seconds, loopback, machine_busy_seconds,
    memory_kib, mib, opt, pinned, process_tree, which,
};

/// How long the memory phase keeps its connections busy, seconds.
const HOLD_SECONDS: u64 = 4;
/// How often RSS is sampled while the connections are held.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);

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

fn nginx_config(
    protocol: Protocol,
    dir: &Path,
    listen: SocketAddr,
    provider: SocketAddr,
) -> String {
    // nginx 1.22 (Debian 12) turns HTTP/2 on per `listen`; without TLS that is prior knowledge,
    // which is what gRPC clients and h2load speak.
    let (listen_flags, location) = match protocol {
        Protocol::Grpc => (" http2", "grpc_pass grpc://provider;"),
        Protocol::Http => (
            "",
            "proxy_pass http://provider;\n            proxy_http_version 1.1;\n            \
             proxy_set_header Connection \"\";",
        ),
    };
    format!(
        "# Generated by proxy-bench: one process (one core), an L7 {protocol} proxy to the provider
# with kept-alive upstream connections. No master, as for the Dubbo rows.
daemon off;
master_process off;
worker_rlimit_nofile 16384;
pid {pid};
error_log {log} warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    # A benchmark connection lives for the whole run: no request-count or idle limits.
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    upstream provider {{
        server {provider};
        keepalive 128;
        keepalive_requests 1000000000;
    }}
    server {{
        listen {listen}{listen_flags};
        location / {{
            {location}
        }}
    }}
}}
",
        protocol = protocol.name(),
        pid = dir.join("nginx.pid").display(),
        log = dir.join("error.log").display(),
    )
}

fn haproxy_config(
    protocol: Protocol,
    l7: bool,
    listen: SocketAddr,
    provider: SocketAddr,
    maxconn: usize,
) -> String {
    let (mode, bind_proto, server_proto) = match (l7, protocol) {
        (false, _) => ("tcp", "", ""),
        (true, Protocol::Grpc) => ("http", " proto h2", " proto h2"),
        (true, Protocol::Http) => ("http", "", ""),
    };
    let reuse = if l7 {
        "    http-reuse always\n    option http-keep-alive\n"
    } else {
        ""
    };
    format!(
        "# Generated by proxy-bench: one thread (one core), `mode {mode}` in front of the {protocol}
# provider.
global
    nbthread 1
    maxconn {maxconn}

defaults
    mode {mode}
    timeout connect 5s
    timeout client 120s
    timeout server 120s
{reuse}
frontend web
    bind {listen}{bind_proto}
    default_backend provider

backend provider
    server provider {provider}{server_proto}
",
        protocol = protocol.name(),
    )
}

fn causeway_config(
    protocol: Protocol,
    admin: SocketAddr,
    listen: SocketAddr,
    provider: SocketAddr,
) -> String {
    // gRPC callers dial the proxy's own address; the proxy finds the table by the service
    // (`causeway.bench.echo`). HTTP callers send `Host: <the listener>`, which the service
    // lists as a domain, as a client configured with the proxy's address would.
    let service = match protocol {
        Protocol::Grpc => format!(
            "- host: {GRPC_SERVICE}\n  port: {port}\n  protocol: grpc\n  methods: [{GRPC_METHOD}]\n",
            port = provider.port()
        ),
        Protocol::Http => format!(
            "- host: {HTTP_HOST}\n  port: {port}\n  protocol: http\n  domains: [\"{listen}\"]\n",
            port = provider.port()
        ),
    };
    format!(
        "# Generated by proxy-bench: one {protocol} service whose static endpoint is the provider.
admin_listen: {admin}
listen:
- {{protocol: {protocol}, address: {listen}}}
workload: proxy-bench
services:
{service}  endpoints:
  - {{address: {ip}, port: {port}, labels: {{version: v1, app: bench-provider}}}}
",
        protocol = protocol.name(),
        ip = provider.ip(),
        port = provider.port(),
    )
}

// ---------------------------------------------------------------------------------------------
// Running the generators.

/// What one generator run measured on the side of the target.
struct Sampled {
    stdout: String,
    /// Target CPU seconds over the run.
    target_cpu_s: f64,
    /// Cores busy with processes outside the benchmark over the run.
    others_cores: f64,
    /// The largest target `VmRSS` sampled while the generator ran, KiB.
    max_rss_kib: u64,
}

/// Runs `program args` on the client CPU, sampling the target (`pids`) meanwhile.
async fn run_generator(
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
            () = tokio::time::sleep(RSS_SAMPLE_EVERY) => {
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
struct H2load {
    program: PathBuf,
    protocol: Protocol,
    url: String,
    request_file: PathBuf,
    log_file: PathBuf,
}

impl H2load {
    /// Arguments for `connections` connections, `streams` in flight on each (HTTP/1.1: no
    /// pipelining, always 1), `rps` per connection or as fast as they go, for `seconds`.
    fn args(
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

    fn result(&self, stdout: &str) -> anyhow::Result<LoadResult> {
        let summary = h2load::parse_summary(stdout)?;
        let log = std::fs::read_to_string(&self.log_file)
            .with_context(|| format!("read {}", self.log_file.display()))?;
        h2load::result(&summary, &h2load::parse_log(&log)?)
    }
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

// ---------------------------------------------------------------------------------------------
// Report.

/// The Markdown of one protocol's rows.
pub fn render(run: &ProtocolRun, options: &Options) -> String {
    let protocol = run.protocol;
    let mut out = String::new();
    let direct = run.targets.iter().find(|t| t.target == Target::Direct);
    let haproxy = run.targets.iter().find(|t| t.target == Target::HaproxyTcp);
    let _ = writeln!(out, "#### {}\n", protocol.title());
    let _ = writeln!(
        out,
        "At {} rps (h2load `--rps`, {} connections; ms from each request's start):\n",
        options.rate, options.connections
    );
    let _ = writeln!(
        out,
        "| Target | other load (cores) | achieved rps | p50 | p90 | p99 | max | errors | added p50 | added p99 | CPU ms per 1,000 req |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for t in &run.targets {
        let l = &t.rate.latency_ms;
        let added = |f: fn(&LoadResult) -> f64| {
            direct
                .filter(|d| d.target != t.target)
                .map_or("–".to_owned(), |d| {
                    format!("{:+.3}", f(&t.rate) - f(&d.rate))
                })
        };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} |",
            t.target.label(protocol),
            t.rate_others_cores,
            t.rate.rps,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            t.rate.errors,
            added(|r| r.latency_ms.p50),
            added(|r| r.latency_ms.p99),
            opt(cpu_ms_per_1k(t.rate_cpu_s, &t.rate), 1),
        );
    }
    let shape = match protocol {
        Protocol::Grpc => format!(
            "h2load, {} connections × {} streams",
            options.connections, options.window
        ),
        Protocol::Http => format!(
            "wrk, {} connections, one request in flight each",
            options.connections
        ),
    };
    let _ = writeln!(out, "\nSaturation ({shape}):\n");
    let _ = writeln!(
        out,
        "| Target | other load (cores) | rps | ÷ direct | ÷ HAProxy L4 | p50 ms | p99 ms | errors | target CPU (% of a core) | CPU ms per 1,000 req |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for t in &run.targets {
        let ratio = |base: Option<&TargetResult>| {
            base.filter(|b| b.saturate.rps > 0.0)
                .map_or("–".to_owned(), |b| {
                    format!("{:.2}×", t.saturate.rps / b.saturate.rps)
                })
        };
        let cores = t
            .saturate_cpu_s
            .map(|s| s / t.saturate.duration_s.max(f64::EPSILON) * 100.0);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {} | {} | {:.3} | {:.3} | {} | {} | {} |",
            t.target.label(protocol),
            t.saturate_others_cores,
            t.saturate.rps,
            ratio(direct),
            ratio(haproxy),
            t.saturate.latency_ms.p50,
            t.saturate.latency_ms.p99,
            t.saturate.errors,
            opt(cores, 0),
            opt(cpu_ms_per_1k(t.saturate_cpu_s, &t.saturate), 1),
        );
    }
    let _ = writeln!(
        out,
        "\nMemory ({} connections, one request a second each, for {HOLD_SECONDS} s):\n",
        options.rss_connections
    );
    let _ = writeln!(
        out,
        "| Target | RSS idle | largest RSS with {} connections | answered OK / failed | peak RSS (VmHWM) over its turn |",
        options.rss_connections
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for t in run.targets.iter().filter(|t| t.target != Target::Direct) {
        let answered = t
            .held
            .as_ref()
            .map_or("–".to_owned(), |h| format!("{} / {}", h.ok, h.errors));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.target.label(protocol),
            mib(t.rss_idle_kib),
            mib(t.rss_held_kib),
            answered,
            mib(t.hwm_kib),
        );
    }
    for (label, error) in &run.failures {
        let _ = writeln!(out, "\n**{label} not measured**: {error}");
    }
    out
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

    #[test]
    fn configs_point_at_the_provider() {
        let (admin, listen, provider) = (loopback(30000), loopback(30001), loopback(30002));
        let grpc = nginx_config(Protocol::Grpc, Path::new("/tmp/x"), listen, provider);
        assert!(grpc.contains("listen 127.0.0.1:30001 http2;"));
        assert!(
            grpc.contains("grpc_pass grpc://provider;") && grpc.contains("server 127.0.0.1:30002;")
        );
        let http = nginx_config(Protocol::Http, Path::new("/tmp/x"), listen, provider);
        assert!(
            http.contains("proxy_http_version 1.1;") && http.contains("listen 127.0.0.1:30001;")
        );

        let l4 = haproxy_config(Protocol::Grpc, false, listen, provider, 100);
        assert!(l4.contains("mode tcp") && !l4.contains("proto h2"));
        let l7 = haproxy_config(Protocol::Grpc, true, listen, provider, 100);
        assert!(
            l7.contains("mode http") && l7.contains("server provider 127.0.0.1:30002 proto h2")
        );

        let grpc = causeway_config(Protocol::Grpc, admin, listen, provider);
        assert!(grpc.contains("protocol: grpc") && grpc.contains("host: causeway.bench.echo"));
        let http = causeway_config(Protocol::Http, admin, listen, provider);
        assert!(http.contains("domains: [\"127.0.0.1:30001\"]") && http.contains("port: 30002"));
    }

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
