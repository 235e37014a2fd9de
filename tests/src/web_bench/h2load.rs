//! Reading `h2load` (nghttp2-client) results: the summary it prints, and the per-request
//! `--log-file` (start time µs, HTTP status, µs to the end of the response) from which the
//! percentiles come, since the summary gives only min/max/mean/sd.
//!
//! h2load counts any HTTP status as a finished request and knows nothing of `grpc-status`; the
//! bench checks that each target answers a real gRPC call with status 0 before loading it.

use anyhow::{Context as _, anyhow, bail};

use super::{Latency, LoadResult};
use crate::bench::measure::percentile;

/// The figures of h2load's summary that the bench uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// `finished in …`: the run's length, seconds.
    pub duration_s: f64,
    /// `… req/s` on the same line.
    pub rps: f64,
    /// `requests: N total`.
    pub total: u64,
    /// `N succeeded` (any HTTP status).
    pub succeeded: u64,
    /// `N failed` (includes `errored` and `timeout`).
    pub failed: u64,
    /// `status codes: N 2xx`.
    pub status_2xx: u64,
    /// 3xx + 4xx + 5xx.
    pub status_other: u64,
}

/// Parses h2load's stdout.
pub fn parse_summary(text: &str) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let (mut finished, mut requests, mut statuses) = (false, false, false);
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // `finished in 2.01s, 200.00 req/s, 209.08KB/s`
            let mut parts = rest.split(',').map(str::trim);
            summary.duration_s = duration_s(parts.next().unwrap_or_default())?;
            summary.rps = parts
                .next()
                .and_then(|p| p.strip_suffix(" req/s"))
                .ok_or_else(|| anyhow!("no req/s in {line:?}"))?
                .parse()
                .with_context(|| format!("req/s in {line:?}"))?;
            finished = true;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // `requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, …`
            summary.total = counted(rest, "total")?;
            summary.succeeded = counted(rest, "succeeded")?;
            summary.failed = counted(rest, "failed")?;
            requests = true;
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            summary.status_2xx = counted(rest, "2xx")?;
            summary.status_other =
                counted(rest, "3xx")? + counted(rest, "4xx")? + counted(rest, "5xx")?;
            statuses = true;
        }
    }
    if !(finished && requests && statuses) {
        bail!("not h2load's summary (no finished/requests/status codes lines): {text:?}");
    }
    Ok(summary)
}

/// The number before `name` in a comma-separated `N name, N name` list.
fn counted(list: &str, name: &str) -> anyhow::Result<u64> {
    list.split(',')
        .map(str::trim)
        .find_map(|item| item.strip_suffix(name).map(str::trim))
        .ok_or_else(|| anyhow!("no {name:?} in {list:?}"))?
        .parse()
        .with_context(|| format!("{name} in {list:?}"))
}

/// `253us`, `1.5ms`, `2.01s` (h2load's and wrk's duration format) in seconds.
pub fn duration_s(text: &str) -> anyhow::Result<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        bail!("not a duration: {text:?}");
    };
    Ok(number
        .parse::<f64>()
        .with_context(|| format!("not a duration: {text:?}"))?
        * scale)
}

/// What the per-request log says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Log {
    /// Rows with a 2xx status.
    pub ok: u64,
    /// Rows with another status, or -1 (a failed stream).
    pub failed: u64,
    /// Percentiles of the 2xx rows' times to the end of the response.
    pub latency_ms: Latency,
}

/// Parses h2load's `--log-file` (tab-separated `start_us status latency_us` rows).
pub fn parse_log(text: &str) -> anyhow::Result<Log> {
    let mut latencies = Vec::new();
    let mut failed = 0;
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut columns = line.split('\t');
        let (Some(_start), Some(status), Some(micros)) =
            (columns.next(), columns.next(), columns.next())
        else {
            bail!(
                "h2load log line {}: expected 3 columns: {line:?}",
                index + 1
            );
        };
        let status: i32 = status
            .parse()
            .with_context(|| format!("h2load log line {}: status {status:?}", index + 1))?;
        let micros: u64 = micros
            .trim()
            .parse()
            .with_context(|| format!("h2load log line {}: latency {micros:?}", index + 1))?;
        if (200..300).contains(&status) {
            latencies.push(std::time::Duration::from_micros(micros));
        } else {
            failed += 1;
        }
    }
    latencies.sort();
    let ms = |q: f64| crate::bench::measure::ms(percentile(&latencies, q));
    Ok(Log {
        ok: latencies.len() as u64,
        failed,
        latency_ms: Latency {
            p50: ms(50.0),
            p90: ms(90.0),
            p99: ms(99.0),
            max: ms(100.0),
        },
    })
}

/// One h2load run's result: counts and rate from the summary, percentiles from the log, which
/// must hold (nearly) the same answered requests. h2load appends to an existing log file, so a
/// stale one would mix runs; and it drops the rows of a few requests that end as the run stops
/// (8 of 120,640 and 100 of 158,592 in two saturated runs), hence the 1% allowance.
pub fn result(summary: &Summary, log: &Log) -> anyhow::Result<LoadResult> {
    let duration_s = summary.duration_s;
    let (logged, answered) = (log.ok, summary.status_2xx);
    if logged > answered || (answered - logged) * 100 > answered {
        bail!(
            "h2load's log has {logged} 2xx rows but its summary {answered} 2xx answers (a log \
             left from another run?)"
        );
    }
    Ok(LoadResult {
        generator: "h2load",
        duration_s,
        ok: answered,
        // Requests that never finished are in the summary only; answered non-2xx ones in both.
        errors: summary.failed + summary.status_other,
        rps: if duration_s > 0.0 {
            answered as f64 / duration_s
        } else {
            0.0
        },
        latency_ms: log.latency_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from h2load 1.52 (Debian 12) against the benchmark's web-provider.
    const GRPC: &str = include_str!("samples/h2load-grpc.txt");
    const H1: &str = include_str!("samples/h2load-h1.txt");
    const REFUSED: &str = include_str!("samples/h2load-refused.txt");
    const LOG: &str = include_str!("samples/h2load-log.tsv");

    #[test]
    fn reads_the_grpc_summary() {
        let summary = parse_summary(GRPC).unwrap();
        assert_eq!(
            summary,
            Summary {
                duration_s: 2.01,
                rps: 200.0,
                total: 400,
                succeeded: 400,
                failed: 0,
                status_2xx: 400,
                status_other: 0,
            }
        );
        assert_eq!(parse_summary(H1).unwrap().status_2xx, 400);
    }

    #[test]
    fn reads_a_run_that_could_not_connect() {
        let summary = parse_summary(REFUSED).unwrap();
        assert_eq!(
            (summary.total, summary.failed, summary.status_2xx),
            (10, 10, 0)
        );
        assert!((summary.duration_s - 253e-6).abs() < 1e-12);
        let result = result(&summary, &parse_log("").unwrap()).unwrap();
        assert_eq!((result.ok, result.errors, result.rps), (0, 10, 0.0));
    }

    #[test]
    fn a_log_of_another_run_is_refused() {
        let summary = parse_summary(GRPC).unwrap();
        let log = parse_log(LOG).unwrap();
        // The sample log holds 40 of the run's 400 rows: not this summary's log.
        assert!(result(&summary, &log).is_err());
        let mut whole = String::new();
        for _ in 0..10 {
            whole.push_str(LOG);
        }
        let ok = result(&summary, &parse_log(&whole).unwrap()).unwrap();
        assert_eq!((ok.ok, ok.errors), (400, 0));
        assert!((ok.rps - 400.0 / 2.01).abs() < 1e-9);
        // Twice as many rows: two runs in one file.
        whole.push_str(&whole.clone());
        assert!(result(&summary, &parse_log(&whole).unwrap()).is_err());
        // A few rows short (requests ending as h2load stops): accepted, counted from the summary.
        let short: String = whole.lines().take(397).map(|l| format!("{l}\n")).collect();
        let nearly = result(&summary, &parse_log(&short).unwrap()).unwrap();
        assert_eq!(nearly.ok, 400);
    }

    #[test]
    fn rejects_other_text() {
        assert!(parse_summary("Running 2s test @ http://127.0.0.1/").is_err());
        assert!(parse_log("1\t200\n").is_err());
        assert!(parse_log("1\tOK\t5\n").is_err());
    }

    #[test]
    fn percentiles_come_from_the_log() {
        let log = parse_log(LOG).unwrap();
        assert_eq!((log.ok, log.failed), (40, 0));
        // The 40 captured rows' latencies, sorted: the 20th is the median, the 40th the max.
        let mut micros: Vec<u64> = LOG
            .lines()
            .map(|l| l.split('\t').nth(2).unwrap().parse().unwrap())
            .collect();
        micros.sort_unstable();
        let close = |a: f64, b: u64| (a - b as f64 / 1000.0).abs() < 1e-9;
        assert!(close(log.latency_ms.p50, micros[19]), "{log:?}");
        assert!(close(log.latency_ms.max, micros[39]), "{log:?}");
        assert!(
            log.latency_ms.p50 <= log.latency_ms.p90 && log.latency_ms.p90 <= log.latency_ms.p99
        );

        let mixed = parse_log("1\t200\t1000\n2\t-1\t0\n3\t503\t2000\n4\t200\t3000\n").unwrap();
        assert_eq!((mixed.ok, mixed.failed), (2, 2));
        assert!((mixed.latency_ms.max - 3.0).abs() < 1e-9);
    }

    #[test]
    fn durations_have_units() {
        assert_eq!(duration_s("2.01s").unwrap(), 2.01);
        assert_eq!(duration_s("1.50ms").unwrap(), 0.0015);
        assert_eq!(duration_s("97.00us").unwrap(), 97e-6);
        assert_eq!(duration_s("1.00m").unwrap(), 60.0);
        assert!(duration_s("fast").is_err());
    }
}
