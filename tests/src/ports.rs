//! Free loopback ports for peers, never handed out twice within one test process.
//!
//! A port is found by binding `127.0.0.1:0` and releasing it. Remembering every port handed out
//! keeps two parallel tests in this process from receiving the same one; the kernel's random
//! ephemeral choice keeps separate processes apart in practice.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use anyhow::Context as _;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(Mutex::default)
}

fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// One free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    free_port_block(&[0])
}

/// A base port `p` such that `p + offset` is free for every offset, for servers that derive
/// further ports from their main one (Nacos uses +1000 and +1001 for gRPC, −1000 for Raft).
pub fn free_port_block(offsets: &[i32]) -> anyhow::Result<u16> {
    let mut taken = handed_out()
        .lock()
        .map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
    for _ in 0..200 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let base = listener.local_addr()?.port();
        drop(listener);
        let ports: Option<Vec<u16>> = offsets
            .iter()
            .map(|offset| u16::try_from(i32::from(base) + offset).ok())
            .collect();
        let Some(ports) = ports else { continue };
        if ports.iter().any(|p| *p < 1024 || taken.contains(p)) {
            continue;
        }
        if ports.iter().all(|p| *p == base || is_free(*p)) {
            taken.extend(ports);
            return Ok(base);
        }
    }
    anyhow::bail!("no block of free loopback ports with offsets {offsets:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_repeated() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            assert!(seen.insert(free_port().unwrap()));
        }
    }

    #[test]
    fn blocks_respect_their_offsets() {
        let base = free_port_block(&[-1000, 0, 1000, 1001]).unwrap();
        assert!(base >= 2024);
        assert!(is_free(base + 1000));
    }
}
