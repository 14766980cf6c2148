#!/usr/bin/env bash
# On the GPU machine, from the repo root: builds the attention kernels with nvcc into a standalone program (no .NET
# publish: a kernel change is checked and timed in seconds) that compares paged_prefill_wgmma against
# paged_prefill_fa128g on random paged pools (shuffled pages, NaN in unreachable slots, cached prefixes, split-KV)
# and times both at 8K and 32K. Prints the ptxas register / spill report and any wgmma serialisation warning.
# Usage: bash scripts/gpu/prefill-harness/run.sh [queries]   (queries: run only that case, e.g. 8192)
# NVFLAGS: extra nvcc flags: -DHARNESS_PAGE=64 (page size), -DHARNESS_LAYERS=32 -DHARNESS_SEQ=1 (a pool laid out as the
# engine's, pages in order), -DHARNESS_PAD=N (elements added to the page stride), -DHARNESS_HEAT (the 8K attention
# also timed between cuBLAS products, at the power limit a prefill runs at), -DWGP_PINGPONG=0 / -DWGP_EARLY_RESCALE=0,
# -DWGP_TIMING (one more launch per timed case, instrumented: each consumer warp's cycles per part of the tile loop).
set -u
K=src/Kernels/Cuda/Kernels
cd "$(dirname "$0")/../../.."
cat $K/common.cuh $K/attention.cu $K/attention_fast.cu $K/hopper.cuh $K/attention_hopper.cu scripts/gpu/prefill-harness/harness.cu > /tmp/prefill-harness.cu
nvidia-smi --query-gpu=name --format=csv,noheader
nvcc ${NVFLAGS:-} -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o /tmp/prefill-harness /tmp/prefill-harness.cu -lcuda -lcublas > /tmp/prefill-harness.log 2>&1
echo "nvcc rc $?"
grep -E "error" /tmp/prefill-harness.log | head -20
grep -A3 -E "entry function 'paged_prefill_wgmma" /tmp/prefill-harness.log | grep -E "Used|spill"
grep -E "Performance Loss" /tmp/prefill-harness.log | head
[ -x /tmp/prefill-harness ] && timeout 60 /tmp/prefill-harness "$@"
