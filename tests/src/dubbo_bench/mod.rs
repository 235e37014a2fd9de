//! The Dubbo data-plane benchmark's building blocks: the frames it sends and answers, a fast
//! fixed-response provider ([`provider`]), the open-loop and saturation load generators
//! ([`load`]), and the JSON report they print ([`LoadReport`]).
//!
//! The binaries `dubbo-provider`, `dubbo-load` and `proxy-bench` (`scripts/bench-proxy.sh`) are
//! thin shells around this module, so the logic is unit-tested here.
//!
//! Every request carries its **intended send time** as its request id (nanoseconds since the
//! run's epoch). A response therefore says by itself when its request should have left, which
//! keeps the load generator free of per-request bookkeeping and makes latencies
//! coordinated-omission free: they are measured from the schedule, not from when a backed-up
//! sender finally managed to write. Ids stay unique per connection because the schedule is
//! strictly increasing.

pub mod load;
pub mod provider;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use causeway_protocols::dubbo::{Call, HEADER_LEN, Header, Reply, encode_request, encode_response};
use causeway_protocols::hessian::Value;
use serde::{Deserialize, Serialize};

/// The interface every benchmark request calls (the proxy's generated config routes it).
pub const INTERFACE: &str = "io.causeway.bench.EchoService";
/// Its version.
pub const VERSION: &str = "1.0.0";
/// The method called.
pub const METHOD: &str = "echo";
/// The payload: 1 KiB request and response strings.
pub const DEFAULT_PAYLOAD_BYTES: usize = 1024;

/// A complete frame whose request id (header bytes 4..11) is patched per use.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
}

// === impl Template ===

impl Template {
    /// A two-way Hessian 2 request `EchoService.echo(String)` whose argument is `payload_bytes`
    /// ASCII characters, with the attachments a Java consumer sends.
    pub fn request(payload_bytes: usize) -> anyhow::Result<Self> {
        let argument = Value::String(payload(payload_bytes));
        let call = Call {
            dubbo_version: "2.0.2",
            service: INTERFACE,
            service_version: Some(VERSION),
            method: METHOD,
            param_types: "Ljava/lang/String;",
            arguments: std::slice::from_ref(&argument),
            attachments: &[
                ("path", INTERFACE),
                ("interface", INTERFACE),
                ("version", VERSION),
                ("timeout", "3000"),
            ],
        };
        let frame = encode_request(0, true, &call).context("encode the request template")?;
        Ok(Self {
            bytes: frame.as_bytes().to_vec(),
        })
    }

    /// An OK response carrying a `payload_bytes`-character string, as a Java provider answers a
    /// 2.0.2 caller (`RESPONSE_VALUE_WITH_ATTACHMENTS`, `dubbo=2.0.2`).
    pub fn response(payload_bytes: usize) -> anyhow::Result<Self> {
        let value = Value::String(payload(payload_bytes));
        let frame = encode_response(0, Reply::Value(&value), Some(&[("dubbo", "2.0.2")]))
            .context("encode the response template")?;
        Ok(Self {
            bytes: frame.as_bytes().to_vec(),
        })
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always `false`: a frame has at least a header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the frame with `id` as its request id.
    pub fn put(&self, id: i64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(slot) = out.get_mut(start + 4..start + 12) {
            slot.copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// `len` printable ASCII characters (one UTF-8 byte each, so the Hessian string is `len` bytes
/// of text after its length prefix).
fn payload(len: usize) -> String {
    (b'a'..=b'z').cycle().take(len).map(char::from).collect()
}

/// Splits the complete frames off the front of `buf`: calls `each` with every complete frame's
/// header and returns how many bytes they took. A partial frame stays for the next read.
pub fn frames(buf: &[u8], mut each: impl FnMut(&Header)) -> anyhow::Result<usize> {
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..)
        && rest.len() >= HEADER_LEN
    {
        let header = match Header::decode(rest) {
            Ok(header) => header,
            Err(error) => bail!("the peer sent something that is not Dubbo: {error}"),
        };
        let len = header.frame_len();
        if rest.len() < len {
            break;
        }
        each(&header);
        pos += len;
    }
    Ok(pos)
}

/// Request ids are nanoseconds since the run's epoch.
pub fn id_at(epoch: Instant, at: Instant) -> i64 {
    i64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(i64::MAX)
}

/// The instant a request id stands for.
pub fn instant_of(epoch: Instant, id: i64) -> Instant {
    epoch + Duration::from_nanos(u64::try_from(id).unwrap_or(0))
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest value.
    pub max: f64,
    /// The mean.
    pub mean: f64,
    /// How many values.
    pub count: u64,
}

// === impl Percentiles ===

impl Percentiles {
    /// Reads a histogram of nanoseconds.
    pub fn of(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1e6,
            count: histogram.len(),
        }
    }
}

/// A latency histogram in nanoseconds, 1 µs to 100 s at three significant digits.
pub fn histogram() -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    hdrhistogram::Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
        .context("create a latency histogram")
}

/// Records `value` nanoseconds, clamped into the histogram's range (a value outside it would
/// otherwise be dropped, hiding the worst latencies).
pub fn record(histogram: &mut hdrhistogram::Histogram<u64>, value: Duration) {
    let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
    let clamped = ns.clamp(histogram.low(), histogram.high());
    // Cannot fail: the value is within the bounds the histogram was built with.
    let _ = histogram.record(clamped);
}

/// What `dubbo-load` prints as its last line (and `proxy-bench` reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// `rate` (open loop), `saturate` (closed loop, window per connection) or `hold`.
    pub mode: String,
    /// The address loaded.
    pub target: String,
    /// Connections used.
    pub connections: usize,
    /// The open-loop rate asked for.
    pub target_rps: Option<f64>,
    /// Requests in flight per connection (saturation).
    pub window: Option<usize>,
    /// Length of the measured window (after warm-up), seconds.
    pub duration_s: f64,
    /// Requests sent inside the measured window (by their intended send time).
    pub sent: u64,
    /// Responses to those requests.
    pub received: u64,
    /// Responses with a status other than OK.
    pub errors: u64,
    /// Requests of the window that got no response before the drain deadline.
    pub lost: u64,
    /// Connections that failed (connect or I/O error).
    pub connection_errors: u64,
    /// Responses received per second of the measured window.
    pub achieved_rps: f64,
    /// Latency from the intended send time to the response.
    pub latency_ms: Percentiles,
    /// Open loop only: latency from the actual send, i.e. without the generator's own send lag
    /// (not coordinated-omission free; shows what a hop adds on a busy machine).
    pub from_send_ms: Option<Percentiles>,
    /// Open loop only: how late the sender actually wrote each request, after its intended
    /// time (a diagnostic of the generator itself; already included in the latency).
    pub send_lag_ms: Option<Percentiles>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_protocols::dubbo::Frame;

    #[test]
    fn templates_are_valid_frames_with_one_kib_strings() {
        let request = Template::request(1024).unwrap();
        let mut out = Vec::new();
        request.put(42, &mut out);
        let frame = Frame::from_bytes(bytes::BytesMut::from(&out[..])).unwrap();
        assert_eq!(frame.request_id(), 42);
        let view = frame.request().unwrap();
        assert_eq!((view.service(), view.method()), (INTERFACE, METHOD));
        assert!(frame.body().len() > 1024 && frame.body().len() < 1200);

        let response = Template::response(1024).unwrap();
        let mut out = Vec::new();
        response.put(-7, &mut out);
        let frame = Frame::from_bytes(bytes::BytesMut::from(&out[..])).unwrap();
        assert_eq!(frame.request_id(), -7);
        assert!(frame.header().status.is_ok());
        assert!(frame.body().len() > 1024 && frame.body().len() < 1100);
    }

    #[test]
    fn frames_are_split_and_partial_ones_wait() {
        let template = Template::response(10).unwrap();
        let mut buf = Vec::new();
        template.put(1, &mut buf);
        template.put(2, &mut buf);
        template.put(3, &mut buf);
        let cut = buf.len() - 5;
        let mut ids = Vec::new();
        let used = frames(&buf[..cut], |h| ids.push(h.request_id)).unwrap();
        assert_eq!(ids, [1, 2]);
        assert_eq!(used, 2 * template.len());
        assert!(frames(b"GET / HTTP/1.1\r\n\r\n", |_| {}).is_err());
    }

    #[test]
    fn ids_round_trip_send_times() {
        let epoch = Instant::now();
        let at = epoch + Duration::from_micros(1234);
        assert_eq!(instant_of(epoch, id_at(epoch, at)), at);
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_dropped() {
        let mut h = histogram().unwrap();
        record(&mut h, Duration::from_nanos(10));
        record(&mut h, Duration::from_secs(1000));
        assert_eq!(h.len(), 2);
        let p = Percentiles::of(&h);
        assert!(p.max >= 99_000.0);
    }
}
