#!/usr/bin/env bash
# Builds a Worker bundle (<crate>/build/index.js + index_bg.wasm) with worker-build.
# Usage: edge/build.sh [crate dir, relative to the workspace root; default edge]
#
# worker-build normally downloads wasm-bindgen, esbuild and wasm-opt from GitHub. Where
# those binaries are already here (offline machines, CI), point it at them; elsewhere it
# downloads them itself, so this script works unchanged on a machine with internet.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root/${1:-edge}"

# Worker builds get a target directory of their own. Sharing the workspace's would make
# `wrangler dev`'s build step wait on cargo's lock for as long as any other build holds
# it (the e2e deploy test's musl release build takes minutes on two cores).
export CARGO_TARGET_DIR="${KEYWAY_WORKER_TARGET_DIR:-$root/target/worker}"

if command -v wasm-bindgen >/dev/null 2>&1; then
  export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
fi
if [ -x "$root/node_modules/.bin/esbuild" ]; then
  export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
fi
opt=()
if command -v wasm-opt >/dev/null 2>&1; then
  export WASM_OPT_BIN="$(command -v wasm-opt)"
elif [ -n "${WASM_BINDGEN_BIN:-}" ]; then
  # Offline without binaryen: skip the size optimization rather than fail to download it.
  opt=(--no-opt)
fi
exec worker-build --release "${opt[@]}"
