//! Fuzzes the Hessian decoder and skipper: never panic; wherever a value decodes, skipping it ends
//! at the same byte; and decoded values re-encode into a stream that decodes to the same values
//! (doubles as Java writes them: `-0.0` becomes `0.0`, NaNs canonical).
#![no_main]

use causeway_protocols::hessian::{self, Decoder, Limits, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 64,
        max_alloc: 1 << 20,
    };
    let mut reader = Decoder::with_limits(data, limits);
    let mut skipper = Decoder::with_limits(data, limits);
    let mut values = Vec::new();
    while !reader.is_at_end() {
        let Ok(value) = reader.read_value() else {
            break;
        };
        skipper
            .skip_value()
            .expect("skip fails where read succeeds");
        assert_eq!(
            skipper.position(),
            reader.position(),
            "skip and read disagree"
        );
        values.push(value);
    }
    let mut encoder = hessian::Encoder::new();
    for value in &values {
        encoder.write_value(value).expect("decoded values encode");
    }
    let bytes = encoder.finish();
    let mut again = Decoder::new(&bytes);
    for value in &values {
        let decoded = again.read_value().expect("re-encoded values decode");
        assert_eq!(decoded, value.wire_normalized());
    }
    assert!(again.is_at_end());
    // Zero-copy readers on the same input.
    let mut d = Decoder::new(data);
    let _ = d.read_str();
    let _ = d.read_binary();
});
