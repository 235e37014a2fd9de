//! `chaos-bench`: the resilience chaos experiment (issue 7), in one command
//! (`scripts/bench-chaos.sh`).
//!
//! 1. Starts three Dubbo providers, each its own process (this binary, `provider` mode), on free
//!    loopback ports.
//! 2. Starts causeway-proxy in this process (local mode) with the three as one service and a
//!    DestinationRule turning outlier detection on (`consecutiveGatewayErrors: 3`,
//!    `consecutive5xxErrors: 5`, `baseEjectionTime: 2s`, `maxEjectionPercent: 34`).
//! 3. Puts steady closed-loop load on the proxy: `--concurrency` callers, each on its own
//!    connection, calling `greet` back to back for `--duration-s` seconds. Callers never retry.
//! 4. At `--kill-at-s` sends SIGKILL to one provider; at `--restart-at-s` starts it again on the
//!    same port.
//! 5. Measures the success rate over the whole run, the failed calls and their kinds, the time
//!    from the kill to the ejection (the first `causeway_proxy_outlier_ejections_total` increase,
//!    polled every 10 ms) and to the last call routed to the dead provider, and the time from the
//!    restart to the first call the restarted provider answers, plus calls per second and the
//!    machine's load.
//!
//! Targets: success ≥ 99.9 %, ejection within 1 s, the restarted provider back in rotation. The
//! summary is printed and appended to the "Proxy: chaos (kill one of three providers)" section of
//! `docs/benchmarks.md` (unless `--no-doc`). Exit status 1 when a target is missed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use causeway_protocols::dubbo::{
    Call, DubboCodec, EventKind, Frame, Reply, Status, encode_request, encode_response,
    heartbeat_reply,
};
use causeway_protocols::hessian::Value;
use causeway_tests::bench::measure::load_average;
use causeway_tests::bench::report::{append_to_doc, machine, revision, utc_date, verdict};
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, FramedRead};

const INTERFACE: &str = "demo.Greeter";
const SECTION: &str = "## Proxy: chaos (kill one of three providers)";
const INTRO: &str = "## Proxy: chaos (kill one of three providers)

`scripts/bench-chaos.sh` (`tests/src/bin/chaos-bench.rs`): three Dubbo providers as separate
processes behind causeway-proxy (local mode, outlier detection on: `consecutiveGatewayErrors: 3`,
`consecutive5xxErrors: 5`, `baseEjectionTime: 2s`, `maxEjectionPercent: 34`), steady closed-loop
load from callers that never retry; one provider is killed with SIGKILL and later restarted on the
same port. Success counts every call answered with Dubbo status 20. Targets: success ≥ 99.9 %,
ejection within 1 s of the kill, the restarted provider back in rotation.
";

struct Options {
    duration: Duration,
    kill_at: Duration,
    restart_at: Duration,
    concurrency: usize,
    doc: bool,
}

fn parse(args: &[OsString]) -> anyhow::Result<Options> {
    let mut options = Options {
        duration: Duration::from_secs(30),
        kill_at: Duration::from_secs(10),
        restart_at: Duration::from_secs(18),
        concurrency: 32,
        doc: true,
    };
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value");
        match arg.as_str() {
            "--duration-s" => options.duration = Duration::from_secs(value()?.parse()?),
            "--kill-at-s" => options.kill_at = Duration::from_secs(value()?.parse()?),
            "--restart-at-s" => options.restart_at = Duration::from_secs(value()?.parse()?),
            "--concurrency" => options.concurrency = value()?.parse()?,
            "--no-doc" => options.doc = false,
            "--help" | "-h" => {
                println!(
                    "chaos-bench [--duration-s 30] [--kill-at-s 10] [--restart-at-s 18] [--concurrency 32] [--no-doc]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !(options.kill_at < options.restart_at && options.restart_at < options.duration) {
        bail!("need kill-at < restart-at < duration");
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chaos-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = if args.first().is_some_and(|a| a == "provider") {
        runtime.block_on(provider(&args[1..]))
    } else {
        runtime.block_on(run(&args))
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("chaos-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Provider mode: answers every `greet` with `"<tag>:greet"` and heartbeats, until killed.
async fn provider(args: &[OsString]) -> anyhow::Result<bool> {
    let port: u16 = args
        .first()
        .context("provider PORT TAG")?
        .to_string_lossy()
        .parse()?;
    let tag = args
        .get(1)
        .context("provider PORT TAG")?
        .to_string_lossy()
        .into_owned();
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let tag = tag.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
            tokio::spawn(async move {
                while let Some(bytes) = rx.recv().await {
                    if write.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            });
            let mut frames = FramedRead::new(read, DubboCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                let header = *frame.header();
                if header.is_event() {
                    if frame.event_kind() == Some(EventKind::Heartbeat)
                        && let Ok(reply) = heartbeat_reply(&header)
                    {
                        let _ = tx.send(reply.into_bytes());
                    }
                    continue;
                }
                if !header.is_two_way() {
                    continue;
                }
                let method = frame
                    .request()
                    .map(|v| v.method().to_owned())
                    .unwrap_or_default();
                let value = Value::String(format!("{tag}:{method}"));
                if let Ok(reply) = encode_response(header.request_id, Reply::Value(&value), None) {
                    let _ = tx.send(reply.into_bytes());
                }
            }
        });
    }
}

fn spawn_provider(port: u16, tag: &str) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .args(["provider", &port.to_string(), tag])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("start a provider")
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("provider on port {port} did not start")
}

/// What the callers saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// Failed calls by Dubbo status and message prefix.
    failed: BTreeMap<String, u64>,
    /// Answers per provider tag.
    by_tag: BTreeMap<String, u64>,
    /// When the provider that is killed (`p2`) last answered before its restart, since the
    /// start.
    last_dead_call: Option<Duration>,
    /// First answer of the restarted provider, since the start.
    first_after_restart: Option<Duration>,
}

fn request(id: i64) -> anyhow::Result<Frame> {
    let attachments = [("path", INTERFACE), ("interface", INTERFACE)];
    Ok(encode_request(
        id,
        true,
        &Call {
            dubbo_version: "2.0.2",
            service: INTERFACE,
            service_version: None,
            method: "greet",
            param_types: "Ljava/lang/String;",
            arguments: &[Value::String("chaos".into())],
            attachments: &attachments,
        },
    )?)
}

async fn caller(
    proxy: SocketAddr,
    start: Instant,
    stop: Instant,
    restart_at: Duration,
    tally: Arc<Mutex<Tally>>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(proxy).await?;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, DubboCodec::new());
    let mut id = 0i64;
    while Instant::now() < stop {
        id += 1;
        framed.send(request(id)?).await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), framed.next())
            .await
            .context("no answer in 10 s")?
            .context("proxy closed the connection")??;
        let at = start.elapsed();
        let status = reply.header().status;
        let mut tally = tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if status == Status::OK {
            let value = reply.response().ok().and_then(|v| v.value().ok().flatten());
            let tag = match value {
                Some(Value::String(s)) => s.split(':').next().unwrap_or("").to_owned(),
                _ => "?".to_owned(),
            };
            if tag == "p2" {
                if at < restart_at {
                    tally.last_dead_call = Some(at);
                }
                if at >= restart_at && tally.first_after_restart.is_none() {
                    tally.first_after_restart = Some(at);
                }
            }
            *tally.by_tag.entry(tag).or_default() += 1;
            tally.ok += 1;
        } else {
            let message = reply
                .response()
                .ok()
                .and_then(|v| v.error_message().map(str::to_owned))
                .unwrap_or_default();
            let short: String = message.chars().take(60).collect();
            *tally
                .failed
                .entry(format!("status {}: {short}", status.0))
                .or_default() += 1;
        }
    }
    Ok(())
}

fn ejections(metrics: &causeway_proxy::metrics::Metrics) -> f64 {
    metrics
        .encode()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("causeway_proxy_outlier_ejections_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn run(args: &[OsString]) -> anyhow::Result<bool> {
    let options = parse(args)?;
    let ports = [free_port()?, free_port()?, free_port()?];
    let mut children = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        children.push(spawn_provider(*port, &format!("p{}", i + 1))?);
    }
    for port in ports {
        wait_listening(port).await?;
    }
    let dir = tempfile::tempdir()?;
    let mut yaml = format!(
        "admin_listen: 127.0.0.1:0\nlisten: [{{protocol: dubbo, address: 127.0.0.1:0}}]\nworkload: chaos-bench\nservices:\n- host: demo.greeter\n  port: 20880\n  dubbo: {{interface: {INTERFACE}, methods: [greet]}}\n  endpoints:\n"
    );
    for port in ports {
        writeln!(
            yaml,
            "  - {{address: 127.0.0.1, port: {port}, labels: {{version: v1}}}}"
        )?;
    }
    yaml.push_str(
        "rules: |\n  apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: greeter}\n  spec:\n    host: demo.greeter\n    trafficPolicy:\n      outlierDetection: {consecutiveGatewayErrors: 3, consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 34}\n",
    );
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, &yaml)?;
    let config = causeway_proxy::config::ProxyConfig::load(&path)?;
    let proxy = causeway_proxy::app::start(config, Some(path)).await?;
    let address = proxy.dubbo_addr().context("the proxy's dubbo listener")?;

    let load_before = load_average();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let stop = start + options.duration;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
        callers.spawn(caller(
            address,
            start,
            stop,
            options.restart_at,
            tally.clone(),
        ));
    }

    // The kill, the ejection, the restart.
    tokio::time::sleep_until((start + options.kill_at).into()).await;
    let before = ejections(&proxy.metrics);
    let mut dead = children.remove(1);
    let killed_now = dead.kill();
    let killed = Instant::now();
    let _ = dead.wait();
    killed_now?;
    let mut ejected_after = None;
    while killed.elapsed() < Duration::from_secs(5) {
        if ejections(&proxy.metrics) > before {
            ejected_after = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep_until((start + options.restart_at).into()).await;
    children.insert(1, spawn_provider(ports[1], "p2")?);
    let load_during = load_average();
    while let Some(result) = callers.join_next().await {
        result??;
    }
    let elapsed = start.elapsed();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let final_metrics = proxy.metrics.encode().unwrap_or_default();
    drop(proxy);

    let tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let failed: u64 = tally.failed.values().sum();
    let total = tally.ok + failed;
    let success = if total == 0 {
        0.0
    } else {
        tally.ok as f64 / total as f64
    };
    let kill_s = options.kill_at.as_secs_f64();
    // Negative: its last answer came before the kill (nothing was routed to it afterwards).
    let last_dead = tally.last_dead_call.map(|at| at.as_secs_f64() - kill_s);
    let returned = tally
        .first_after_restart
        .map(|at| at.as_secs_f64() - options.restart_at.as_secs_f64());
    let success_met = success >= 0.999;
    let ejection_met = ejected_after.is_some_and(|d| d <= Duration::from_secs(1));
    let return_met = returned.is_some();
    let relevant: Vec<&str> = final_metrics
        .lines()
        .filter(|l| {
            l.starts_with("causeway_proxy_outlier_ejections_total")
                || l.starts_with("causeway_proxy_retries_total")
                || l.starts_with("causeway_proxy_retries_refused_total")
                || l.starts_with("causeway_proxy_upstream_connect_failures_total")
        })
        .collect();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut run = String::new();
    writeln!(run, "### Run of {}\n", utc_date(now))?;
    writeln!(
        run,
        "Machine: {}; revision {}; load average before {load_before}, at the restart {load_during} (the proxy, the callers and the three providers share the cores). {} callers, {:.0} s, kill at {kill_s:.0} s, restart at {:.0} s.\n",
        machine(),
        revision(),
        options.concurrency,
        elapsed.as_secs_f64(),
        options.restart_at.as_secs_f64(),
    )?;
    writeln!(run, "| Measure | Result | Target | Verdict |")?;
    writeln!(run, "|---|---|---|---|")?;
    writeln!(
        run,
        "| success rate | {:.4} % ({} of {total} calls; {failed} failed) | ≥ 99.9 % | {} |",
        success * 100.0,
        tally.ok,
        verdict(success_met)
    )?;
    writeln!(
        run,
        "| kill → ejection (`causeway_proxy_outlier_ejections_total` +1) | {} | ≤ 1 s | {} |",
        ejected_after.map_or("none within 5 s".to_owned(), |d| format!(
            "{:.1} ms",
            d.as_secs_f64() * 1000.0
        )),
        verdict(ejection_met)
    )?;
    writeln!(
        run,
        "| kill → last call answered by the killed provider | {} | — | — |",
        last_dead.map_or("—".to_owned(), |s| format!("{:.1} ms", s * 1000.0))
    )?;
    writeln!(
        run,
        "| restart → first call answered by it | {} | back in rotation | {} |",
        returned.map_or("never".to_owned(), |s| format!("{s:.2} s")),
        verdict(return_met)
    )?;
    writeln!(
        run,
        "| throughput | {:.0} calls/s | — | — |",
        total as f64 / elapsed.as_secs_f64()
    )?;
    writeln!(run, "\nAnswers by provider: {:?}.", tally.by_tag)?;
    if !tally.failed.is_empty() {
        writeln!(run, "Failed calls by kind: {:?}.", tally.failed)?;
    }
    writeln!(run, "\nProxy decisions (final metrics):\n\n```")?;
    for line in relevant {
        writeln!(run, "{line}")?;
    }
    writeln!(run, "```")?;
    println!("{run}");
    if options.doc {
        append_to_doc(
            &workspace_root().join("docs/benchmarks.md"),
            SECTION,
            INTRO,
            &run,
        )?;
    }
    Ok(success_met && ejection_met && return_met)
}
