#!/usr/bin/env bash
# On the GPU machine, from the repo root: builds harness.cu (nvcc, cuBLASLt, NVML) and times cuBLASLt's candidate
# algorithms for the prefill's four projections at the card's power limit, then a 32-layer chain of them with the
# first heuristic picks against the hot-fastest ones. Usage: bash scripts/gpu/gemm-harness/run.sh [candidates [variants]]
# (variants: also each candidate with an explicit cluster shape and CTA swizzle)
set -u
cd "$(dirname "$0")"
nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/gemm-harness harness.cu -lcublasLt -lnvidia-ml > /tmp/gemm-harness.log 2>&1
echo "nvcc rc $?"; grep -E "error" /tmp/gemm-harness.log | head -20
[ -x /tmp/gemm-harness ] && timeout 300 /tmp/gemm-harness "$@"
