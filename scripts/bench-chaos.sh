#!/usr/bin/env bash
# The resilience chaos experiment in one command: three Dubbo provider processes behind
# causeway-proxy with outlier detection, steady load, one provider killed (SIGKILL) and restarted;
# success rate, time to ejection and return appended to docs/benchmarks.md. Arguments go to the
# bench (see --help); a quick run without touching the doc:
#   scripts/bench-chaos.sh --duration-s 12 --kill-at-s 4 --restart-at-s 8 --no-doc
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -p causeway-tests --bin chaos-bench -- "$@"
