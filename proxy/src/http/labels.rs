//! The gRPC/HTTP request metrics' label values that do not come from the routing snapshot,
//! made once: a request clones shared values instead of allocating its own strings, and the
//! request-series cache then finds its series by the values' identity.

use std::sync::{Arc, OnceLock};

use http::Method;

use crate::metrics::{Protocol, Reporter, RequestLabels, ResponseFlags};

/// HTTP methods that are label values; any other is `other`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// HTTP statuses with a shared label value (every valid status).
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;
/// gRPC codes with a shared label value (every defined code).
const GRPC_CODES: std::ops::RangeInclusive<u32> = 0..=16;

/// One listener's label values.
#[derive(Debug)]
pub struct Labels {
    grpc: RequestLabels,
    http: RequestLabels,
    methods: Vec<Arc<str>>,
}

// === impl Labels ===

impl Labels {
    /// The values of a proxy whose `source_workload` is `workload`.
    pub fn new(workload: &Arc<str>) -> Self {
        let unknown: Arc<str> = Arc::from("unknown");
        let other: Arc<str> = Arc::from("other");
        let base = RequestLabels {
            reporter: Reporter::Source,
            source_workload: workload.clone(),
            destination_service: unknown.clone(),
            destination_workload: unknown.clone(),
            destination_version: unknown.clone(),
            request_protocol: Protocol::Grpc,
            response_code: Arc::from("0"),
            grpc_response_status: Arc::from(""),
            response_flags: ResponseFlags::None,
            request_method: other.clone(),
            destination_interface: unknown,
        };
        let http = RequestLabels {
            request_protocol: Protocol::Http,
            ..base.clone()
        };
        let mut methods: Vec<Arc<str>> = METHODS.iter().map(|m| Arc::from(m.as_str())).collect();
        methods.push(other);
        Self {
            grpc: base,
            http,
            methods,
        }
    }

    /// A request's labels before routing.
    pub fn base(&self, protocol: Protocol) -> RequestLabels {
        if protocol == Protocol::Grpc {
            self.grpc.clone()
        } else {
            self.http.clone()
        }
    }

    /// The HTTP method as a bounded label value: a standard method, else `other`.
    pub fn method(&self, method: &Method) -> Arc<str> {
        let index = METHODS
            .iter()
            .position(|m| m == method)
            .unwrap_or(METHODS.len());
        self.methods
            .get(index)
            .cloned()
            .unwrap_or_else(|| Arc::from("other"))
    }
}

/// An HTTP status as the `response_code` label value.
pub fn status(status: u16) -> Arc<str> {
    static VALUES: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    let values = VALUES.get_or_init(|| STATUSES.map(|s| Arc::from(s.to_string())).collect());
    status
        .checked_sub(*STATUSES.start())
        .and_then(|i| values.get(usize::from(i)))
        .cloned()
        .unwrap_or_else(|| Arc::from(status.to_string()))
}

/// A gRPC status code as the `grpc_response_status` label value.
pub fn grpc_code(code: u32) -> Arc<str> {
    static VALUES: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    let values = VALUES.get_or_init(|| GRPC_CODES.map(|c| Arc::from(c.to_string())).collect());
    usize::try_from(code)
        .ok()
        .and_then(|i| values.get(i))
        .cloned()
        .unwrap_or_else(|| Arc::from(code.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shared_and_match_their_text() {
        let labels = Labels::new(&Arc::from("me"));
        assert_eq!(&*labels.method(&Method::POST), "POST");
        assert!(Arc::ptr_eq(
            &labels.method(&Method::GET),
            &labels.method(&Method::GET)
        ));
        let odd = Method::from_bytes(b"PURGE").expect("method");
        assert_eq!(&*labels.method(&odd), "other");
        assert_eq!(&*labels.base(Protocol::Http).destination_service, "unknown");
        assert_eq!(labels.base(Protocol::Grpc).request_protocol, Protocol::Grpc);
        assert_eq!(&*status(200), "200");
        assert!(Arc::ptr_eq(&status(503), &status(503)));
        assert_eq!(&*status(99), "99");
        assert_eq!(&*status(600), "600");
        assert_eq!(&*grpc_code(0), "0");
        assert!(Arc::ptr_eq(&grpc_code(14), &grpc_code(14)));
        assert_eq!(&*grpc_code(17), "17");
    }
}
