#!/usr/bin/env bash
# On the GPU machine, from the repo root (carry .device/actors-gpu.tar.xz from scripts/gpu/publish.sh): a short run
# for few device minutes: the attention kernel tests, the benchmark beside the transformers baseline (bench.sh), the
# prefill attention kernel timings (wgmma against the mma.sync kernels) and the engine's CUDA tests.
# Usage: OUT=/some/dir bash scripts/gpu/on-device-quick.sh    (on-device-all.sh runs everything, in two calls)
set -uo pipefail
root="$(pwd)"
work="$(mktemp -d)"; tar -C "$work" -xJf "$root/.device/actors-gpu.tar.xz"; b="$work/actors-gpu"
export ACTORS_CACHE="$OUT/cache" DOTNET_CLI_TELEMETRY_OPTOUT=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "commit $(cat "$b/COMMIT")"; } | tee "$OUT/device.txt"
echo "== attention kernel tests"; date
timeout 200 "$b/bin/Actors.Kernels.Tests" -noColor -reporter verbose -class Actors.Kernels.Tests.Cuda.AttentionCudaTests -class Actors.Kernels.Tests.Cuda.CudaHostTests -xml "$OUT/attn-tests.xml" > "$OUT/attn-tests.log" 2>&1
grep -E "\[FAIL\]|Total:" "$OUT/attn-tests.log" | tail -20; grep -c "\[FINISHED\]" "$OUT/attn-tests.log"
echo "== bench"; date
bash "$b/scripts/gpu/bench.sh" "$b" "$OUT/bench" 2>&1 | tail -32
echo "== prefill attention timings"; date
ACTORS_GPU_TIMINGS=1 ACTORS_GPU_REPORT="$OUT/kernel-timings.txt" timeout 50 "$b/bin/Actors.Kernels.Tests" -noColor -method "*.Prefill_attention_tflops" > "$OUT/timings.log" 2>&1
grep -E "\[FAIL\]|Total:" "$OUT/timings.log"; cat "$OUT/kernel-timings.txt"
echo "== engine CUDA tests"; date
timeout 45 "$b/bin/Actors.Engine.Tests" -noColor -namespace Actors.Engine.Tests.Cuda -xml "$OUT/engine-tests.xml" > "$OUT/engine-tests.log" 2>&1
grep -E "\[FAIL\]|Total:" "$OUT/engine-tests.log" | tail -10
date
