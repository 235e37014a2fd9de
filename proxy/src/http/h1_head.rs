//! An HTTP/1.1 caller's request head, moved out of hyper's read buffer into one small buffer of
//! its own before the request is served.
//!
//! hyper's HTTP/1 server parses a request head in place: the URI and every header value are
//! slices of the connection's 8 KiB read buffer, which they keep shared while the request lives.
//! Right after handing the request over, the server reads again, to notice a caller that closes
//! mid-request (and cancel the request); a read into a shared buffer allocates a fresh 8 KiB one.
//! So every request in flight held a second read buffer, 8 MB for a burst of a thousand callers.
//! Copied out here — before the server reads again — the head holds a buffer of its own size
//! (~100 bytes for a typical request), and the server reads into its own buffer again, in place.
//!
//! Header *names* need nothing: hyper makes the standard ones constants and copies the others.

use bytes::{BufMut as _, BytesMut};
use http::Uri;
use http::header::HeaderValue;

/// `request` with its URI and header values in a buffer of their own (see the module docs).
/// Anything that cannot be rebuilt (not expected: hyper validated it all) keeps its slice.
pub fn detached<B>(mut request: http::Request<B>) -> http::Request<B> {
    let uri = request.uri();
    // The URI's text is its scheme, authority and path with query, written back to back.
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let values: usize = request.headers().values().map(|v| v.len()).sum();
    let mut buffer = BytesMut::with_capacity(scheme + authority + path + values);
    if let Some(scheme) = uri.scheme_str() {
        buffer.put_slice(scheme.as_bytes());
        buffer.put_slice(b"://");
    }
    if let Some(authority) = uri.authority() {
        buffer.put_slice(authority.as_str().as_bytes());
    }
    if let Some(path) = uri.path_and_query() {
        buffer.put_slice(path.as_str().as_bytes());
    }
    let uri_text = buffer.split().freeze();
    if let Ok(uri) = Uri::from_maybe_shared(uri_text) {
        *request.uri_mut() = uri;
    }
    for value in request.headers_mut().values_mut() {
        buffer.put_slice(value.as_bytes());
        let copied = buffer.split().freeze();
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(copied) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request hyper makes of `head` read into `read`: its URI and header values are slices
    /// of the frozen head, split off the read buffer.
    fn parse(read: &mut BytesMut, head: &str) -> http::Request<()> {
        read.put_slice(head.as_bytes());
        let head = read.split_to(read.len()).freeze();
        let text = std::str::from_utf8(&head).expect("utf-8");
        let slice = |part: &str| head.slice_ref(part.as_bytes());
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let target = request_line.split(' ').nth(1).unwrap_or_default();
        let mut request = http::Request::new(());
        *request.uri_mut() = Uri::from_maybe_shared(slice(target)).expect("uri");
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(": ").expect("header");
            let value = HeaderValue::from_maybe_shared(slice(value)).expect("value");
            let name = http::header::HeaderName::from_bytes(name.as_bytes()).expect("name");
            request.headers_mut().append(name, value);
        }
        request
    }

    /// A read buffer as hyper's server first allocates it.
    fn read_buffer() -> BytesMut {
        BytesMut::with_capacity(8192)
    }

    #[test]
    fn a_parsed_head_keeps_the_read_buffer_shared() {
        let mut read = read_buffer();
        let request = parse(&mut read, "GET /echo HTTP/1.1\r\nhost: a.test\r\n\r\n");
        // What hyper's next read would do: allocate a new buffer.
        assert!(!read.try_reclaim(8192));
        drop(request);
        assert!(read.try_reclaim(8192));
    }

    #[test]
    fn a_detached_head_leaves_the_read_buffer_to_the_next_read() {
        let mut read = read_buffer();
        let head = "GET /echo?a=1 HTTP/1.1\r\nhost: example.test:80\r\nx-id: 7\r\nx-id: 8\r\n\r\n";
        let request = detached(parse(&mut read, head));
        assert!(read.try_reclaim(8192), "the read buffer is still shared");
        assert_eq!(request.uri(), "/echo?a=1");
        assert_eq!(request.headers()["host"], "example.test:80");
        let ids: Vec<_> = request.headers().get_all("x-id").iter().collect();
        assert_eq!(ids, ["7", "8"]);
        assert_eq!(request.headers().len(), 3);
    }

    #[test]
    fn absolute_authority_and_asterisk_forms_keep_their_meaning() {
        for target in [
            "http://example.test:8080/a/b?c=d",
            "http://example.test",
            "*",
            "example.test:443",
        ] {
            let mut read = read_buffer();
            let request = parse(&mut read, &format!("GET {target} HTTP/1.1\r\n\r\n"));
            let before = request.uri().clone().into_parts();
            let before = (
                before.scheme.map(|s| s.to_string()),
                before.authority.map(|a| a.to_string()),
                before.path_and_query.map(|p| p.to_string()),
            );
            let request = detached(request);
            assert!(
                read.try_reclaim(8192),
                "{target}: the read buffer is still shared"
            );
            let after = request.uri().clone().into_parts();
            let after = (
                after.scheme.map(|s| s.to_string()),
                after.authority.map(|a| a.to_string()),
                after.path_and_query.map(|p| p.to_string()),
            );
            assert_eq!(after, before, "{target}");
        }
    }

    #[test]
    fn sensitive_values_stay_sensitive() {
        let mut read = read_buffer();
        let mut request = parse(&mut read, "GET / HTTP/1.1\r\nauthorization: secret\r\n\r\n");
        if let Some(value) = request.headers_mut().get_mut("authorization") {
            value.set_sensitive(true);
        }
        let request = detached(request);
        assert!(request.headers()["authorization"].is_sensitive());
    }
}
