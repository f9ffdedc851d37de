#!/usr/bin/env bash
# verifyKey on a hot key against an axum hello-world, both measured with wrk in one run.
# Usage: scripts/bench-origin.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p keyway-origin --bin keyway -p keyway-lab >/dev/null

dir=$(mktemp -d)
root="root_bench_$RANDOM$RANDOM"
env KEYWAY_ROOT_KEY=$root KEYWAY_LOG=warn ${KEYWAY_BENCH_ENV:-} target/release/keyway serve --listen 127.0.0.1:18080 \
  --database "sqlite://$dir/k.db" 2>"$dir/keyway.log" &
keyway=$!
target/release/keyway-lab hello-axum 127.0.0.1:18081 >/dev/null &
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
# The machine is noisy: alternate the two, several rounds, and compare within a round.
rounds=${ROUNDS:-3}
for r in $(seq "$rounds"); do
  h=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" http://127.0.0.1:18081/v2/keys.verifyKey)
  k=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" http://127.0.0.1:18080/v2/keys.verifyKey)
  hr=$(echo "$h" | awk '/Requests\/sec/ {print $2}'); kr=$(echo "$k" | awk '/Requests\/sec/ {print $2}')
  hp=$(echo "$h" | awk '$1=="99%" {print $2}'); kp=$(echo "$k" | awk '$1=="99%" {print $2}')
  h50=$(echo "$h" | awk '$1=="50%" {print $2}'); k50=$(echo "$k" | awk '$1=="50%" {print $2}')
  printf 'round %s: hello-world %8.0f req/s (p50 %s, p99 %s) | verifyKey %8.0f req/s (p50 %s, p99 %s) | ratio %.2f\n' \
    "$r" "$hr" "$h50" "$hp" "$kr" "$k50" "$kp" "$(echo "$kr / $hr" | bc -l)"
done
curl -sf localhost:18080/v2/keys.verifyKey -H "Authorization: Bearer $root" -d "{\"key\":\"$key\"}" | grep -q '"VALID"' && echo "(last verification still VALID)"
