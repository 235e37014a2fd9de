#!/usr/bin/env bash
# The bridge scale benchmark in one command: 10,000 interfaces × 10 providers in a real ZooKeeper
# and a real etcd, the release causeway-bridge binary against each, figures appended to
# docs/benchmarks.md. Arguments go to the bench (see --help), e.g.
#   scripts/bench-bridge.sh --registry zookeeper --changes 400 --churn-per-sec 5
# The bench builds causeway-bridge itself (same profile and target directory) before measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -p causeway-tests --bin bridge-bench -- "$@"
