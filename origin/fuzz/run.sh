#!/usr/bin/env bash
# Fuzzes the analytics rewriter with the round trip as its oracle (see the target's doc).
# Usage: origin/fuzz/run.sh [SECONDS]   (default 3600). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain take its flags.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-3600}
mkdir -p corpus/analytics_query artifacts/analytics_query
RUSTC_BOOTSTRAP=1 cargo fuzz run analytics_query corpus/analytics_query seeds -- \
  -dict=analytics_query.dict -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096 -timeout=10
