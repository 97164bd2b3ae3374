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
bench/e2e.sh 'TestBenchFakeDriver|TestBenchLibvirtLaunch' "$out"
{
  echo "## pkg/sched placement (go test -bench . ./pkg/sched/)"
  go test -run XXX -bench . -benchtime 3x ./pkg/sched/ | grep -E '^Benchmark'
} | tee -a "$out"
