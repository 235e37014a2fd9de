//! `dubbo-load`: an open-loop Dubbo load generator with HDR latency histograms.
//!
//! Three modes (see `causeway_tests::dubbo_bench::load`):
//! - `--rate RPS`: open loop, requests on a fixed schedule spread over `--connections`,
//!   latency from each request's intended send time (coordinated-omission free);
//! - `--saturate`: closed loop, `--window` requests in flight per connection, for maximum
//!   throughput;
//! - `--hold N`: open N connections, send `--requests` requests on each, keep them open until
//!   stdin closes (for measuring a proxy's memory per connection).
//!
//! Output is JSON lines on stdout: progress events (`{"event":"measure_start"}`,
//! `{"event":"measure_end"}`, `{"event":"holding"}`) and last the result (`{"report":{…}}` or
//! `{"hold":{…}}`): achieved rps, errors, lost requests and p50/p90/p99/p99.9/max latency in ms.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use causeway_tests::dubbo_bench::DEFAULT_PAYLOAD_BYTES;
use causeway_tests::dubbo_bench::load::{self, DEFAULT_DRAIN, Spec};

const USAGE: &str = "\
usage: dubbo-load --target ADDR (--rate RPS | --saturate | --hold N) [options]

  --target ADDR        where to send: a Dubbo provider or a proxy in front of one
  --rate RPS           open loop: RPS requests per second in total, on a fixed schedule
  --saturate           closed loop: keep --window requests in flight per connection
  --hold N             open N connections, send --requests on each, hold until stdin closes
  --connections N      connections for --rate and --saturate (default: 64)
  --window N           requests in flight per connection with --saturate (default: 8)
  --requests N         requests per connection with --hold (default: 5)
  --warmup-s S         discarded lead-in (default: 5)
  --duration-s S       measured window (default: 20)
  --drain-s S          wait this long after the window for answers in flight (default: 5)
  --payload-bytes N    length of the request's string argument (default: 1024)
  --threads N          runtime threads for --saturate and --hold (default: 1)

Prints JSON lines: events, then {\"report\": …} (or {\"hold\": …}).";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Rate(f64),
    Saturate,
    Hold(usize),
}

#[derive(Debug)]
struct Options {
    spec: Spec,
    mode: Mode,
    window: usize,
    requests: usize,
    threads: usize,
}

fn seconds(text: &str, flag: &str) -> anyhow::Result<Duration> {
    let value: f64 = text.parse().with_context(|| format!("{flag} {text:?}"))?;
    ensure!(
        value.is_finite() && value >= 0.0,
        "{flag} must not be negative"
    );
    Ok(Duration::from_secs_f64(value))
}

fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut target = None;
    let mut mode = None;
    let mut spec = Spec {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        connections: 64,
        warmup: Duration::from_secs(5),
        duration: Duration::from_secs(20),
        drain: DEFAULT_DRAIN,
        payload_bytes: DEFAULT_PAYLOAD_BYTES,
    };
    let (mut window, mut requests, mut threads) = (8, 5, 1);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => target = Some(value()?.parse().context("--target")?),
            "--rate" => mode = Some(Mode::Rate(value()?.parse().context("--rate")?)),
            "--saturate" => mode = Some(Mode::Saturate),
            "--hold" => mode = Some(Mode::Hold(value()?.parse().context("--hold")?)),
            "--connections" => spec.connections = value()?.parse().context("--connections")?,
            "--window" => window = value()?.parse().context("--window")?,
            "--requests" => requests = value()?.parse().context("--requests")?,
            "--warmup-s" => spec.warmup = seconds(&value()?, "--warmup-s")?,
            "--duration-s" => spec.duration = seconds(&value()?, "--duration-s")?,
            "--drain-s" => spec.drain = seconds(&value()?, "--drain-s")?,
            "--payload-bytes" => {
                spec.payload_bytes = value()?.parse().context("--payload-bytes")?;
            }
            "--threads" => threads = value()?.parse().context("--threads")?,
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    spec.target = target.ok_or_else(|| anyhow!("--target is required\n{USAGE}"))?;
    let mode = mode.ok_or_else(|| anyhow!("one of --rate, --saturate, --hold is required"))?;
    ensure!(
        spec.duration > Duration::ZERO,
        "--duration-s must be positive"
    );
    Ok(Some(Options {
        spec,
        mode,
        window,
        requests,
        threads,
    }))
}

/// Prints one JSON line and flushes, so a driver reading the pipe sees it at once.
fn emit(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn event(name: &str) {
    emit(&serde_json::json!({ "event": name }));
}

fn run(options: Options) -> anyhow::Result<()> {
    if let Mode::Rate(rps) = options.mode {
        // Threads and blocking sockets: see the module docs of `load` for why not tokio.
        let report = load::run_rate(&options.spec, rps, &event)?;
        emit(&serde_json::json!({ "report": report }));
        return Ok(());
    }
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        match options.mode {
            Mode::Hold(connections) => {
                let release = async {
                    // Held until the driver closes our stdin (or exits).
                    // (tokio's stdin needs a feature the workspace does not enable; a
                    // blocking read on the blocking pool is the same thing.)
                    let _ = tokio::task::spawn_blocking(|| {
                        let mut sink = Vec::new();
                        std::io::stdin().read_to_end(&mut sink)
                    })
                    .await;
                };
                let report = load::run_hold(
                    options.spec.target,
                    connections,
                    options.requests,
                    options.spec.payload_bytes,
                    &event,
                    release,
                )
                .await?;
                emit(&serde_json::json!({ "hold": report }));
            }
            _ => {
                let report = load::run_saturate(&options.spec, options.window, &event).await?;
                emit(&serde_json::json!({ "report": report }));
            }
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => match run(options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("dubbo-load: {error:#}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dubbo-load: {error:#}");
            ExitCode::from(2)
        }
    }
}
