#!/usr/bin/env bash
# The container's numbers: image size, start to first answered verification, and SIGTERM
# to exit with a full event buffer. Needs podman and the static build (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p keyway-origin --bin keyway --target x86_64-unknown-linux-musl
podman build -q --format docker -t localhost/keyway:bench . >/dev/null
echo "image: $(podman image inspect localhost/keyway:bench --format '{{.Size}}') bytes"

dir=$(mktemp -d); chmod 777 "$dir"
root="root_bench_$RANDOM$RANDOM"
name="keyway-bench-$RANDOM"
trap 'podman rm -f "$name" >/dev/null 2>&1; rm -rf "$dir"' EXIT
run() {
  podman run -d --name "$name" -p 127.0.0.1:18280:8080 -v "$dir:/data" -e KEYWAY_ROOT_KEY=$root \
    -e KEYWAY_EVENT_FLUSH_MS=600000 -e KEYWAY_EVENT_BATCH_SIZE=1000000 -e KEYWAY_EVENT_BUFFER=1000000 \
    localhost/keyway:bench >/dev/null
}
run
until curl -sf -o /dev/null localhost:18280/v2/liveness; do sleep 0.01; done
api=$(curl -sf localhost:18280/v2/apis.createApi -H "Authorization: Bearer $root" -d '{"name":"bench"}' | sed 's/.*"apiId":"\([^"]*\)".*/\1/')
key=$(curl -sf localhost:18280/v2/keys.createKey -H "Authorization: Bearer $root" -d "{\"apiId\":\"$api\"}" | sed 's/.*"key":"\([^"]*\)".*/\1/')
podman rm -f "$name" >/dev/null

t0=$(date +%s%N)
run
until curl -sf localhost:18280/v2/keys.verifyKey -H "Authorization: Bearer $root" -d "{\"key\":\"$key\"}" 2>/dev/null | grep -q VALID; do sleep 0.005; done
t1=$(date +%s%N)
echo "podman run to first VALID verification: $(( (t1 - t0) / 1000000 )) ms"

cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $root"
wrk.body = '{"key":"$key"}'
LUA
wrk -t2 -c16 -d5s -s "$dir/post.lua" http://127.0.0.1:18280/v2/keys.verifyKey | grep Requests
buffered=$(curl -sf localhost:18280/metrics | awk '/^keyway_event_buffer_depth/ {print $2}')
t0=$(date +%s%N)
podman stop -t 10 "$name" >/dev/null
t1=$(date +%s%N)
echo "SIGTERM to exit with $buffered buffered events: $(( (t1 - t0) / 1000000 )) ms, exit code $(podman inspect "$name" --format '{{.State.ExitCode}}')"
