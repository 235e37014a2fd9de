//! Fuzzes the HTTP helpers: traceparent and B3 parsing (valid values round-trip through their
//! formatter) and authority normalisation (idempotent).
#![no_main]

use causeway_protocols::http::{B3, TraceParent, normalize_authority};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parent) = TraceParent::parse(&text) {
        assert_eq!(TraceParent::parse(&parent.to_string()), Ok(parent));
    }
    if let Ok(b3) = B3::parse_single(&text) {
        assert_eq!(B3::parse_single(&b3.to_single()), Ok(b3));
    }
    if let Some(authority) = normalize_authority(&text) {
        assert_eq!(
            normalize_authority(&authority).as_deref(),
            Some(authority.as_str())
        );
    }
});
