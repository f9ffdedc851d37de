#!/usr/bin/env bash
# verifyKey on a hot key against an axum hello-world, both measured with wrk in one run.
# BASE=path also measures another build of `keyway` (say, the previous commit's) in each
# round, on its own database, so two builds are compared in one sitting.
# PIN=1 runs the servers on CPU 0 and wrk on CPU 1 (taskset), so each server's figure is
# its own cost per request rather than how it shares the cores with wrk; on a quiet host
# that makes the ratios repeat to two decimals, where unpinned runs vary by 0.2.
# Usage: [BASE=path] [PIN=1] scripts/bench-origin.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10} conns=${2:-32}
source scripts/pin.sh
prepare_bench


dir=$(mktemp -d)
root="root_bench_$RANDOM$RANDOM"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
# An origin on `port` from binary `bin`, with the bench key and its wrk script in $dir/<port>.
origin() { # bin port
  mkdir -p "$dir/$2"
  "${server[@]}" env KEYWAY_ROOT_KEY=$root KEYWAY_LOG=warn ${KEYWAY_BENCH_ENV:-} "$1" serve --listen 127.0.0.1:$2 \
    --database "sqlite://$dir/$2/k.db" 2>"$dir/$2/keyway.log" &
  pids+=($!)
  for _ in $(seq 50); do curl -sf localhost:$2/v2/liveness >/dev/null && break; sleep 0.1; done
  api=$(curl -sf localhost:$2/v2/apis.createApi -H "Authorization: Bearer $root" -d '{"name":"bench"}' | sed 's/.*"apiId":"\([^"]*\)".*/\1/')
  key=$(curl -sf localhost:$2/v2/keys.createKey -H "Authorization: Bearer $root" \
    -d "{\"apiId\":\"$api\",\"permissions\":[\"api.read\",\"api.write\"],\"ratelimits\":[{\"name\":\"req\",\"limit\":1000000000,\"duration\":60000,\"autoApply\":true}]}" \
    | sed 's/.*"key":"\([^"]*\)".*/\1/')
  cat >"$dir/$2/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $root"
wrk.body = '{"key":"$key","permissions":"api.read AND api.write"}'
LUA
}
origin target/release/keyway 18080
[ -n "${BASE:-}" ] && origin "$BASE" 18082
"${server[@]}" target/release/keyway-lab hello-axum 127.0.0.1:18081 >/dev/null &
pids+=($!)
cp "$dir/18080/post.lua" "$dir/post.lua"

# Warm each, then measure.
for port in 18080 18081 ${BASE:+18082}; do
  script="$dir/$port/post.lua"; [ -f "$script" ] || script="$dir/post.lua"
  "${load[@]}" wrk -t2 -c"$conns" -d2s -s "$script" http://127.0.0.1:$port/v2/keys.verifyKey >/dev/null
done
ratio() { echo "$1 / $2" | bc -l; }
# The machine is noisy: alternate them, several rounds, and compare within a round.
rounds=${ROUNDS:-3}
for r in $(seq "$rounds"); do
  h=$("${load[@]}" wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" http://127.0.0.1:18081/v2/keys.verifyKey)
  k=$("${load[@]}" wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" http://127.0.0.1:18080/v2/keys.verifyKey)
  hr=$(echo "$h" | awk '/Requests\/sec/ {print $2}'); kr=$(echo "$k" | awk '/Requests\/sec/ {print $2}')
  hp=$(echo "$h" | awk '$1=="99%" {print $2}'); kp=$(echo "$k" | awk '$1=="99%" {print $2}')
  h50=$(echo "$h" | awk '$1=="50%" {print $2}'); k50=$(echo "$k" | awk '$1=="50%" {print $2}')
  base=""
  if [ -n "${BASE:-}" ]; then
    b=$("${load[@]}" wrk -t2 -c"$conns" -d"${secs}s" -s "$dir/18082/post.lua" http://127.0.0.1:18082/v2/keys.verifyKey | awk '/Requests\/sec/ {print $2}')
    base=$(printf ' | BASE %8.0f req/s, ratio %.2f' "$b" "$(ratio "$b" "$hr")")
  fi
  printf 'round %s: hello-world %8.0f req/s (p50 %s, p99 %s) | verifyKey %8.0f req/s (p50 %s, p99 %s) | ratio %.2f%s\n' \
    "$r" "$hr" "$h50" "$hp" "$kr" "$k50" "$kp" "$(ratio "$kr" "$hr")" "$base"
done
key=$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' "$dir/post.lua")
curl -sf localhost:18080/v2/keys.verifyKey -H "Authorization: Bearer $root" -d "{\"key\":\"$key\"}" | grep -q '"VALID"' && echo "(last verification still VALID)"
