//! Trace context for the proxy's hop, the same for every protocol: from the caller's W3C
//! `traceparent` (and B3 context when present) to what the proxy forwards, a child context with
//! the same trace id, the caller's sampling decision and a new span id standing for the proxy.
//!
//! The data planes only supply a lookup (HTTP headers, Dubbo attachments) and write back the
//! pairs of [`Hop::pairs`]; parsing and formatting live in [`causeway_protocols::http`]. The
//! proxy's span is the parent id the provider sees; when an OTLP endpoint is configured,
//! [`crate::spans`] records it (same trace, [`Hop::span_id`] as its id, [`Hop::caller_span`] as
//! its parent) for sampled traces and exports it.

use std::sync::LazyLock;

use causeway_protocols::http::{
    B3, B3_PARENT_SPAN_ID, B3_SINGLE, B3_SPAN_ID, B3Ids, Sampling, SpanId, TRACEPARENT, TraceParent,
};
use memchr::memmem::Finder;

/// The B3 context to forward, in the form the caller used, so a B3-only provider keeps working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum B3Out {
    /// The single `b3` header.
    Single(B3),
    /// The `X-B3-*` headers (only the span ids change; trace id and sampling pass through).
    Multi(B3Ids),
}

/// The context the proxy forwards for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The outgoing `traceparent`: the caller's trace and flags, the proxy's span as parent.
    pub traceparent: TraceParent,
    /// The caller's span (the parent of the proxy's), when the caller sent one.
    pub caller_span: Option<SpanId>,
    b3: Option<B3Out>,
}

impl Hop {
    /// The hop for a request whose context `get` reads (lower-case names → values); `None` when
    /// the request carries no usable context.
    ///
    /// A valid `traceparent` wins for the W3C side; otherwise B3 ids seed it (64-bit trace ids
    /// left-padded). Invalid values are ignored rather than failing the request: trace context
    /// is advisory and the W3C spec says to restart from what else is there.
    pub fn from_incoming<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Hop> {
        let span = SpanId::random();
        let b3 = match get(B3_SINGLE) {
            Some(single) => B3::parse_single(single).ok().map(B3Out::Single),
            None => B3::from_multi(&get)
                .ok()
                .flatten()
                .and_then(|b3| b3.ids)
                .map(B3Out::Multi),
        };
        let w3c = get(TRACEPARENT).and_then(|value| TraceParent::parse(value).ok());
        let caller_span = match (&w3c, &b3) {
            (Some(parent), _) => Some(parent.parent_id),
            (None, Some(B3Out::Single(B3 { ids: Some(ids), .. }) | B3Out::Multi(ids))) => {
                Some(ids.span_id)
            }
            _ => None,
        };
        let traceparent = match (w3c, &b3) {
            (Some(parent), _) => parent.child(span),
            (
                None,
                Some(B3Out::Single(B3 {
                    ids: Some(ids),
                    sampling,
                })),
            ) => from_b3(ids, *sampling, span),
            (None, Some(B3Out::Multi(ids))) => {
                // Multi-header sampling is not kept in the ids; read it again for the flags.
                let sampling = B3::from_multi(&get)
                    .ok()
                    .flatten()
                    .and_then(|b3| b3.sampling);
                from_b3(ids, sampling, span)
            }
            _ => return None,
        };
        let b3 = b3.and_then(|b3| b3.child(span));
        Some(Hop {
            traceparent,
            caller_span,
            b3,
        })
    }

    /// The proxy's own span id (the parent id the provider receives).
    pub fn span_id(&self) -> SpanId {
        self.traceparent.parent_id
    }

    /// A new trace for a request that carried none; `sampled` is the proxy's decision.
    pub fn new_root(sampled: bool) -> Hop {
        Hop {
            traceparent: TraceParent::new_root(sampled),
            caller_span: None,
            b3: None,
        }
    }

    /// The (name, value) pairs to write on the forwarded request, replacing the caller's.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![(TRACEPARENT, self.traceparent.to_string())];
        match &self.b3 {
            Some(B3Out::Single(b3)) => pairs.push((B3_SINGLE, b3.to_single())),
            Some(B3Out::Multi(ids)) => {
                pairs.push((B3_SPAN_ID, ids.span_id.to_string()));
                if let Some(parent) = ids.parent_span_id {
                    pairs.push((B3_PARENT_SPAN_ID, parent.to_string()));
                }
            }
            None => {}
        }
        pairs
    }
}

impl B3Out {
    /// The same context one hop down, from span `span`; `None` for a bare sampling decision,
    /// which is forwarded unchanged.
    fn child(self, span: SpanId) -> Option<B3Out> {
        let child_ids = |ids: B3Ids| B3Ids {
            span_id: span,
            parent_span_id: Some(ids.span_id),
            ..ids
        };
        match self {
            B3Out::Single(b3) => b3.ids.map(|ids| {
                B3Out::Single(B3 {
                    ids: Some(child_ids(ids)),
                    ..b3
                })
            }),
            B3Out::Multi(ids) => Some(B3Out::Multi(child_ids(ids))),
        }
    }
}

/// A `traceparent` from B3 ids: Accept and Debug are "sampled", Deny and a deferred decision are
/// not (W3C has no "deferred").
fn from_b3(ids: &B3Ids, sampling: Option<Sampling>, span: SpanId) -> TraceParent {
    let sampled = matches!(sampling, Some(Sampling::Accept | Sampling::Debug));
    TraceParent {
        trace_id: ids.trace_id,
        parent_id: span,
        flags: u8::from(sampled),
    }
}

/// A cheap guess, over a Hessian 2 body, whether a message may carry trace context: lets the
/// Dubbo fast path skip decoding attachments for the (common) untraced request. False positives
/// only cost that decoding.
///
/// The bare `b3` key is looked for with its Hessian short-string length byte (`0x02`): two hex
/// characters alone turn up in about one random hex id out of eight, which would make most
/// calls carrying ids pay for the decoding.
///
/// It runs on every Dubbo request, over the whole body (arguments included), so the needles are
/// searched with prebuilt vectorised finders: a byte-by-byte window scan of a 1 KiB body was
/// 40 % of the proxy's CPU at saturation.
pub fn may_carry_context(bytes: &[u8]) -> bool {
    // Two passes, not three: both B3 forms (`x-b3-…` keys and the bare `b3` key) contain "b3",
    // so one finder locates both and each hit is checked in place.
    static FINDERS: LazyLock<[Finder<'static>; 2]> =
        LazyLock::new(|| [Finder::new(TRACEPARENT.as_bytes()), Finder::new(b"b3")]);
    let [traceparent, b3] = &*FINDERS;
    traceparent.find(bytes).is_some() || b3.find_iter(bytes).any(|at| is_b3_key(bytes, at))
}

/// Whether the `b3` at `at` is a B3 key: the bare `b3` string (its length byte `0x02` before
/// it) or the middle of `x-b3-`.
fn is_b3_key(bytes: &[u8], at: usize) -> bool {
    let before = |n: usize| at.checked_sub(n).and_then(|start| bytes.get(start..at));
    before(1) == Some(&[0x02][..])
        || (before(2) == Some(&b"x-"[..]) && bytes.get(at + 2) == Some(&b'-'))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use causeway_protocols::http::{B3_SAMPLED, B3_TRACE_ID};

    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn hop(pairs: &[(&str, &str)]) -> Option<Hop> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Hop::from_incoming(|name| map.get(name).map(String::as_str))
    }

    fn out(hop: &Hop, name: &str) -> Option<String> {
        hop.pairs()
            .into_iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    #[test]
    fn traceparent_child_keeps_trace_and_flags_with_a_new_span() {
        let caller = TraceParent::parse(CALLER).unwrap();
        let hop = hop(&[("traceparent", CALLER)]).unwrap();
        assert_eq!(hop.traceparent.trace_id, caller.trace_id);
        assert_eq!(hop.traceparent.flags, 0x01);
        assert_ne!(hop.traceparent.parent_id, caller.parent_id);
        assert_eq!(hop.caller_span, Some(caller.parent_id));
        assert_eq!(hop.span_id(), hop.traceparent.parent_id);
        assert_eq!(hop.pairs().len(), 1, "no B3 invented");
        let unsampled = CALLER.replace("-01", "-00");
        assert!(
            !self::hop(&[("traceparent", &unsampled)])
                .unwrap()
                .traceparent
                .sampled()
        );
    }

    #[test]
    fn no_or_invalid_context_is_none_and_a_root_is_new() {
        assert!(hop(&[]).is_none());
        assert!(hop(&[("traceparent", "00-zz-00f067aa0ba902b7-01")]).is_none());
        assert!(hop(&[("b3", "1")]).is_none(), "a bare decision has no ids");
        let a = Hop::new_root(true);
        let b = Hop::new_root(false);
        assert_ne!(a.traceparent.trace_id, b.traceparent.trace_id);
        assert!(a.traceparent.sampled() && !b.traceparent.sampled());
    }

    #[test]
    fn b3_single_is_carried_one_hop_down_and_seeds_traceparent() {
        let hop = hop(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]).unwrap();
        let span = hop.traceparent.parent_id.to_string();
        assert_eq!(
            hop.traceparent.trace_id.to_string(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert!(hop.traceparent.sampled());
        assert_eq!(
            hop.caller_span.map(|s| s.to_string()).as_deref(),
            Some("e457b5a2e4d86bd1")
        );
        assert_eq!(
            out(&hop, "b3").unwrap(),
            format!("80f198ee56343ba864fe8b2a57d3eff7-{span}-1-e457b5a2e4d86bd1")
        );
    }

    #[test]
    fn b3_multi_gets_new_span_ids_and_both_formats_share_the_proxy_span() {
        let hop = hop(&[
            (B3_TRACE_ID, "64fe8b2a57d3eff7"),
            (B3_SPAN_ID, "e457b5a2e4d86bd1"),
            (B3_SAMPLED, "0"),
            ("traceparent", CALLER),
        ])
        .unwrap();
        let span = hop.traceparent.parent_id.to_string();
        // traceparent wins for the W3C side; B3 keeps its own trace id and moves one hop.
        assert_eq!(
            hop.traceparent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(out(&hop, B3_SPAN_ID), Some(span));
        assert_eq!(
            out(&hop, B3_PARENT_SPAN_ID).as_deref(),
            Some("e457b5a2e4d86bd1")
        );
        let b3_only = self::hop(&[
            (B3_TRACE_ID, "64fe8b2a57d3eff7"),
            (B3_SPAN_ID, "e457b5a2e4d86bd1"),
            (B3_SAMPLED, "1"),
        ])
        .unwrap();
        assert_eq!(
            b3_only.traceparent.trace_id.to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(b3_only.traceparent.sampled());
    }

    #[test]
    fn the_byte_guess_finds_either_format() {
        assert!(may_carry_context(b"..\x0btraceparent.."));
        assert!(may_carry_context(b"..\x0bx-b3-spanid.."));
        assert!(may_carry_context(b"..\x02b3\x30.."));
        assert!(may_carry_context(b"x-b3-sampled"));
        assert!(may_carry_context(b"\x02b3"));
        assert!(!may_carry_context(b"b3"));
        assert!(!may_carry_context(b"x-b3"));
        assert!(!may_carry_context(b"ab3-x-b3x"));
        assert!(!may_carry_context(b"greet demo.Greeter"));
        assert!(
            !may_carry_context(b"\x20e457b3a2e4d86bd1"),
            "hex ids are not a hit"
        );
    }
}
