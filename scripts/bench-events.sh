#!/usr/bin/env bash
# What recording events costs the origin: for each KEYWAY_EVENTS mode, verifyKey on a hot
# key at a fixed rate against the axum hello-world at the same rate (p99 and its ratio),
# the CPU the event writer thread used per event written, and how long the runtime's workers
# ran and waited for a CPU during the run (their schedstat): if the workers wait no longer
# with events on than off, the tail is not the writer taking their cores.
# Usage: [BENCH_MODES="raw+rollup"] [LAB=path] scripts/bench-events.sh [rate] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-30000}
secs=${2:-8}
command -v oha >/dev/null || { echo "oha is missing: cargo install oha --version 1.16.0 --locked" >&2; exit 1; }
# LAB=path measures another build (say, the previous commit's) without rebuilding.
if [ -z "${LAB:-}" ]; then cargo build --quiet --release -p keyway-lab; fi
lab=${LAB:-target/release/keyway-lab}
tick=$(getconf CLK_TCK)

shoot() { # connections port [extra oha args]
  oha --no-tui --output-format json -w -t 10s -z "${secs}s" -c "$1" "${@:3}" -m POST -T application/json \
    -H "Authorization: Bearer $root" -d "$body" "http://127.0.0.1:$2/v2/keys.verifyKey"
}
# Total run time and run-queue wait, in ms, of the origin's runtime workers so far.
workers() {
  for t in /proc/$origin/task/*; do
    [ "$(cat "$t/comm")" = tokio-rt-worker ] && cat "$t/schedstat"
  done | awk '{run += $1; wait += $2} END {printf "%d %d", run / 1e6, wait / 1e6}'
}
p99() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["latencyPercentiles"]["p99"]*1000, 3))'; }

$lab hello-axum 127.0.0.1:18081 >/dev/null 2>&1 &
hello=$!
trap 'kill $hello ${origin:-} 2>/dev/null || true' EXIT
for mode in ${BENCH_MODES:-raw+rollup rollup off}; do
  dir=$(mktemp -d)
  root="root_bench_$RANDOM$RANDOM"
  env KEYWAY_EVENTS=$mode KEYWAY_ROOT_KEY=$root KEYWAY_LOG=warn $lab origin serve \
    --listen 127.0.0.1:18080 --database "sqlite://$dir/k.db" 2>"$dir/keyway.log" &
  origin=$!
  for _ in $(seq 100); do curl -sf localhost:18080/v2/liveness >/dev/null && break; sleep 0.1; done
  api=$(curl -sf localhost:18080/v2/apis.createApi -H "Authorization: Bearer $root" -d '{"name":"bench"}' | sed 's/.*"apiId":"\([^"]*\)".*/\1/')
  key=$(curl -sf localhost:18080/v2/keys.createKey -H "Authorization: Bearer $root" -d "{\"apiId\":\"$api\"}" | sed 's/.*"key":"\([^"]*\)".*/\1/')
  body="{\"key\":\"$key\"}"
  shoot 4 18080 >/dev/null
  read -r run0 wait0 <<<"$(workers)"
  o=$(shoot 16 18080 -q "$rate" --latency-correction | p99)
  read -r run1 wait1 <<<"$(workers)"
  h=$(shoot 16 18081 -q "$rate" --latency-correction | p99)
  sleep 6 # the writer's interval: let it write what the run left
  ticks=0
  for t in /proc/$origin/task/*; do
    [ "$(cat "$t/comm")" = keyway-events ] && ticks=$(awk '{print $14 + $15}' "$t/stat")
  done
  written=$(curl -sf localhost:18080/metrics | awk '/^keyway_events_written_total/ {print $2}')
  printf '%-10s at %s req/s: p99 verifyKey %s ms, hello-world %s ms, ratio %.2f | writer %.2f us CPU per event (%s events) | workers ran %s ms, waited %s ms for a CPU\n' \
    "$mode" "$rate" "$o" "$h" "$(echo "$o / $h" | bc -l)" \
    "$(echo "$ticks / $tick * 1000000 / ($written + 0.000001)" | bc -l)" "${written:-0}" \
    "$((run1 - run0))" "$((wait1 - wait0))"
  kill $origin; wait $origin 2>/dev/null || true
  rm -rf "$dir"
done
