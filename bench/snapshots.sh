#!/usr/bin/env bash
# Measures EBS snapshots on ebs and walrus started from this tree
# (test/e2e's TestBenchSnapshots): first, unchanged and partly changed
# snapshots of a volume and a volume filled from one, next to reading and
# hashing the volume's data in the same run. Prints a Markdown table for
# docs/benchmarks.md. Needs root (ebs serves AoE on a veth pair).
#   bench/snapshots.sh [OUT.md]
set -euo pipefail
exec "$(dirname "$0")/e2e.sh" 'TestBenchSnapshots' "$@"
