#!/usr/bin/env bash
# On the GPU machine, from anywhere in the repo: builds gemm_hopper.cu (after common.cuh and hopper.cuh, as GemmKernels
# compiles it) with wgmma.cu into a standalone program (nvcc, cuBLAS, NVML), checks gemm_wgmma against cuBLAS on
# prefill and odd shapes, then times it against cuBLAS at the power limit. Prints ptxas's register / spill report and
# any wgmma serialisation warning. Usage: bash scripts/gpu/gemm-harness/wgmma.sh [group [rows]]
set -u
cd "$(dirname "$0")/../../.."
K=src/Kernels/Cuda/Kernels
cat $K/common.cuh $K/hopper.cuh $K/gemm_hopper.cu scripts/gpu/gemm-harness/wgmma.cu > /tmp/gemm-wgmma.cu
nvcc ${NVFLAGS:-} -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o /tmp/gemm-wgmma /tmp/gemm-wgmma.cu -lcuda -lcublas -lnvidia-ml > /tmp/gemm-wgmma.log 2>&1
echo "nvcc rc $?"
grep -E "error" /tmp/gemm-wgmma.log | head -20
grep -A3 -E "entry function 'gemm_wgmma" /tmp/gemm-wgmma.log | grep -E "Used|spill"
grep -E "Performance Loss|C7520|C7510" /tmp/gemm-wgmma.log | head
[ -x /tmp/gemm-wgmma ] && timeout 240 /tmp/gemm-wgmma "$@"
