#!/usr/bin/env bash
# On the GPU machine, from the repo root: unpacks .device/actors-gpu.tar.xz (made by scripts/gpu/publish.sh) and runs
# the kernel tests, the engine's CUDA tests, the serving benchmarks (KV tiers, grains, map-reduce job) and the GPU
# benchmark beside the HF baseline, writing logs and JSON to $OUT.
# Usage: OUT=/some/dir [STAGES="tests serving bench"] scripts/gpu/on-device-all.sh [--quick]
#   STAGES picks a subset (all three by default; the device tool's 10-minute calls take them in two runs).
#   --quick: smaller benchmark sizes.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$root/.device/out}"
STAGES="${STAGES:-tests serving bench}"
mkdir -p "$OUT"
work="$(mktemp -d)"
tar -C "$work" -xJf "$root/.device/actors-gpu.tar.xz"
b="$work/actors-gpu"
export ACTORS_CACHE="$OUT/cache"
export DOTNET_CLI_TELEMETRY_OPTOUT=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv; echo "commit $(cat "$b/COMMIT")"; } 2>&1 | tee "$OUT/device.txt"
status=0
if [[ " $STAGES " == *" tests "* ]]; then
  echo "== kernel tests"
  # the test executables are xunit v3's own runner: -namespace filters, -xml writes the results with each test's output
  ACTORS_GPU_TIMINGS=1 ACTORS_GPU_REPORT="$OUT/kernel-timings.txt" timeout 300 "$b/bin/Actors.Kernels.Tests" -noColor -xml "$OUT/kernel-tests.xml" \
    > "$OUT/kernel-tests.log" 2>&1 || status=1
  grep -E "FAIL|Total:" "$OUT/kernel-tests.log" | tail -30
  cat "$OUT/kernel-timings.txt" 2>/dev/null | tail -40
  echo "== engine CUDA tests"
  timeout 260 "$b/bin/Actors.Engine.Tests" -noColor -namespace Actors.Engine.Tests.Cuda -xml "$OUT/engine-tests.xml" \
    > "$OUT/engine-tests.log" 2>&1 || status=1
  grep -E "FAIL|Total:" "$OUT/engine-tests.log" | tail -30
  # the parity numbers each test wrote (worst relative error, argmax agreement, which greedy runs differ)
  grep -oE "(worst relative error|greedy identical)[^<]*" "$OUT/engine-tests.xml" | sort -u | head -80
fi
if [[ " $STAGES " == *" serving "* ]]; then
  echo "== disk: what the local-disk blob tier can read and write (direct I/O, 2 GiB)"
  d="$(mktemp -d)"
  dd if=/dev/zero of="$d/x" bs=4M count=512 oflag=direct 2>&1 | tail -1
  dd if="$d/x" of=/dev/null bs=4M iflag=direct 2>&1 | tail -1
  rm -rf "$d"
  echo "== serving: KV tiers, grains, map-reduce job"
  timeout 280 "$b/bin/actors-gpubench" --serving --out "$OUT/serving.json" "$@" 2>&1 | tee "$OUT/serving.log" || status=1
fi
if [[ " $STAGES " == *" bench "* ]]; then
  echo "== benchmark"
  bash "$b/scripts/gpu/bench.sh" "$b" "$OUT/bench" "$@" || status=1
fi
rm -rf "$work"
exit $status
