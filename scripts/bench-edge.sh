#!/usr/bin/env bash
# Edge hit against origin hot hit: verifyKey latency through the Worker running in
# workerd directly (not wrangler's dev proxy, which would measure itself) and straight
# against the origin, in one run, with wrk.
# It also measures the Rust hello-world Worker (lab/hello-worker) in the same workerd: the
# floor any Rust Worker built on the `worker` crate starts from.
# PIN=1 runs workerd on CPU 0 and the origin and wrk on CPU 1 (taskset), so each Worker's
# figure is its own cost per request rather than how it shares the cores.
# Usage: [PIN=1] [ROUNDS=n] scripts/bench-edge.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10} conns=${2:-8}
source scripts/pin.sh
prepare_bench
bash edge/build.sh >/dev/null 2>&1
bash edge/build.sh lab/hello-worker >/dev/null 2>&1

dir=$(mktemp -d)
root="root_bench_$RANDOM$RANDOM"
secret="edge_bench_$RANDOM$RANDOM"
"${load[@]}" env KEYWAY_ROOT_KEY=$root KEYWAY_EDGE_SECRET=$secret KEYWAY_LOG=warn target/release/keyway serve \
  --listen 127.0.0.1:18080 --database "sqlite://$dir/k.db" 2>"$dir/keyway.log" &
keyway=$!
# The same workerd config the lab runs (keyway-testkit writes both).
KEYWAY_EDGE_SECRET=$secret target/release/keyway-lab edge-config --dir "$dir" \
  --listen 127.0.0.1:18788 --hello-rust-listen 127.0.0.1:18789 --origin-url http://127.0.0.1:18080 >/dev/null
trap 'kill $keyway ${workerd:-} 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf localhost:18080/v2/liveness >/dev/null && break; sleep 0.1; done
api=$(curl -sf localhost:18080/v2/apis.createApi -H "Authorization: Bearer $root" -d '{"name":"bench"}' | sed 's/.*"apiId":"\([^"]*\)".*/\1/')
key=$(curl -sf localhost:18080/v2/keys.createKey -H "Authorization: Bearer $root" \
  -d "{\"apiId\":\"$api\",\"permissions\":[\"api.read\",\"api.write\"]}" | sed 's/.*"key":"\([^"]*\)".*/\1/')
body="{\"key\":\"$key\",\"permissions\":\"api.read AND api.write\"}"

t0=$(date +%s%N)
"${server[@]}" node_modules/.bin/workerd serve "$dir/workerd.capnp" --experimental 2>"$dir/workerd.log" &
workerd=$!
until curl -sf -o /dev/null localhost:18788/v2/keys.verifyKey -H "Authorization: Bearer $root" -d "$body"; do sleep 0.02; done
t1=$(date +%s%N)
echo "workerd start to first answered verification: $(( (t1 - t0) / 1000000 )) ms"
echo "bundle: $(gzip -9 -c edge/build/index_bg.wasm | wc -c) bytes wasm + $(gzip -9 -c edge/build/index.js | wc -c) bytes js, gzipped"
curl -si localhost:18788/v2/keys.verifyKey -H "Authorization: Bearer $root" -d "$body" | grep -i "x-keyway"

cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $root"
wrk.body = '$body'
LUA
declare -A rate
targets=("edge-hit http://127.0.0.1:18788" "hello-rust http://127.0.0.1:18789")
# Pinned, the origin shares CPU 1 with wrk, so its row would measure that sharing; its
# pinned figures come from PIN=1 scripts/bench-origin.sh.
[ -z "${PIN:-}" ] && targets+=("origin-hot http://127.0.0.1:18080")
for r in $(seq "${ROUNDS:-2}"); do
  for target in "${targets[@]}"; do
    set -- $target
    out=$("${load[@]}" wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" "$2/v2/keys.verifyKey")
    rate[$1]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    printf 'round %s %-10s %8s req/s  p50 %-9s p90 %-9s p99 %s\n' "$r" "$1" "${rate[$1]}" \
      "$(echo "$out" | awk '$1=="50%" {print $2}')" "$(echo "$out" | awk '$1=="90%" {print $2}')" \
      "$(echo "$out" | awk '$1=="99%" {print $2}')"
  done
  printf 'round %s edge-hit / Rust hello-world Worker: %.2f\n' "$r" "$(echo "${rate[edge-hit]} / ${rate[hello-rust]}" | bc -l)"
done
