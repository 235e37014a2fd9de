//! Fault injection for gRPC and HTTP routes (the fault filter's per-route config from the
//! bridge's RDS, or a VirtualService `fault` in local mode): a fixed delay for a fraction of
//! requests, and an abort for a fraction of requests, answered in the caller's protocol without
//! reaching a provider (gRPC: Trailers-Only with the configured status; HTTP: the configured
//! status; `response_flags="FI"`). A delayed request then goes on normally; both decisions are
//! drawn independently per request, delay first, as Envoy does.
//!
//! Dubbo and Thrift routes use the same draw ([`draw`]) with their own abort codes (a Dubbo
//! status, a `TApplicationException` type), from the MetaRouter extension carried in
//! `MetaRouteExtras`; their paths answer the abort themselves.

use std::time::Duration;

use causeway_protocols::grpc::Code;

use crate::routing::http::{AbortWith, FaultSpec};

/// What fault injection decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Wait this long before going on.
    pub delay: Option<Duration>,
    /// Answer with this instead of forwarding.
    pub abort: Option<AbortWith>,
}

/// Draws the decision for one request from `fault`.
pub fn decide(fault: &FaultSpec, rng: &mut fastrand::Rng) -> Decision {
    let (delay, abort) = draw(fault.delay, fault.abort, rng);
    Decision { delay, abort }
}

/// The protocol-neutral draw: a delay (milliseconds, fraction) and an abort (what it answers,
/// fraction), each hit independently, delay first. Dubbo and Thrift routes use it with their
/// own abort codes.
pub fn draw<A: Copy>(
    delay: Option<(u64, f64)>,
    abort: Option<(A, f64)>,
    rng: &mut fastrand::Rng,
) -> (Option<Duration>, Option<A>) {
    let hit = |fraction: f64, rng: &mut fastrand::Rng| fraction > 0.0 && rng.f64() < fraction;
    (
        delay
            .filter(|(_, fraction)| hit(*fraction, rng))
            .map(|(ms, _)| Duration::from_millis(ms)),
        abort
            .filter(|(_, fraction)| hit(*fraction, rng))
            .map(|(with, _)| with),
    )
}

/// The gRPC status an abort answers a gRPC call with (an HTTP status is mapped as gRPC
/// clients map it).
pub fn grpc_code(with: AbortWith) -> Code {
    match with {
        AbortWith::Grpc(code) => Code::from_u32(code).unwrap_or(Code::Unknown),
        AbortWith::Http(status) => Code::from_http_status(status),
    }
}

/// The HTTP status an abort answers an HTTP request with (a gRPC-only abort becomes 500).
pub fn http_status(with: AbortWith) -> u16 {
    match with {
        AbortWith::Http(status) => status,
        AbortWith::Grpc(_) => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_honoured() {
        let fault = FaultSpec {
            delay: Some((5, 0.5)),
            abort: Some((AbortWith::Http(503), 0.1)),
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut delayed, mut aborted) = (0, 0);
        for _ in 0..10_000 {
            let d = decide(&fault, &mut rng);
            delayed += usize::from(d.delay.is_some());
            aborted += usize::from(d.abort.is_some());
        }
        assert!((4_700..5_300).contains(&delayed), "{delayed}");
        assert!((800..1_200).contains(&aborted), "{aborted}");
        let none = FaultSpec {
            delay: Some((5, 0.0)),
            abort: None,
        };
        assert_eq!(decide(&none, &mut rng), Decision::default());
        assert_eq!(grpc_code(AbortWith::Http(503)), Code::Unavailable);
        assert_eq!(http_status(AbortWith::Grpc(14)), 500);
    }
}
