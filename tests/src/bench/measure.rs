//! Measuring processes and latencies: memory and CPU time from `/proc`, the load average, and
//! nearest-rank percentiles.

use std::time::Duration;

use anyhow::anyhow;

/// Linux reports `/proc/<pid>/stat` CPU times in USER_HZ, which is 100 on every architecture.
pub const USER_HZ: f64 = 100.0;

/// Memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident set size now, KiB.
    pub rss_kb: u64,
    /// Peak resident set size, KiB.
    pub hwm_kb: u64,
}

impl Memory {
    /// Reads the memory of process `pid`.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
                .unwrap_or_default()
        };
        Ok(Self {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        })
    }
}

/// KiB → MiB.
pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// User + system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are
    // fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / USER_HZ))
}

/// The `q`-th percentile (nearest rank) of `sorted`.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p90 / p99 / max of some durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest value.
    pub max: Duration,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values` (any order).
    pub fn of(mut values: Vec<Duration>) -> Self {
        values.sort();
        Self {
            p50: percentile(&values, 50.0),
            p90: percentile(&values, 90.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied().unwrap_or_default(),
            n: values.len(),
        }
    }

    /// `p50 / p90 / p99 / max` in milliseconds with one decimal.
    pub fn cells(&self) -> String {
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(100));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(198));
        assert_eq!(percentile(&values, 100.0), Duration::from_millis(200));
    }
}
