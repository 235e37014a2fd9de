//! HTTP helpers the proxy needs: authority and trace headers.
//!
//! This module owns:
//!
//! - the routing authority of a request: `:authority` (the URI authority in `http` types) or
//!   `Host`, without port, lower-cased ([`request_authority`], [`normalize_authority`]);
//! - W3C Trace Context `traceparent` parsing, formatting and child spans ([`TraceParent`]);
//! - Zipkin B3 headers, single (`b3`) and multi (`X-B3-*`) ([`B3`]);
//! - the `traceparent` the proxy forwards for a request ([`child_traceparent`],
//!   [`child_traceparent_with`], which also reads THeader headers or Dubbo attachments).
//!
//! Trace ids are generated from the standard library's randomly keyed hasher: unique and
//! unpredictable enough for tracing, with no extra dependency (they are not secrets).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Uri};

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// The B3 single header.
pub const B3_SINGLE: &str = "b3";
/// B3 multi header: trace id.
pub const B3_TRACE_ID: &str = "x-b3-traceid";
/// B3 multi header: span id.
pub const B3_SPAN_ID: &str = "x-b3-spanid";
/// B3 multi header: parent span id.
pub const B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// B3 multi header: sampling decision.
pub const B3_SAMPLED: &str = "x-b3-sampled";
/// B3 multi header: debug flag.
pub const B3_FLAGS: &str = "x-b3-flags";

/// A trace header that cannot be used; offsets count from the start of the (trimmed) value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceContextError {
    /// An invalid `traceparent`.
    #[error("invalid traceparent at byte {offset}: {reason}")]
    Traceparent {
        /// Offset of the offending character.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An invalid B3 header.
    #[error("invalid b3 header at byte {offset}: {reason}")]
    B3 {
        /// Offset of the offending character.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

// === Authority ===

/// The routing authority of a request: the URI authority (HTTP/2 `:authority`, or an
/// absolute-form HTTP/1 target) if present, else the `Host` header; see [`normalize_authority`].
pub fn request_authority(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(authority) = uri.authority() {
        return normalize_authority(authority.as_str());
    }
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    normalize_authority(host)
}

/// Normalises an authority for routing: drops user info and port, lower-cases, drops one
/// trailing dot of a fully-qualified name. IPv6 literals keep their brackets (`[::1]`).
/// Returns `None` for an empty or malformed value.
pub fn normalize_authority(value: &str) -> Option<String> {
    let value = value.trim();
    let host_port = value.rsplit_once('@').map_or(value, |(_, rest)| rest);
    let host = if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        let (host, rest) = host_port.split_at(end + 1);
        if !rest.is_empty() && !is_port(rest.strip_prefix(':')?) {
            return None;
        }
        host
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return None,
            None => host_port,
        }
    };
    let valid = match host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        // An IPv6 literal, possibly with a zone id (`[fe80::1%eth0]`).
        Some(literal) => {
            !literal.is_empty()
                && literal
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'%'))
        }
        None => {
            // A name or IPv4 address; one trailing dot (fully qualified) is dropped.
            let name = host.strip_suffix('.').unwrap_or(host);
            return (!name.is_empty()
                && !name.ends_with('.')
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')))
            .then(|| name.to_ascii_lowercase());
        }
    };
    valid.then(|| host.to_ascii_lowercase())
}

fn is_port(port: &str) -> bool {
    // An empty port ("host:") is allowed by RFC 3986.
    port.len() <= 5 && port.bytes().all(|c| c.is_ascii_digit())
}

// === Ids ===

/// A 16-byte trace id (never all zeros when parsed or generated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id (never all zeros when parsed or generated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random non-zero trace id.
    pub fn random() -> TraceId {
        let high = u128::from(random_nonzero_u64());
        let low = u128::from(random_nonzero_u64());
        TraceId((high << 64 | low).to_be_bytes())
    }

    /// A 64-bit B3 trace id widened to 128 bits (left-padded with zeros), as Zipkin does.
    pub fn from_u64(id: u64) -> TraceId {
        TraceId(u128::from(id).to_be_bytes())
    }
}

impl SpanId {
    /// A random non-zero span id.
    pub fn random() -> SpanId {
        SpanId(random_nonzero_u64().to_be_bytes())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
}

/// A random non-zero u64 from a freshly keyed SipHash over a counter and the clock.
fn random_nonzero_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        hasher.write_u128(nanos);
        let value = hasher.finish();
        if value != 0 {
            return value;
        }
    }
}

/// Parses exactly `N` bytes of lower-case hex from `text` starting at `offset`.
fn parse_hex<const N: usize>(text: &[u8], offset: usize) -> Result<[u8; N], usize> {
    let mut out = [0u8; N];
    for (index, byte) in out.iter_mut().enumerate() {
        let at = offset + 2 * index;
        let high = text.get(at).and_then(|c| lower_hex(*c)).ok_or(at)?;
        let low = text.get(at + 1).and_then(|c| lower_hex(*c)).ok_or(at + 1)?;
        *byte = high << 4 | low;
    }
    Ok(out)
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

// === W3C traceparent ===

/// A W3C `traceparent`: `00-<trace-id>-<parent-id>-<flags>`.
///
/// Parsing accepts future versions as the spec requires (the first four fields, ignoring what
/// follows); formatting always writes version `00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id.
    pub trace_id: TraceId,
    /// The id of the caller's span (the parent of the receiver's span).
    pub parent_id: SpanId,
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// Length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// Parses a `traceparent` value (surrounding whitespace is ignored).
    pub fn parse(value: &str) -> Result<TraceParent, TraceContextError> {
        let text = value.trim().as_bytes();
        let invalid = |offset, reason| TraceContextError::Traceparent { offset, reason };
        let [version] = parse_hex::<1>(text, 0).map_err(|at| invalid(at, "bad version"))?;
        if version == 0xff {
            return Err(invalid(0, "version ff is forbidden"));
        }
        if text.len() < TRACEPARENT_LEN {
            return Err(invalid(text.len(), "too short"));
        }
        if version == 0 && text.len() != TRACEPARENT_LEN {
            return Err(invalid(
                TRACEPARENT_LEN,
                "version 00 must be exactly 55 characters",
            ));
        }
        if version > 0 && text.len() > TRACEPARENT_LEN && text.get(TRACEPARENT_LEN) != Some(&b'-') {
            return Err(invalid(
                TRACEPARENT_LEN,
                "future version fields must follow a '-'",
            ));
        }
        for dash in [2, 35, 52] {
            if text.get(dash) != Some(&b'-') {
                return Err(invalid(dash, "expected '-'"));
            }
        }
        let trace_id = parse_hex::<16>(text, 3).map_err(|at| invalid(at, "bad trace-id"))?;
        if trace_id == [0; 16] {
            return Err(invalid(3, "all-zero trace-id"));
        }
        let parent_id = parse_hex::<8>(text, 36).map_err(|at| invalid(at, "bad parent-id"))?;
        if parent_id == [0; 8] {
            return Err(invalid(36, "all-zero parent-id"));
        }
        let [flags] = parse_hex::<1>(text, 53).map_err(|at| invalid(at, "bad trace-flags"))?;
        Ok(TraceParent {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags,
        })
    }

    /// A new trace with a random trace id and span id.
    pub fn new_root(sampled: bool) -> TraceParent {
        TraceParent {
            trace_id: TraceId::random(),
            parent_id: SpanId::random(),
            flags: u8::from(sampled),
        }
    }

    /// Whether the sampled flag (bit 0) is set.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// The context to send downstream from span `span_id`: same trace and flags, `span_id` as
    /// the parent.
    pub fn child(&self, span_id: SpanId) -> TraceParent {
        TraceParent {
            parent_id: span_id,
            ..*self
        }
    }

    /// [`TraceParent::child`] with a new random span id.
    pub fn child_random(&self) -> TraceParent {
        self.child(SpanId::random())
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

// === B3 ===

/// A B3 sampling decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// `0`: do not sample.
    Deny,
    /// `1`: sample.
    Accept,
    /// `d` (single) or `X-B3-Flags: 1` (multi): sample and force debug.
    Debug,
}

/// B3 trace and span ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct B3Ids {
    /// The trace id; 64-bit ids are left-padded to 128 bits.
    pub trace_id: TraceId,
    /// Whether the trace id was sent as 128 bits (32 hex characters).
    pub trace_id_128: bool,
    /// The caller's span id.
    pub span_id: SpanId,
    /// The caller's parent span id, if sent.
    pub parent_span_id: Option<SpanId>,
}

/// Zipkin B3 propagation: ids (absent for a bare sampling decision) and a sampling decision
/// (absent when deferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct B3 {
    /// Trace and span ids.
    pub ids: Option<B3Ids>,
    /// The sampling decision.
    pub sampling: Option<Sampling>,
}

impl B3 {
    /// Parses the single header: `{trace}-{span}[-{sampling}[-{parent}]]` or a bare `{sampling}`.
    pub fn parse_single(value: &str) -> Result<B3, TraceContextError> {
        let text = value.trim();
        let invalid = |offset, reason| TraceContextError::B3 { offset, reason };
        if text.len() == 1 {
            let sampling = parse_sampling(text).ok_or(invalid(0, "bad sampling state"))?;
            return Ok(B3 {
                ids: None,
                sampling: Some(sampling),
            });
        }
        let mut parts = text.split('-');
        let trace = parts.next().unwrap_or_default();
        let (trace_id, trace_id_128) =
            parse_b3_trace_id(trace).map_err(|at| invalid(at, "bad trace id"))?;
        let mut offset = trace.len() + 1;
        let span = parts.next().ok_or(invalid(text.len(), "missing span id"))?;
        let span_id = parse_b3_span_id(span, offset).map_err(|at| invalid(at, "bad span id"))?;
        offset += span.len() + 1;
        let mut sampling = None;
        if let Some(state) = parts.next() {
            sampling = Some(parse_sampling(state).ok_or(invalid(offset, "bad sampling state"))?);
            offset += state.len() + 1;
        }
        let mut parent_span_id = None;
        if let Some(parent) = parts.next() {
            parent_span_id = Some(
                parse_b3_span_id(parent, offset).map_err(|at| invalid(at, "bad parent span id"))?,
            );
            offset += parent.len() + 1;
        }
        if parts.next().is_some() {
            return Err(invalid(offset - 1, "too many fields"));
        }
        Ok(B3 {
            ids: Some(B3Ids {
                trace_id,
                trace_id_128,
                span_id,
                parent_span_id,
            }),
            sampling,
        })
    }

    /// Reads the multi headers (`X-B3-TraceId`, `X-B3-SpanId`, `X-B3-ParentSpanId`,
    /// `X-B3-Sampled`, `X-B3-Flags`) through `get` (header name in lower case → value);
    /// `Ok(None)` when none is present.
    pub fn from_multi<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<B3>, TraceContextError> {
        let invalid = |offset, reason| TraceContextError::B3 { offset, reason };
        let trace = get(B3_TRACE_ID).map(str::trim);
        let span = get(B3_SPAN_ID).map(str::trim);
        let sampled = get(B3_SAMPLED).map(str::trim);
        let debug = get(B3_FLAGS).map(str::trim) == Some("1");
        let ids = match (trace, span) {
            (Some(trace), Some(span)) => {
                let (trace_id, trace_id_128) =
                    parse_b3_trace_id(trace).map_err(|at| invalid(at, "bad X-B3-TraceId"))?;
                let span_id =
                    parse_b3_span_id(span, 0).map_err(|at| invalid(at, "bad X-B3-SpanId"))?;
                let parent_span_id = match get(B3_PARENT_SPAN_ID).map(str::trim) {
                    Some(parent) => Some(
                        parse_b3_span_id(parent, 0)
                            .map_err(|at| invalid(at, "bad X-B3-ParentSpanId"))?,
                    ),
                    None => None,
                };
                Some(B3Ids {
                    trace_id,
                    trace_id_128,
                    span_id,
                    parent_span_id,
                })
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    0,
                    "X-B3-TraceId and X-B3-SpanId must come together",
                ));
            }
        };
        let sampling = if debug {
            Some(Sampling::Debug)
        } else {
            match sampled {
                // "true"/"false" are what early B3 implementations sent.
                Some("1" | "true") => Some(Sampling::Accept),
                Some("0" | "false") => Some(Sampling::Deny),
                Some(_) => return Err(invalid(0, "bad X-B3-Sampled")),
                None => None,
            }
        };
        if ids.is_none() && sampling.is_none() {
            return Ok(None);
        }
        Ok(Some(B3 { ids, sampling }))
    }

    /// The single-header form of this context.
    pub fn to_single(&self) -> String {
        let sampling = self.sampling.map(|sampling| match sampling {
            Sampling::Deny => "0",
            Sampling::Accept => "1",
            Sampling::Debug => "d",
        });
        let Some(ids) = &self.ids else {
            return sampling.unwrap_or("1").to_string();
        };
        let trace = ids.trace_id.to_string();
        let trace = if ids.trace_id_128 {
            trace.as_str()
        } else {
            trace.get(16..).unwrap_or_default()
        };
        let mut out = format!("{trace}-{}", ids.span_id);
        if let Some(sampling) = sampling {
            out.push('-');
            out.push_str(sampling);
            if let Some(parent) = ids.parent_span_id {
                out.push('-');
                out.push_str(&parent.to_string());
            }
        }
        out
    }
}

fn parse_sampling(state: &str) -> Option<Sampling> {
    match state {
        "0" => Some(Sampling::Deny),
        "1" => Some(Sampling::Accept),
        "d" => Some(Sampling::Debug),
        _ => None,
    }
}

/// A 16- or 32-hex-character trace id; returns whether it was 128-bit. Errors give the offset.
fn parse_b3_trace_id(text: &str) -> Result<(TraceId, bool), usize> {
    let bytes = text.as_bytes();
    let (id, wide) = match bytes.len() {
        16 => (
            TraceId::from_u64(u64::from_be_bytes(parse_hex::<8>(bytes, 0)?)),
            false,
        ),
        32 => (TraceId(parse_hex::<16>(bytes, 0)?), true),
        len => return Err(len.min(32)),
    };
    if id.0 == [0; 16] {
        return Err(0);
    }
    Ok((id, wide))
}

/// A 16-hex-character span id at `offset` of the whole header (for error offsets).
fn parse_b3_span_id(text: &str, offset: usize) -> Result<SpanId, usize> {
    if text.len() != 16 {
        return Err(offset + text.len().min(16));
    }
    let id = parse_hex::<8>(text.as_bytes(), 0).map_err(|at| offset + at)?;
    if id == [0; 8] {
        return Err(offset);
    }
    Ok(SpanId(id))
}

// === What the proxy forwards ===

/// The `traceparent` the proxy forwards for a request carrying these HTTP headers: a child of
/// the incoming `traceparent`, else of the incoming B3 context (`b3`, then `X-B3-*`), with a new
/// random span id. `None` when the request carries no usable context: start one with
/// [`TraceParent::new_root`] if the proxy traces it.
pub fn child_traceparent(headers: &HeaderMap) -> Option<TraceParent> {
    child_traceparent_with(|name| headers.get(name).and_then(|value| value.to_str().ok()))
}

/// [`child_traceparent`] over any string map (THeader info headers, Dubbo attachments):
/// `get` receives lower-case header names.
///
/// An invalid `traceparent` is ignored (the spec says to restart from other context); B3 ids
/// keep the trace id (64-bit ids left-padded) and map Accept/Debug to sampled.
pub fn child_traceparent_with<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<TraceParent> {
    if let Some(parent) = get(TRACEPARENT).and_then(|value| TraceParent::parse(value).ok()) {
        return Some(parent.child_random());
    }
    let b3 = match get(B3_SINGLE) {
        Some(single) => B3::parse_single(single).ok(),
        None => B3::from_multi(&get).ok().flatten(),
    }?;
    let ids = b3.ids?;
    let sampled = matches!(b3.sampling, Some(Sampling::Accept | Sampling::Debug));
    Some(TraceParent {
        trace_id: ids.trace_id,
        parent_id: SpanId::random(),
        flags: u8::from(sampled),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn authorities() {
        let cases = [
            ("Example.COM:8080", Some("example.com")),
            ("example.com", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("user:pw@Host:80", Some("host")),
            ("[::1]:8080", Some("[::1]")),
            ("[FE80::1]", Some("[fe80::1]")),
            ("host:", Some("host")),
            (
                " svc.ns.svc.cluster.local:20880 ",
                Some("svc.ns.svc.cluster.local"),
            ),
            ("", None),
            (":80", None),
            ("host:port", None),
            ("[::1", None),
            ("[::1]x", None),
            ("a b", None),
            ("a/b", None),
            ("a..", None),
            ("[]", None),
            ("[fe80::1%eth0]:80", Some("[fe80::1%eth0]")),
            // Found by fuzzing: colons outside brackets made normalisation non-idempotent.
            ("Ns]p.COM:25:::67", None),
            ("a:b:80", None),
        ];
        for (input, expected) in cases {
            let normalized = normalize_authority(input);
            assert_eq!(normalized.as_deref(), expected, "{input:?}");
            if let Some(normalized) = normalized {
                assert_eq!(normalize_authority(&normalized), Some(normalized.clone()));
            }
        }
    }

    #[test]
    fn request_authority_prefers_uri() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "Host-Header:81".parse().unwrap());
        let absolute: Uri = "http://Uri-Host:80/x".parse().unwrap();
        assert_eq!(
            request_authority(&absolute, &headers).as_deref(),
            Some("uri-host")
        );
        let origin: Uri = "/x".parse().unwrap();
        assert_eq!(
            request_authority(&origin, &headers).as_deref(),
            Some("host-header")
        );
        assert_eq!(request_authority(&origin, &HeaderMap::new()), None);
    }

    #[test]
    fn traceparent_round_trip() {
        let parsed = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parsed.to_string(), EXAMPLE);
        assert!(parsed.sampled());
        let child = parsed.child(SpanId([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
        let random = parsed.child_random();
        assert_eq!(random.trace_id, parsed.trace_id);
        assert_ne!(random.parent_id, parsed.parent_id);
        assert_ne!(random.parent_id.0, [0; 8]);
        let root = TraceParent::new_root(false);
        assert!(!root.sampled());
        assert_eq!(TraceParent::parse(&root.to_string()).unwrap(), root);
    }

    #[test]
    fn traceparent_rejects() {
        let cases = [
            ("", 0),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", 54),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                55,
            ),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", 4),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", 3),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                36,
            ),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 2),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                54,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                55,
            ),
        ];
        for (input, offset) in cases {
            match TraceParent::parse(input) {
                Err(TraceContextError::Traceparent { offset: got, .. }) => {
                    assert_eq!(got, offset, "{input:?}")
                }
                other => panic!("{input:?} gave {other:?}"),
            }
        }
        // Future versions: extra fields after a '-' are ignored.
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert_eq!(TraceParent::parse(future).unwrap().to_string(), EXAMPLE);
    }

    #[test]
    fn b3_single() {
        let full = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
        let b3 = B3::parse_single(full).unwrap();
        let ids = b3.ids.unwrap();
        assert!(ids.trace_id_128);
        assert_eq!(ids.span_id.to_string(), "e457b5a2e4d86bd1");
        assert_eq!(ids.parent_span_id.unwrap().to_string(), "05e3ac9a4f6e3b90");
        assert_eq!(b3.sampling, Some(Sampling::Accept));
        assert_eq!(b3.to_single(), full);

        let short = B3::parse_single("a3ce929d0e0e4736-00f067aa0ba902b7").unwrap();
        let ids = short.ids.unwrap();
        assert!(!ids.trace_id_128);
        assert_eq!(ids.trace_id.to_string(), "0000000000000000a3ce929d0e0e4736");
        assert_eq!(short.sampling, None);
        assert_eq!(short.to_single(), "a3ce929d0e0e4736-00f067aa0ba902b7");

        assert_eq!(
            B3::parse_single("d").unwrap().sampling,
            Some(Sampling::Debug)
        );
        assert_eq!(B3::parse_single("0").unwrap().ids, None);
        for bad in [
            "",
            "x",
            "abc-def",
            "a3ce929d0e0e4736",
            "a3ce929d0e0e4736-00f067aa0ba902b7-2",
            "a3ce929d0e0e4736-00f067aa0ba902b7-1-05e3ac9a4f6e3b90-x",
            "0000000000000000-00f067aa0ba902b7",
        ] {
            assert!(B3::parse_single(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn b3_multi() {
        fn read(headers: &HeaderMap) -> Result<Option<B3>, TraceContextError> {
            B3::from_multi(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        }
        let mut headers = HeaderMap::new();
        assert_eq!(read(&headers).unwrap(), None);
        headers.insert(
            "X-B3-TraceId",
            "463ac35c9f6413ad48485a3953bb6124".parse().unwrap(),
        );
        assert!(read(&headers).is_err());
        headers.insert("X-B3-SpanId", "a2fb4a1d1a96d312".parse().unwrap());
        headers.insert("X-B3-ParentSpanId", "0020000000000001".parse().unwrap());
        headers.insert("X-B3-Sampled", "1".parse().unwrap());
        let b3 = read(&headers).unwrap().unwrap();
        assert_eq!(b3.sampling, Some(Sampling::Accept));
        assert_eq!(
            b3.ids.unwrap().parent_span_id.unwrap().to_string(),
            "0020000000000001"
        );
        headers.insert("X-B3-Flags", "1".parse().unwrap());
        assert_eq!(
            read(&headers).unwrap().unwrap().sampling,
            Some(Sampling::Debug)
        );
        headers.insert("X-B3-Sampled", "maybe".parse().unwrap());
        headers.remove("X-B3-Flags");
        assert!(read(&headers).is_err());
    }

    #[test]
    fn forwarded_traceparent() {
        let mut headers = HeaderMap::new();
        assert_eq!(child_traceparent(&headers), None);

        headers.insert(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"
                .parse()
                .unwrap(),
        );
        let from_b3 = child_traceparent(&headers).unwrap();
        assert_eq!(
            from_b3.trace_id.to_string(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert!(from_b3.sampled());

        headers.insert("traceparent", EXAMPLE.parse().unwrap());
        let child = child_traceparent(&headers).unwrap();
        assert_eq!(
            child.trace_id,
            TraceParent::parse(EXAMPLE).unwrap().trace_id
        );
        assert_eq!(child.flags, 1);
        assert_ne!(child.parent_id.to_string(), "00f067aa0ba902b7");

        // An invalid traceparent falls back to B3.
        headers.insert("traceparent", "garbage".parse().unwrap());
        assert_eq!(
            child_traceparent(&headers).unwrap().trace_id,
            from_b3.trace_id
        );

        // Any string map works, e.g. THeader info headers.
        let attachments = [
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ];
        let child = child_traceparent_with(|name| {
            attachments
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
        })
        .unwrap();
        assert_eq!(
            child.trace_id.to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert!(!child.sampled());
    }
}
