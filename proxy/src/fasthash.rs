//! A fast hasher for the data plane's internal maps (endpoint state, cluster load, upstream
//! slots and pending requests, metric series and label values), which are looked up on every
//! request. Their keys are small and come from configuration or from the proxy itself (socket
//! addresses, cluster names, upstream request ids the proxy assigns), never from a caller, so
//! SipHash's flooding resistance buys nothing there and costs a measurable share of a request.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64-bit.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` with [`Fnv`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// A `HashSet` with [`Fnv`].
pub type FastSet<T> = HashSet<T, BuildHasherDefault<Fnv>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash as _;

    #[test]
    fn matches_the_reference_vectors() {
        // FNV-1a 64 of "" and "a" (from the algorithm's published test vectors).
        assert_eq!(Fnv::default().finish(), 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut a = Fnv::default();
        let mut b = Fnv::default();
        1234_i64.hash(&mut a);
        1235_i64.hash(&mut b);
        assert_ne!(a.finish(), b.finish());
    }
}
