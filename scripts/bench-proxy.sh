#!/usr/bin/env bash
# The proxy data-plane benchmark in one command. Dubbo: a fixed-response Dubbo provider behind
# nothing (direct), nginx `stream`, HAProxy `mode tcp` and the release causeway-proxy, each loaded
# by the same open-loop generator (2,000 rps, then saturation, 64 connections, 1 KiB
# request/response) plus 1,000 held connections for memory. gRPC and HTTP: a fixed-response
# gRPC / HTTP/1.1 provider behind direct, nginx (L7), HAProxy `mode tcp` and `mode http`, and
# causeway-proxy, loaded by h2load (fixed rate; gRPC saturation) and wrk (HTTP saturation).
# Figures appended to docs/benchmarks.md. Arguments go to the bench (see --help), e.g.
#   scripts/bench-proxy.sh --quick
#   scripts/bench-proxy.sh --protocols grpc,http --targets direct,causeway --runs 2
# The bench builds causeway-proxy, dubbo-load, dubbo-provider and web-provider itself (release,
# same target directory) before measuring. nginx (with its stream module), haproxy, h2load
# (nghttp2-client) and wrk are installed here if missing, idempotently, as scripts/test-all.sh
# does for its packages.
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    -h|--help) exec cargo run --release --quiet -p causeway-tests --bin proxy-bench -- --help ;;
  esac
done

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# Debian ships nginx's stream module as a dynamic module in its own package.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
exec cargo run --release --quiet --locked -p causeway-tests --bin proxy-bench -- "$@"
