//! Header blocks: a caller's HPACK-decoded fields become an HTTP request head (pseudo-headers
//! checked as RFC 9113 §8.3 asks; HPACK decoding is [`super::hpack`]) or its trailers, and a
//! response head or trailers become the HPACK block the server writes.
//!
//! The server's encoder never adds to the peer's dynamic table: each field is a literal
//! "without indexing" (the status an index into the static table when it has one), so the
//! connection keeps no encoder state at all — per-connection memory is what this server
//! exists to keep small, and a response head is a few dozen bytes larger for it.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};

use super::hpack::Decoder;

/// Why a request head is refused: every case is a malformed request (a stream error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// HPACK that does not decode: the connection's decoding state is lost.
    #[error("a header block the HPACK decoder cannot read")]
    Compression,
    /// Over `SETTINGS_MAX_HEADER_LIST_SIZE`.
    #[error("header list larger than the server accepts")]
    TooLarge,
    /// A request HTTP/2 calls malformed.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
}

/// Names HTTP/2 forbids because they describe an HTTP/1.1 connection (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// A request head being assembled from decoded fields.
#[derive(Debug, Default)]
struct Pseudo {
    method: Option<Method>,
    scheme: Option<String>,
    authority: Option<String>,
    path: Option<String>,
}

/// Decodes a complete header block (HEADERS plus CONTINUATIONs) into a request head.
///
/// `max_list_size` bounds the decoded list as SETTINGS_MAX_HEADER_LIST_SIZE counts it.
pub fn decode_request(
    decoder: &mut Decoder,
    block: &[u8],
    max_list_size: usize,
) -> Result<Request<()>, HeadError> {
    let mut pseudo = Pseudo::default();
    let mut headers = HeaderMap::new();
    let mut list_size = 0usize;
    // The first problem wins; decoding goes on to the end either way, as the decoder's table
    // must see every field for the connection's later blocks to decode.
    let mut problem: Option<HeadError> = None;
    let mut regular_seen = false;
    decoder
        .decode(block, |name, value| {
            list_size = list_size.saturating_add(name.len() + value.len() + 32);
            if problem.is_some() {
                return;
            }
            if list_size > max_list_size {
                problem = Some(HeadError::TooLarge);
                return;
            }
            let result = if name.first() == Some(&b':') {
                if regular_seen {
                    Err(HeadError::Malformed("pseudo-header after a regular header"))
                } else {
                    pseudo.set(name, value)
                }
            } else {
                regular_seen = true;
                add_regular(&mut headers, name, value)
            };
            if let Err(error) = result {
                problem = Some(error);
            }
        })
        .map_err(|_| HeadError::Compression)?;
    if let Some(problem) = problem {
        return Err(problem);
    }
    pseudo.into_request(headers)
}

impl Pseudo {
    fn set(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        let text = || {
            String::from_utf8(value.to_vec())
                .map_err(|_| HeadError::Malformed("pseudo-header is not UTF-8"))
        };
        let slot_taken = HeadError::Malformed("pseudo-header repeated");
        match name {
            b":method" => {
                if self.method.is_some() {
                    return Err(slot_taken);
                }
                self.method = Some(
                    Method::from_bytes(value)
                        .map_err(|_| HeadError::Malformed("invalid :method"))?,
                );
            }
            b":scheme" => {
                if self.scheme.replace(text()?).is_some() {
                    return Err(slot_taken);
                }
            }
            b":authority" => {
                if self.authority.replace(text()?).is_some() {
                    return Err(slot_taken);
                }
            }
            b":path" => {
                if self.path.replace(text()?).is_some() {
                    return Err(slot_taken);
                }
            }
            _ => return Err(HeadError::Malformed("unknown pseudo-header")),
        }
        Ok(())
    }

    fn into_request(self, headers: HeaderMap) -> Result<Request<()>, HeadError> {
        let method = self.method.ok_or(HeadError::Malformed("missing :method"))?;
        let mut uri = Uri::builder();
        if method == Method::CONNECT {
            // CONNECT names only the authority (RFC 9113 §8.5).
            if self.scheme.is_some() || self.path.is_some() {
                return Err(HeadError::Malformed("CONNECT with :scheme or :path"));
            }
            let authority = self
                .authority
                .ok_or(HeadError::Malformed("CONNECT without :authority"))?;
            uri = uri.authority(authority);
        } else {
            let scheme = self.scheme.ok_or(HeadError::Malformed("missing :scheme"))?;
            let path = self.path.ok_or(HeadError::Malformed("missing :path"))?;
            if path.is_empty() {
                return Err(HeadError::Malformed("empty :path"));
            }
            uri = uri.scheme(scheme.as_str()).path_and_query(path);
            if let Some(authority) = self.authority {
                uri = uri.authority(authority);
            }
        }
        let uri = uri
            .build()
            .map_err(|_| HeadError::Malformed("invalid request target"))?;
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// Decodes a trailer block: regular fields only (a pseudo-header or an invalid field makes it
/// [`HeadError::Malformed`]).
pub fn decode_trailers(decoder: &mut Decoder, block: &[u8]) -> Result<HeaderMap, HeadError> {
    let mut trailers = HeaderMap::new();
    let mut malformed = false;
    decoder
        .decode(block, |name, value| {
            match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                (Ok(name), Ok(value)) if !name.as_str().starts_with(':') => {
                    trailers.append(name, value);
                }
                _ => malformed = true,
            }
        })
        .map_err(|_| HeadError::Compression)?;
    if malformed {
        return Err(HeadError::Malformed("invalid trailer field"));
    }
    Ok(trailers)
}

/// A request's `content-length`, when it has a valid one.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let length = first
        .to_str()
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or("invalid content-length")?;
    if values.any(|other| other != first) {
        return Err("conflicting content-length values");
    }
    Ok(Some(length))
}

fn add_regular(headers: &mut HeaderMap, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
    if name.iter().any(u8::is_ascii_uppercase) {
        return Err(HeadError::Malformed("upper-case header name"));
    }
    let name =
        HeaderName::from_bytes(name).map_err(|_| HeadError::Malformed("invalid header name"))?;
    if CONNECTION_SPECIFIC.contains(&name.as_str()) {
        return Err(HeadError::Malformed("connection-specific header"));
    }
    if name == http::header::TE && value != b"trailers" {
        return Err(HeadError::Malformed("TE other than \"trailers\""));
    }
    let value =
        HeaderValue::from_bytes(value).map_err(|_| HeadError::Malformed("invalid header value"))?;
    headers.append(name, value);
    Ok(())
}

/// Appends an HPACK integer with an `prefix_bits`-bit prefix whose high bits are `first`.
fn put_integer(out: &mut Vec<u8>, value: usize, prefix_bits: u32, first: u8) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        // Fits in the prefix, which is at most 7 bits wide.
        out.push(first | u8::try_from(value).unwrap_or(0));
        return;
    }
    out.push(first | u8::try_from(max).unwrap_or(0));
    let mut rest = value - max;
    while rest >= 128 {
        out.push(u8::try_from(rest % 128).unwrap_or(0) | 0x80);
        rest /= 128;
    }
    out.push(u8::try_from(rest).unwrap_or(0));
}

/// Appends a string literal, not Huffman-coded.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_integer(out, bytes.len(), 7, 0);
    out.extend_from_slice(bytes);
}

/// The static-table index of `:status` with this value, when there is one (RFC 7541 App. A).
fn status_index(status: StatusCode) -> Option<usize> {
    Some(match status.as_u16() {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => return None,
    })
}

/// Appends the fields of `headers`, leaving out those HTTP/2 forbids.
fn put_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        let name = name.as_str();
        if CONNECTION_SPECIFIC.contains(&name) || name == "te" {
            continue;
        }
        // Literal without indexing, new name.
        out.push(0x00);
        put_string(out, name.as_bytes());
        put_string(out, value.as_bytes());
    }
}

/// The HPACK block of a response head.
pub fn encode_response(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    match status_index(status) {
        Some(index) => put_integer(out, index, 7, 0x80),
        None => {
            // Literal without indexing, name `:status` from the static table (index 8).
            put_integer(out, 8, 4, 0x00);
            put_string(out, status.as_str().as_bytes());
        }
    }
    put_fields(out, headers);
}

/// The HPACK block of trailers.
pub fn encode_trailers(out: &mut Vec<u8>, trailers: &HeaderMap) {
    put_fields(out, trailers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(fields: &[(&[u8], &[u8])]) -> Result<Request<()>, HeadError> {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode(fields.iter().copied());
        decode_request(&mut Decoder::new(4096), &block, 16 * 1024)
    }

    const GRPC: &[(&[u8], &[u8])] = &[
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pkg.Svc/Call"),
        (b":authority", b"svc:50051"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];

    #[test]
    fn a_grpc_request_head_decodes() {
        let request = decode(GRPC).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().to_string(), "http://svc:50051/pkg.Svc/Call");
        assert_eq!(request.version(), Version::HTTP_2);
        assert_eq!(request.headers()["content-type"], "application/grpc");
        assert_eq!(request.headers().len(), 2);
    }

    #[test]
    fn malformed_heads_are_refused() {
        let without = |skip: &[u8]| {
            GRPC.iter()
                .copied()
                .filter(|(name, _)| *name != skip)
                .collect::<Vec<_>>()
        };
        assert!(decode(&without(b":method")).is_err());
        assert!(decode(&without(b":path")).is_err());
        assert!(decode(&without(b":scheme")).is_err());
        let mut late = without(b":path");
        late.push((b":path", b"/x"));
        assert_eq!(
            decode(&late).unwrap_err(),
            HeadError::Malformed("pseudo-header after a regular header")
        );
        let mut upper = GRPC.to_vec();
        upper.push((b"X-Upper", b"1"));
        assert!(decode(&upper).is_err());
        let mut connection = GRPC.to_vec();
        connection.push((b"connection", b"close"));
        assert!(decode(&connection).is_err());
        let mut te = GRPC.to_vec();
        te.push((b"te", b"gzip"));
        assert!(decode(&te).is_err());
        let mut twice = GRPC.to_vec();
        twice.insert(1, (b":method", b"GET"));
        assert!(decode(&twice).is_err());
        assert_eq!(
            decode_request(&mut Decoder::new(4096), &[0xff, 0xff], 1024).unwrap_err(),
            HeadError::Compression
        );
    }

    #[test]
    fn the_list_size_is_bounded() {
        let mut encoder = loona_hpack::Encoder::new();
        let big = vec![b'v'; 2000];
        let mut fields = GRPC.to_vec();
        fields.push((b"x-big", &big));
        let block = encoder.encode(fields.iter().copied());
        assert_eq!(
            decode_request(&mut Decoder::new(4096), &block, 1024).unwrap_err(),
            HeadError::TooLarge
        );
    }

    #[test]
    fn responses_decode_with_a_standard_decoder() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("x-long", HeaderValue::from_str(&"z".repeat(300)).unwrap());
        for status in [200, 404, 503] {
            let mut block = Vec::new();
            encode_response(&mut block, StatusCode::from_u16(status).unwrap(), &headers);
            let fields = loona_hpack::Decoder::new().decode(&block).unwrap();
            let status_text = status.to_string();
            assert_eq!(fields[0], (b":status".to_vec(), status_text.into_bytes()));
            assert_eq!(
                fields[1],
                (b"content-type".to_vec(), b"application/grpc".to_vec())
            );
            assert_eq!(fields[2].1.len(), 300);
            assert_eq!(fields.len(), 3, "connection-specific headers are left out");
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let mut block = Vec::new();
        encode_trailers(&mut block, &trailers);
        assert_eq!(
            loona_hpack::Decoder::new().decode(&block).unwrap(),
            vec![(b"grpc-status".to_vec(), b"0".to_vec())]
        );
    }
}
