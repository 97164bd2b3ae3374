#!/usr/bin/env bash
# Runs the test/e2e benchmarks whose names match PATTERN (they run only
# with KOALA_BENCH=1) and prints the Markdown they write to OUT.md. The
# other scripts here call it.
#   bench/e2e.sh PATTERN [OUT.md]
set -euo pipefail
cd "$(dirname "$0")/.."
pattern=$1
out=${2:-$(mktemp)}
: >"$out"
KOALA_BENCH=1 BENCH_OUT=$(realpath "$out") go test -count=1 -tags e2e -timeout 30m \
  -run "$pattern" ./test/e2e/ >/dev/null
cat "$out"
