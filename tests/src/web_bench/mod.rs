//! The gRPC and HTTP data-plane benchmark's own pieces: the messages it sends and answers, the
//! fixed-response gRPC and HTTP/1.1 providers ([`provider`]), and readers of the two external
//! load generators' output, `h2load` ([`h2load`]) and `wrk` ([`wrk`]).
//!
//! The load itself comes from those generators (Debian's `nghttp2-client` and `wrk`), so the
//! figures are comparable with anyone else's h2load/wrk runs; `proxy-bench --protocols grpc,http`
//! (`scripts/bench-proxy.sh`) drives them. The `web-provider` binary is a thin shell around
//! [`provider`].

pub mod h2load;
pub mod probe;
pub mod provider;
pub mod wrk;

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Serialize;

/// Latency percentiles of one load phase, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The largest value.
    pub max: f64,
}

/// What one run of an external load generator measured, in the same shape for both.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadResult {
    /// `h2load` or `wrk`.
    pub generator: &'static str,
    /// The measured run's length as the generator reports it, seconds.
    pub duration_s: f64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests that failed: other statuses, reset streams, socket errors, timeouts.
    pub errors: u64,
    /// `ok` per second of the run.
    pub rps: f64,
    /// Latency of the answered requests.
    pub latency_ms: Latency,
}

/// The gRPC method every benchmark call invokes: service `causeway.bench.Echo`, whose lower-cased
/// name is also the host the proxy's generated config serves it as.
pub const GRPC_PATH: &str = "/causeway.bench.Echo/Echo";
/// The gRPC service, as the proxy's local config names its host.
pub const GRPC_SERVICE: &str = "causeway.bench.echo";
/// The gRPC method name (the proxy's `request_method` label).
pub const GRPC_METHOD: &str = "Echo";
/// The HTTP path every benchmark request asks for.
pub const HTTP_PATH: &str = "/echo";
/// The HTTP host the proxy's generated config serves.
pub const HTTP_HOST: &str = "bench.http";

/// One length-prefixed gRPC message (uncompressed) whose protobuf body is field 1 (`bytes`)
/// holding `payload_bytes` bytes: what a `message Echo { bytes payload = 1; }` looks like on the
/// wire, so the total is the payload plus a few bytes of framing.
pub fn grpc_message(payload_bytes: usize) -> Bytes {
    let mut protobuf = BytesMut::with_capacity(payload_bytes + 16);
    // Field 1, wire type 2 (length-delimited).
    protobuf.put_u8(0x0a);
    put_varint(&mut protobuf, payload_bytes as u64);
    protobuf.put_bytes(b'x', payload_bytes);
    let mut frame = BytesMut::with_capacity(protobuf.len() + 5);
    // Not compressed; then the big-endian length. A u32 holds any payload a bench would use,
    // and a larger one is cut to u32::MAX rather than wrapping silently.
    frame.put_u8(0);
    frame.put_u32(u32::try_from(protobuf.len()).unwrap_or(u32::MAX));
    frame.put_slice(&protobuf);
    frame.freeze()
}

/// The HTTP response body: `payload_bytes` ASCII bytes.
pub fn http_body(payload_bytes: usize) -> Bytes {
    Bytes::from(vec![b'x'; payload_bytes])
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_one_frame_of_one_bytes_field() {
        let frame = grpc_message(1024);
        // 5-byte prefix, tag, two-byte varint 1024 (0x80 0x08), payload.
        assert_eq!(frame.len(), 5 + 1 + 2 + 1024);
        assert_eq!(frame[0], 0);
        assert_eq!(
            u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]),
            1027
        );
        assert_eq!(&frame[5..8], &[0x0a, 0x80, 0x08]);
        assert!(frame[8..].iter().all(|b| *b == b'x'));
        assert_eq!(
            grpc_message(3).as_ref(),
            &[0, 0, 0, 0, 5, 0x0a, 3, b'x', b'x', b'x']
        );
    }
}
