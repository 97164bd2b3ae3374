#!/usr/bin/env bash
# Measures a guest's disk four ways in one run (test/e2e's
# TestBenchVolumeDisks): a raw file as a virtio disk, the koala AoE target
# and Debian's vblade through the guest kernel's aoe driver, and the path
# an attached volume takes (NBD + the user-space AoE initiator). Prints a
# Markdown table for docs/benchmarks.md. Needs root, qemu and vblade.
#   bench/volumes.sh [OUT.md]
set -euo pipefail
exec "$(dirname "$0")/e2e.sh" 'TestBenchVolumeDisks' "$@"
