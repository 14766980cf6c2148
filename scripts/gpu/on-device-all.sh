#!/usr/bin/env bash
# On the GPU machine, from the repo root: unpacks .device/actors-gpu.tar.xz (made by scripts/gpu/publish.sh) and runs
# the kernel tests, the engine's CUDA tests, the GPU benchmark and the HF baseline, writing logs and JSON to $OUT.
# Usage: OUT=/some/dir scripts/gpu/on-device-all.sh [--quick]   (--quick: smaller benchmark sizes)
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$root/.device/out}"
mkdir -p "$OUT"
work="$(mktemp -d)"
tar -C "$work" -xJf "$root/.device/actors-gpu.tar.xz"
b="$work/actors-gpu"
export ACTORS_CACHE="$OUT/cache"
export DOTNET_CLI_TELEMETRY_OPTOUT=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv; echo "commit $(cat "$b/COMMIT")"; } 2>&1 | tee "$OUT/device.txt"
status=0
echo "== kernel tests"
# the test executables are xunit v3's own runner: -namespace filters, -xml writes the results with each test's output
timeout 90 "$b/bin/Actors.Kernels.Tests" -noColor -xml "$OUT/kernel-tests.xml" > "$OUT/kernel-tests.log" 2>&1 || status=1
grep -E "FAIL|Total:" "$OUT/kernel-tests.log" | tail -30
echo "== engine CUDA tests"
timeout 140 "$b/bin/Actors.Engine.Tests" -noColor -namespace Actors.Engine.Tests.Cuda -xml "$OUT/engine-tests.xml" \
  > "$OUT/engine-tests.log" 2>&1 || status=1
grep -E "FAIL|Total:" "$OUT/engine-tests.log" | tail -30
# the parity numbers each test wrote (worst relative error, argmax agreement, which greedy runs differ)
grep -oE "(worst relative error|greedy identical)[^<]*" "$OUT/engine-tests.xml" | sort -u | head -80
echo "== benchmark"
bash "$b/scripts/gpu/bench.sh" "$b" "$OUT/bench" "$@" || status=1
rm -rf "$work"
exit $status
