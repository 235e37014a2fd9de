//! The Dubbo load generators.
//!
//! - [`run_rate`]: **open loop**. Requests leave on a fixed global schedule (`rps`, spread round
//!   robin over the connections) whatever the responses do; latency is measured from each
//!   request's intended send time. The schedule is kept by one OS thread sleeping with
//!   `nanosleep` (tokio's timer has a 1 ms resolution, five times the 0.2 ms the issue measures),
//!   writing with blocking sockets; one reader thread per connection takes the responses. At the
//!   issue's 2,000 rps over 64 connections that is a handful of wake-ups per millisecond.
//! - [`run_saturate`]: **closed loop** for maximum throughput: every connection keeps `window`
//!   requests in flight and sends a new one per response, batching whatever is due into one
//!   write. Runs on tokio (efficiency matters more than timer precision there).
//! - [`run_hold`]: opens many connections, sends a few requests on each, and keeps them open
//!   until told to close (the RSS measurement).
//!
//! Progress is reported through `events` (`measure_start`, `measure_end`, `holding`) so a driver
//! can sample the target's CPU time exactly over the measured window.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::{LoadReport, Percentiles, Template, frames, histogram, id_at, instant_of, record};

/// How long to keep reading after the last request for answers still in flight; requests still
/// unanswered then count as lost.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Reader threads and tasks look at the stop condition this often when no data comes.
const POLL: Duration = Duration::from_millis(20);

/// What both timed modes share.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where to send (the provider, or a proxy in front of it).
    pub target: SocketAddr,
    /// Connections, all opened before the run starts.
    pub connections: usize,
    /// Discarded lead-in (connections, caches and the target's allocator warm up).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// See [`DEFAULT_DRAIN`].
    pub drain: Duration,
    /// Length of the request's string argument.
    pub payload_bytes: usize,
}

/// Open loop: the low bits of a request id carry how late the sender wrote it (µs, saturating),
/// the rest its intended send time (ns since the epoch, good for ~4.8 hours). A response thus
/// also yields the latency from the actual send, which leaves out the generator's own
/// scheduling delays on a busy machine.
const LAG_BITS: u32 = 19;
const LAG_MASK: i64 = (1 << LAG_BITS) - 1;

/// The measured window, by intended send time.
#[derive(Debug, Clone, Copy)]
struct Window {
    epoch: Instant,
    start: Instant,
    end: Instant,
    /// [`LAG_BITS`] in open loop, 0 when ids are plain send times.
    lag_bits: u32,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }
}

/// What one connection's reader saw.
#[derive(Debug)]
struct ReadResult {
    latency: hdrhistogram::Histogram<u64>,
    /// Open loop: latency from the actual send.
    service: hdrhistogram::Histogram<u64>,
    received: u64,
    errors: u64,
    io_error: bool,
}

impl ReadResult {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: histogram()?,
            service: histogram()?,
            received: 0,
            errors: 0,
            io_error: false,
        })
    }

    /// Accounts for the complete frames at the front of `buf`; returns the bytes they took.
    fn on_bytes(
        &mut self,
        buf: &[u8],
        window: &Window,
        received_total: &mut u64,
        mut on_response: impl FnMut(),
    ) -> anyhow::Result<usize> {
        let now = Instant::now();
        frames(buf, |header| {
            if header.is_request() || header.is_event() {
                // Nothing in the benchmark sends the generator requests or events.
                return;
            }
            *received_total += 1;
            on_response();
            let id = header.request_id;
            let intended = instant_of(window.epoch, id >> window.lag_bits);
            if window.contains(intended) {
                self.received += 1;
                if !header.status.is_ok() {
                    self.errors += 1;
                }
                let latency = now.saturating_duration_since(intended);
                record(&mut self.latency, latency);
                if window.lag_bits > 0 {
                    let lag = Duration::from_micros(u64::try_from(id & LAG_MASK).unwrap_or(0));
                    record(&mut self.service, latency.saturating_sub(lag));
                }
            }
        })
    }
}

/// Sums per-connection results into the report.
fn report(
    mode: &str,
    spec: &Spec,
    results: Vec<ReadResult>,
    sent: u64,
    connection_errors: u64,
) -> anyhow::Result<LoadReport> {
    let (mut latency, mut service) = (histogram()?, histogram()?);
    let (mut received, mut errors, mut io_errors) = (0, 0, 0);
    for result in results {
        latency
            .add(&result.latency)
            .context("merge latency histograms")?;
        service
            .add(&result.service)
            .context("merge latency histograms")?;
        received += result.received;
        errors += result.errors;
        io_errors += u64::from(result.io_error);
    }
    let duration_s = spec.duration.as_secs_f64();
    Ok(LoadReport {
        mode: mode.to_owned(),
        target: spec.target.to_string(),
        connections: spec.connections,
        target_rps: None,
        window: None,
        duration_s,
        sent,
        received,
        errors,
        lost: sent.saturating_sub(received),
        connection_errors: connection_errors.max(io_errors),
        achieved_rps: received as f64 / duration_s,
        latency_ms: Percentiles::of(&latency),
        from_send_ms: (!service.is_empty()).then(|| Percentiles::of(&service)),
        send_lag_ms: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Open loop.

/// Per-connection state the sender shares with that connection's reader.
#[derive(Debug, Default)]
struct Progress {
    sent: AtomicU64,
    done: AtomicBool,
}

/// Runs the open-loop schedule: `rps` requests per second in total. Blocks the calling thread.
pub fn run_rate(spec: &Spec, rps: f64, events: &dyn Fn(&str)) -> anyhow::Result<LoadReport> {
    ensure!(rps.is_finite() && rps > 0.0, "the rate must be positive");
    ensure!(spec.connections > 0, "at least one connection is needed");
    let template = Template::request(spec.payload_bytes)?;
    let mut streams = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let stream = std::net::TcpStream::connect_timeout(&spec.target, Duration::from_secs(5))
            .with_context(|| format!("connect to {}", spec.target))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let epoch = Instant::now();
    // A short lead so every reader thread is up before the first send.
    let start = epoch + Duration::from_millis(50);
    let window = Window {
        epoch,
        start: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
        lag_bits: LAG_BITS,
    };
    let deadline = window.end + spec.drain;

    let mut readers = Vec::with_capacity(spec.connections);
    let mut progress = Vec::with_capacity(spec.connections);
    for (index, stream) in streams.iter().enumerate() {
        let reader = stream
            .try_clone()
            .context("clone a socket for its reader")?;
        let shared = Arc::new(Progress::default());
        progress.push(shared.clone());
        let handle = std::thread::Builder::new()
            .name(format!("reader-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || read_blocking(reader, window, deadline, &shared))
            .context("start a reader thread")?;
        readers.push(handle);
    }

    let mut lag = histogram()?;
    let mut buf = Vec::with_capacity(template.len());
    let mut alive = vec![true; streams.len()];
    let (mut sent_in_window, mut connection_errors) = (0u64, 0u64);
    let mut started = false;
    let nanos_per_request = 1e9 / rps;
    for k in 0u64.. {
        let intended = start + Duration::from_nanos((k as f64 * nanos_per_request) as u64);
        if intended >= window.end {
            break;
        }
        if !started && intended >= window.start {
            sleep_until(window.start);
            events("measure_start");
            started = true;
        }
        sleep_until(intended);
        let index = (k % streams.len() as u64) as usize;
        let in_window = window.contains(intended);
        if in_window {
            // Sent or not, it was due: unanswered ones count as lost.
            sent_in_window += 1;
        }
        let (Some(stream), Some(true)) = (streams.get_mut(index), alive.get(index).copied()) else {
            continue;
        };
        buf.clear();
        let lag_us = Instant::now()
            .saturating_duration_since(intended)
            .as_micros();
        let lag_field = i64::try_from(lag_us).unwrap_or(LAG_MASK).min(LAG_MASK);
        template.put((id_at(epoch, intended) << LAG_BITS) | lag_field, &mut buf);
        if stream.write_all(&buf).is_err() {
            connection_errors += 1;
            if let Some(alive) = alive.get_mut(index) {
                *alive = false;
            }
            continue;
        }
        if let Some(shared) = progress.get(index) {
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
        if in_window {
            record(&mut lag, Instant::now().saturating_duration_since(intended));
        }
    }
    sleep_until(window.end);
    events("measure_end");
    for shared in &progress {
        shared.done.store(true, Ordering::Release);
    }
    let mut results = Vec::with_capacity(readers.len());
    for reader in readers {
        match reader.join() {
            Ok(result) => results.push(result?),
            Err(_) => bail!("a reader thread panicked"),
        }
    }
    let mut report = report("rate", spec, results, sent_in_window, connection_errors)?;
    report.target_rps = Some(rps);
    report.send_lag_ms = Some(Percentiles::of(&lag));
    Ok(report)
}

/// The last stretch before a send is spun rather than slept: `nanosleep` wakes up to ~50 µs late
/// (the kernel's default timer slack) plus the wake-up itself, which would add ~0.1 ms to every
/// measured latency, half the whole budget for a hop.
const SPIN: Duration = Duration::from_micros(100);

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now + SPIN {
        std::thread::sleep(at - now - SPIN);
    }
    while Instant::now() < at {
        // Not `yield_now`: on a busy machine a yield can cost a whole scheduler slice.
        std::hint::spin_loop();
    }
}

fn read_blocking(
    mut stream: std::net::TcpStream,
    window: Window,
    deadline: Instant,
    progress: &Progress,
) -> anyhow::Result<ReadResult> {
    let mut result = ReadResult::new()?;
    stream.set_read_timeout(Some(POLL))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut filled, mut received_total) = (0usize, 0u64);
    loop {
        if progress.done.load(Ordering::Acquire)
            && received_total >= progress.sent.load(Ordering::Relaxed)
        {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        if filled == buf.len() {
            // A frame larger than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let Some(space) = buf.get_mut(filled..) else {
            break;
        };
        match stream.read(space) {
            Ok(0) => {
                result.io_error = true;
                break;
            }
            Ok(n) => filled += n,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => {
                result.io_error = true;
                break;
            }
        }
        let data = buf.get(..filled).unwrap_or_default();
        let used = result.on_bytes(data, &window, &mut received_total, || {})?;
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Closed loop (saturation).

/// Per-connection state the writer task shares with the reader task.
#[derive(Debug)]
struct Credit {
    permits: Semaphore,
    sent: AtomicU64,
    sent_in_window: AtomicU64,
    done: AtomicBool,
}

/// Runs every connection with `window` requests in flight for the whole run; returns the
/// throughput and the latency from send to response.
pub async fn run_saturate(
    spec: &Spec,
    window_per_connection: usize,
    events: &dyn Fn(&str),
) -> anyhow::Result<LoadReport> {
    ensure!(spec.connections > 0, "at least one connection is needed");
    ensure!(window_per_connection > 0, "the window must be positive");
    let template = Arc::new(Template::request(spec.payload_bytes)?);
    let mut streams = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let stream = TcpStream::connect(spec.target)
            .await
            .with_context(|| format!("connect to {}", spec.target))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let epoch = Instant::now();
    let start = epoch + Duration::from_millis(10);
    let window = Window {
        epoch,
        start: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
        lag_bits: 0,
    };
    let deadline = window.end + spec.drain;
    let mut credits = Vec::new();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for stream in streams {
        let (read, write) = stream.into_split();
        let credit = Arc::new(Credit {
            permits: Semaphore::new(window_per_connection),
            sent: AtomicU64::new(0),
            sent_in_window: AtomicU64::new(0),
            done: AtomicBool::new(false),
        });
        credits.push(credit.clone());
        writers.push(tokio::spawn(write_window(
            write,
            template.clone(),
            credit.clone(),
            window,
            start,
            window_per_connection,
        )));
        readers.push(tokio::spawn(read_window(read, credit, window, deadline)));
    }
    tokio::time::sleep_until(window.start.into()).await;
    events("measure_start");
    tokio::time::sleep_until(window.end.into()).await;
    events("measure_end");
    let mut results = Vec::with_capacity(readers.len());
    for reader in readers {
        results.push(reader.await.context("a reader task failed")??);
    }
    // Only now close the sending halves: nginx's `stream` proxy ends the whole session when the
    // client half-closes (`proxy_half_close off`, its default), dropping answers in flight.
    for writer in writers {
        drop(writer.await);
    }
    let sent = credits
        .iter()
        .map(|c| c.sent_in_window.load(Ordering::Relaxed))
        .sum();
    let mut report = report("saturate", spec, results, sent, 0)?;
    report.window = Some(window_per_connection);
    Ok(report)
}

/// Returns the write half, still open (see [`run_saturate`]).
async fn write_window(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    template: Arc<Template>,
    credit: Arc<Credit>,
    window: Window,
    start: Instant,
    max_batch: usize,
) -> tokio::net::tcp::OwnedWriteHalf {
    tokio::time::sleep_until(start.into()).await;
    let mut buf = Vec::with_capacity(max_batch * template.len());
    let mut last_id = 0i64;
    loop {
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(window.end.into(), credit.permits.acquire()).await
        else {
            break;
        };
        permit.forget();
        let mut batch = 1usize;
        while batch < max_batch {
            match credit.permits.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    batch += 1;
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        buf.clear();
        for _ in 0..batch {
            // Strictly increasing, so ids stay unique within the connection.
            let id = id_at(window.epoch, now).max(last_id + 1);
            last_id = id;
            template.put(id, &mut buf);
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
        credit.sent.fetch_add(batch as u64, Ordering::Relaxed);
        if window.contains(now) {
            credit
                .sent_in_window
                .fetch_add(batch as u64, Ordering::Relaxed);
        }
    }
    credit.done.store(true, Ordering::Release);
    write
}

async fn read_window(
    mut read: tokio::net::tcp::OwnedReadHalf,
    credit: Arc<Credit>,
    window: Window,
    deadline: Instant,
) -> anyhow::Result<ReadResult> {
    let mut result = ReadResult::new()?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut received_total = 0u64;
    loop {
        if credit.done.load(Ordering::Acquire)
            && received_total >= credit.sent.load(Ordering::Relaxed)
        {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        match tokio::time::timeout(POLL, read.read_buf(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => {
                result.io_error = true;
                break;
            }
            Ok(Ok(_)) => {}
        }
        let used = result.on_bytes(&buf, &window, &mut received_total, || {
            credit.permits.add_permits(1);
        })?;
        buf.advance(used);
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Many connections, held open.

/// What [`run_hold`] did before holding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoldReport {
    /// Connections open and answering.
    pub connections: usize,
    /// Requests answered OK (all of them, when everything worked).
    pub ok: u64,
    /// Requests that failed or got a non-OK status.
    pub failed: u64,
}

/// Opens `connections` connections (a few at a time, as clients arrive), sends
/// `requests_per_connection` requests one after another on each, then calls
/// `events("holding")` and keeps every connection open until `release` resolves.
pub async fn run_hold(
    target: SocketAddr,
    connections: usize,
    requests_per_connection: usize,
    payload_bytes: usize,
    events: &dyn Fn(&str),
    release: impl std::future::Future<Output = ()>,
) -> anyhow::Result<HoldReport> {
    let template = Arc::new(Template::request(payload_bytes)?);
    let mut tasks = tokio::task::JoinSet::new();
    // 64 connects in flight: a thousand at once would overflow the listen backlogs.
    let gate = Arc::new(Semaphore::new(64));
    for _ in 0..connections {
        let template = template.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let result = exchange(target, &template, requests_per_connection).await;
            drop(permit);
            result
        });
    }
    let mut held = Vec::with_capacity(connections);
    let mut report = HoldReport::default();
    while let Some(joined) = tasks.join_next().await {
        match joined.context("a connection task failed")? {
            Ok((stream, ok)) => {
                report.ok += ok;
                report.failed += requests_per_connection as u64 - ok;
                held.push(stream);
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "a held connection failed");
                report.failed += requests_per_connection as u64;
            }
        }
    }
    report.connections = held.len();
    events("holding");
    release.await;
    drop(held);
    Ok(report)
}

/// Sends `count` requests one at a time; returns the stream and how many were answered OK.
async fn exchange(
    target: SocketAddr,
    template: &Template,
    count: usize,
) -> anyhow::Result<(TcpStream, u64)> {
    let mut stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect to {target}"))?;
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(template.len());
    let mut buf = BytesMut::with_capacity(4096);
    let mut ok = 0u64;
    for id in 1..=count as i64 {
        out.clear();
        template.put(id, &mut out);
        stream.write_all(&out).await?;
        let mut answered = false;
        while !answered {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf))
                .await
                .context("no response within 10 s")??;
            ensure!(n > 0, "the connection closed");
            let used = frames(&buf, |header| {
                if header.is_response() && !header.is_event() && header.request_id == id {
                    answered = true;
                    ok += u64::from(header.status.is_ok());
                }
            })?;
            buf.advance(used);
        }
    }
    Ok((stream, ok))
}

/// One request through `target`, answered OK: the readiness probe for every target.
pub async fn probe(target: SocketAddr, payload_bytes: usize) -> anyhow::Result<()> {
    let template = Template::request(payload_bytes)?;
    let (_stream, ok) =
        tokio::time::timeout(Duration::from_secs(5), exchange(target, &template, 1))
            .await
            .context("no answer within 5 s")??;
    ensure!(ok == 1, "the request was not answered OK");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dubbo_bench::provider;

    async fn provider() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let response = Arc::new(Template::response(1024).unwrap());
        tokio::spawn(provider::serve(listener, response));
        address
    }

    fn spec(target: SocketAddr) -> Spec {
        Spec {
            target,
            connections: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            drain: Duration::from_secs(2),
            payload_bytes: 1024,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_keeps_its_schedule() {
        let target = provider().await;
        let events = std::sync::Mutex::new(Vec::new());
        let report = tokio::task::spawn_blocking(move || {
            let report = run_rate(&spec(target), 500.0, &|e| {
                events.lock().unwrap().push(e.to_owned())
            })
            .unwrap();
            (report, events.into_inner().unwrap())
        })
        .await
        .unwrap();
        let (report, events) = report;
        assert_eq!(events, ["measure_start", "measure_end"]);
        // 500 rps for 0.4 s.
        assert_eq!(report.sent, 200, "{report:?}");
        assert_eq!((report.received, report.errors, report.lost), (200, 0, 0));
        assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 < 50.0);
        assert!(report.send_lag_ms.is_some());
        let from_send = report.from_send_ms.unwrap();
        assert!(from_send.p50 > 0.0 && from_send.p50 <= report.latency_ms.p50);
    }

    #[tokio::test]
    async fn saturation_answers_everything_it_sends() {
        let target = provider().await;
        let report = run_saturate(&spec(target), 8, &|_| {}).await.unwrap();
        assert!(report.received > 100, "{report:?}");
        assert_eq!((report.errors, report.lost), (0, 0), "{report:?}");
        assert_eq!(report.received, report.sent);
    }

    #[tokio::test]
    async fn held_connections_were_all_answered() {
        let target = provider().await;
        let report = run_hold(target, 50, 3, 1024, &|_| {}, async {})
            .await
            .unwrap();
        assert_eq!(
            report,
            HoldReport {
                connections: 50,
                ok: 150,
                failed: 0
            }
        );
        probe(target, 1024).await.unwrap();
    }
}
