//! The Markdown of the gRPC and HTTP rows: per protocol, latency at the fixed rate, saturation
//! and memory tables.

use std::fmt::Write as _;

use causeway_tests::web_bench::LoadResult;

use super::{HOLD_SECONDS, Protocol, ProtocolRun, Target, TargetResult, cpu_ms_per_1k};
use crate::{Options, mib, opt};

/// The Markdown of one protocol's rows.
pub fn render(run: &ProtocolRun, options: &Options) -> String {
    let protocol = run.protocol;
    let mut out = String::new();
    let direct = run.targets.iter().find(|t| t.target == Target::Direct);
    let haproxy = run.targets.iter().find(|t| t.target == Target::HaproxyTcp);
    let _ = writeln!(out, "#### {}\n", protocol.title());
    let _ = writeln!(
        out,
        "At {} rps (h2load `--rps`, {} connections; ms from each request's start):\n",
        options.rate, options.connections
    );
    let _ = writeln!(
        out,
        "| Target | other load (cores) | achieved rps | p50 | p90 | p99 | max | errors | added p50 | added p99 | CPU ms per 1,000 req |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for t in &run.targets {
        let l = &t.rate.latency_ms;
        let added = |f: fn(&LoadResult) -> f64| {
            direct
                .filter(|d| d.target != t.target)
                .map_or("–".to_owned(), |d| {
                    format!("{:+.3}", f(&t.rate) - f(&d.rate))
                })
        };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} |",
            t.target.label(protocol),
            t.rate_others_cores,
            t.rate.rps,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            t.rate.errors,
            added(|r| r.latency_ms.p50),
            added(|r| r.latency_ms.p99),
            opt(cpu_ms_per_1k(t.rate_cpu_s, &t.rate), 1),
        );
    }
    let shape = match protocol {
        Protocol::Grpc => format!(
            "h2load, {} connections × {} streams",
            options.connections, options.window
        ),
        Protocol::Http => format!(
            "wrk, {} connections, one request in flight each",
            options.connections
        ),
    };
    let _ = writeln!(out, "\nSaturation ({shape}):\n");
    let _ = writeln!(
        out,
        "| Target | other load (cores) | rps | ÷ direct | ÷ HAProxy L4 | p50 ms | p99 ms | errors | target CPU (% of a core) | CPU ms per 1,000 req |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for t in &run.targets {
        let ratio = |base: Option<&TargetResult>| {
            base.filter(|b| b.saturate.rps > 0.0)
                .map_or("–".to_owned(), |b| {
                    format!("{:.2}×", t.saturate.rps / b.saturate.rps)
                })
        };
        let cores = t
            .saturate_cpu_s
            .map(|s| s / t.saturate.duration_s.max(f64::EPSILON) * 100.0);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {} | {} | {:.3} | {:.3} | {} | {} | {} |",
            t.target.label(protocol),
            t.saturate_others_cores,
            t.saturate.rps,
            ratio(direct),
            ratio(haproxy),
            t.saturate.latency_ms.p50,
            t.saturate.latency_ms.p99,
            t.saturate.errors,
            opt(cores, 0),
            opt(cpu_ms_per_1k(t.saturate_cpu_s, &t.saturate), 1),
        );
    }
    let _ = writeln!(
        out,
        "\nMemory ({} connections, one request a second each, for {HOLD_SECONDS} s):\n",
        options.rss_connections
    );
    let _ = writeln!(
        out,
        "| Target | RSS idle | largest RSS with {} connections | answered OK / failed | peak RSS (VmHWM) over its turn |",
        options.rss_connections
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for t in run.targets.iter().filter(|t| t.target != Target::Direct) {
        let answered = t
            .held
            .as_ref()
            .map_or("–".to_owned(), |h| format!("{} / {}", h.ok, h.errors));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.target.label(protocol),
            mib(t.rss_idle_kib),
            mib(t.rss_held_kib),
            answered,
            mib(t.hwm_kib),
        );
    }
    for (label, error) in &run.failures {
        let _ = writeln!(out, "\n**{label} not measured**: {error}");
    }
    out
}
