//! Fuzzes protocol detection: never panics, and once a verdict (a protocol or `Unknown`) is given
//! for a prefix, longer prefixes keep it; after `MAX_DETECT_LEN` bytes there is always one.
#![no_main]

use causeway_protocols::detect::{Detection, MAX_DETECT_LEN, detect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut verdict = None;
    for len in 0..=data.len().min(64) {
        let now = detect(&data[..len]);
        match verdict {
            Some(earlier) => assert_eq!(now, earlier, "verdict changed at {len}"),
            None if now != Detection::NeedMore => verdict = Some(now),
            None => {}
        }
    }
    if data.len() >= MAX_DETECT_LEN {
        assert!(verdict.is_some());
    }
});
