#!/usr/bin/env bash
# verifyKey on a hot key against an axum hello-world, both measured with wrk in one run.
# Usage: scripts/bench-origin.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p keyway-origin --bin keyway --example hello_world >/dev/null

dir=$(mktemp -d)
root="root_bench_$RANDOM$RANDOM"
env KEYWAY_ROOT_KEY=$root KEYWAY_LOG=warn ${KEYWAY_BENCH_ENV:-} target/release/keyway serve --listen 127.0.0.1:18080 \
  --database "sqlite://$dir/k.db" 2>"$dir/keyway.log" &
keyway=$!
target/release/examples/hello_world 127.0.0.1:18081 &
hello=$!
trap 'kill $keyway $hello 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf localhost:18080/v2/liveness >/dev/null && break; sleep 0.1; done

api=$(curl -sf localhost:18080/v2/apis.createApi -H "Authorization: Bearer $root" -d '{"name":"bench"}' | sed 's/.*"apiId":"\([^"]*\)".*/\1/')
key=$(curl -sf localhost:18080/v2/keys.createKey -H "Authorization: Bearer $root" \
  -d "{\"apiId\":\"$api\",\"permissions\":[\"api.read\",\"api.write\"],\"ratelimits\":[{\"name\":\"req\",\"limit\":1000000000,\"duration\":60000,\"autoApply\":true}]}" \
  | sed 's/.*"key":"\([^"]*\)".*/\1/')

cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $root"
wrk.body = '{"key":"$key","permissions":"api.read AND api.write"}'
LUA
# Warm both, then measure.
wrk -t2 -c"$conns" -d2s -s "$dir/post.lua" http://127.0.0.1:18080/v2/keys.verifyKey >/dev/null
wrk -t2 -c"$conns" -d2s -s "$dir/post.lua" http://127.0.0.1:18081/v2/keys.verifyKey >/dev/null
echo "== axum hello-world"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" http://127.0.0.1:18081/v2/keys.verifyKey | grep -E "Requests/sec|99%|50%|Latency "
echo "== keyway verifyKey (hot key, 2 permissions, 1 rate limit)"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" http://127.0.0.1:18080/v2/keys.verifyKey | grep -E "Requests/sec|99%|50%|Latency "
curl -sf localhost:18080/v2/keys.verifyKey -H "Authorization: Bearer $root" -d "{\"key\":\"$key\"}" | grep -q '"VALID"' && echo "(last verification still VALID)"
