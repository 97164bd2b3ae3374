#!/usr/bin/env bash
# Measures instance launches and listing on a whole stack started from
# this tree (test/e2e's harness), and prints Markdown tables for
# docs/benchmarks.md:
#   - the fake hypervisor driver: RunInstances to running, and
#     DescribeInstances with 10,000 instances;
#   - libvirt: a launch of the demo image split into control plane, image
#     staging and guest boot, first with an empty image cache, then cached.
# The placement policies' own benchmark is `go test -bench . ./pkg/sched/`.
#   bench/instances.sh [OUT.md]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp)}
: >"$out"
KOALA_BENCH=1 BENCH_OUT=$(realpath "$out") go test -count=1 -tags e2e -timeout 30m \
  -run 'TestBenchFakeDriver|TestBenchLibvirtLaunch' ./test/e2e/ >/dev/null
echo "## pkg/sched placement (go test -bench . ./pkg/sched/)" >>"$out"
go test -run XXX -bench . -benchtime 3x ./pkg/sched/ | grep -E '^Benchmark' >>"$out"
cat "$out"
