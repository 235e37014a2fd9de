#!/usr/bin/env bash
# The batch-isolation experiment in one command: the demo mesh (file registry, bridge, the
# consumer's proxy, providers whose pools take 24 calls each) with steady user traffic (`place`,
# 200 calls/s, open loop) alone, with a 64-worker batch flood (`report`, attachment batch=true)
# and no rule, and with a TrafficIsolation giving batch a budget of 16. Prints the user success
# rate and p50/p99 of each run (and p99 against the flood-free baseline), the batch calls served
# and refused, the proxy's shed count, and the machine's load before and after.
#   scripts/bench-isolation.sh            # 6,000 user calls per run (30 s each)
#   scripts/bench-isolation.sh 1000       # shorter
# Builds causeway-demo in release (the experiment measures latency); DEBUG=1 uses the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-6000}"
if [[ "${DEBUG:-0}" == 1 ]]; then
    CARGO_INCREMENTAL=0 cargo build --quiet -p causeway-demo
    demo=target/debug/causeway-demo
else
    CARGO_INCREMENTAL=0 cargo build --release --quiet -p causeway-demo
    demo=target/release/causeway-demo
fi
echo "machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$demo" --file-registry --scenario batch --calls "$calls" || status=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
