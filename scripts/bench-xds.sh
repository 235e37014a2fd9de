#!/usr/bin/env bash
# The bridge's xDS fan-out benchmark in one command: 1,000 delta ADS clients against the release
# causeway-bridge binary watching a real ZooKeeper with 1,000 and then 10,000 Dubbo services; one
# endpoint change at a time, timed until every client has it; figures appended to
# docs/benchmarks.md. Arguments go to the bench (see --help); a quick run:
#   scripts/bench-xds.sh --clients 50 --services 200 --changes 10 --no-doc
# The bench builds causeway-bridge itself (same profile and target directory) before measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -p causeway-tests --bin xds-bench -- "$@"
