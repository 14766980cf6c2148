#!/usr/bin/env bash
# On the GPU machine, from the repo root: times the wgmma prefill attention's softmax (wgp_softmax) alone, in parts,
# with one or two warps a quarter of the SM, and beside another warpgroup's m64n128k16 products (cycles per call).
# Usage: bash scripts/gpu/prefill-harness/micro.sh
set -u
K=src/Kernels/Cuda/Kernels
cd "$(dirname "$0")/../../.."
cat $K/common.cuh $K/attention.cu $K/attention_fast.cu $K/hopper.cuh $K/attention_hopper.cu scripts/gpu/prefill-harness/softmax-micro.cu > /tmp/softmax-micro.cu
nvidia-smi --query-gpu=name --format=csv,noheader
nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/softmax-micro /tmp/softmax-micro.cu -lcuda > /tmp/softmax-micro.log 2>&1
echo "nvcc rc $?"
grep -E "error" /tmp/softmax-micro.log | head -20
[ -x /tmp/softmax-micro ] && timeout 60 /tmp/softmax-micro
