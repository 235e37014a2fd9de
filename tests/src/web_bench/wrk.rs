//! Reading `wrk --latency` results: requests and run length, the latency distribution
//! (p50/p75/p90/p99) and max, socket errors and non-2xx/3xx answers.
//!
//! wrk is closed loop (each connection sends its next request when the previous one is
//! answered), so it gives the saturation rows; the fixed-rate rows use h2load's `--rps`.

use anyhow::{Context as _, anyhow, bail};

use super::h2load::duration_s;
use super::{Latency, LoadResult};

/// Parses wrk's stdout (run with `--latency`).
pub fn parse(text: &str) -> anyhow::Result<LoadResult> {
    let mut requests = None;
    let mut duration = None;
    let mut latency = Latency::default();
    let mut seen = [false; 4];
    let mut errors = 0;
    let mut non_2xx = 0;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // `Latency     1.10ms    1.99ms  13.65ms   87.26%`: avg, stdev, max, ±stdev.
            ["Latency", _avg, _stdev, max, _] => latency.max = ms(max)?,
            // `50%   97.00us` under `Latency Distribution`.
            [quantile, value] if quantile.ends_with('%') => {
                let slot = match *quantile {
                    "50%" => 0,
                    "75%" => 1,
                    "90%" => 2,
                    "99%" => 3,
                    _ => continue,
                };
                let value = ms(value)?;
                match slot {
                    0 => latency.p50 = value,
                    2 => latency.p90 = value,
                    3 => latency.p99 = value,
                    _ => {}
                }
                seen[slot] = true;
            }
            // `56951 requests in 2.02s, 62.03MB read`
            [count, "requests", "in", length, ..] => {
                requests = Some(
                    count
                        .parse::<u64>()
                        .with_context(|| format!("requests in {line:?}"))?,
                );
                duration = Some(duration_s(length.trim_end_matches(','))?);
            }
            _ => {}
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            // `Socket errors: connect 0, read 8, write 33541, timeout 0`
            for item in rest.split(',') {
                let count = item
                    .split_whitespace()
                    .nth(1)
                    .ok_or_else(|| anyhow!("socket errors in {line:?}"))?;
                errors += count
                    .parse::<u64>()
                    .with_context(|| format!("socket errors in {line:?}"))?;
            }
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest
                .trim()
                .parse::<u64>()
                .with_context(|| format!("non-2xx in {line:?}"))?;
        }
    }
    let (Some(requests), Some(duration_s)) = (requests, duration) else {
        bail!("not wrk's output (no `N requests in T` line): {text:?}");
    };
    if seen != [true; 4] {
        bail!("wrk's output has no latency distribution (run it with --latency): {text:?}");
    }
    let ok = requests.saturating_sub(non_2xx);
    Ok(LoadResult {
        generator: "wrk",
        duration_s,
        ok,
        errors: errors + non_2xx,
        rps: if duration_s > 0.0 {
            ok as f64 / duration_s
        } else {
            0.0
        },
        latency_ms: latency,
    })
}

fn ms(text: &str) -> anyhow::Result<f64> {
    Ok(duration_s(text)? * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from wrk 4.1.0 (Debian 12) against the benchmark's web-provider: a clean run, a
    // run asking for a path it does not serve, and a run during which the provider was killed.
    const CLEAN: &str = include_str!("samples/wrk.txt");
    const NON_2XX: &str = include_str!("samples/wrk-non2xx.txt");
    const SOCKET_ERRORS: &str = include_str!("samples/wrk-socket-errors.txt");

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn reads_a_clean_run() {
        let result = parse(CLEAN).unwrap();
        assert_eq!((result.ok, result.errors), (56_951, 0));
        assert!(close(result.duration_s, 2.02));
        assert!(close(result.rps, 56_951.0 / 2.02));
        assert!(close(result.latency_ms.p50, 0.097));
        assert!(close(result.latency_ms.p90, 3.63));
        assert!(close(result.latency_ms.p99, 9.42));
        assert!(close(result.latency_ms.max, 13.65));
    }

    #[test]
    fn counts_non_2xx_and_socket_errors() {
        let rejected = parse(NON_2XX).unwrap();
        assert_eq!((rejected.ok, rejected.errors), (0, 38_772));
        let broken = parse(SOCKET_ERRORS).unwrap();
        assert_eq!((broken.ok, broken.errors), (24_505, 8 + 33_541));
    }

    #[test]
    fn rejects_output_without_the_distribution() {
        let without: String = CLEAN
            .lines()
            .filter(|l| !l.trim_start().starts_with("99%"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse(&without).is_err());
        assert!(parse("finished in 2.01s, 200.00 req/s, 209.08KB/s").is_err());
    }
}
