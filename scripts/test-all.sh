#!/usr/bin/env bash
# The one test command: installs what the tests need (idempotently), then runs formatting,
# lints and every test. CI's .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

# System packages: real peers (ZooKeeper, etcd, Prometheus), protoc for etcd-client's build,
# Java + Maven and Python venv support for real clients written by others.
packages=(protobuf-compiler zookeeper etcd-server etcd-client prometheus maven openjdk-17-jdk-headless python3-venv curl)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "system packages present"
fi

# Node.js 18+ and npm for the Grafana dashboard schema check (tests/grafana/). The machine image
# ships them (a NodeSource build with npm bundled, so no Debian `npm` package is installed);
# install Debian's only where they are missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing nodejs and npm"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends nodejs npm
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "preparing Maven, Go, Python and npm caches for the end-to-end tests"
cargo run --quiet --locked -p causeway-tests --bin causeway-test-prepare

log "cargo test"
cargo test --workspace --locked --no-fail-fast

log "all checks passed in $(( $(date +%s) - started ))s"
