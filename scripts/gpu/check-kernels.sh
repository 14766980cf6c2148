#!/usr/bin/env bash
# Syntax/type check of the embedded CUDA C kernels with clang (no CUDA toolkit needed): each .cu is checked as
# KernelSource builds it (common.cuh prepended). NVRTC on the GPU machine remains the real compiler.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
clang="$(command -v clang++ || ls /usr/lib/llvm-*/bin/clang++ 2>/dev/null | tail -1)"
dir="$root/src/Kernels/Cuda/Kernels"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
for cu in "$dir"/*.cu; do
  name="$(basename "$cu")"
  # layout asserts of the C# param structs: elementwise.cu's in layout-asserts.h, others in layout-asserts-<kernel>.h if any
  asserts=/dev/null
  [[ "$name" == elementwise.cu ]] && asserts="$root/scripts/gpu/layout-asserts.h"
  prefix=""
  [[ "$name" == attention.cu ]] && asserts="$root/scripts/gpu/layout-asserts-attention.h"
  # a kernel file of its own may bring its own offsets file, layout-asserts-<name without .cu>.h
  [[ -f "$root/scripts/gpu/layout-asserts-${name%.cu}.h" ]] && asserts="$root/scripts/gpu/layout-asserts-${name%.cu}.h"
  # attention_*.cu are compiled after attention.cu in one module (AttentionKernels): check them the same way
  [[ "$name" == attention_*.cu ]] && { prefix="$dir/attention.cu"; asserts="$root/scripts/gpu/layout-asserts-attention.h"; }
  # attention_hopper.cu comes after attention_fast.cu too (its PTX is sm_90a's; clang checks only the C++ around it)
  [[ "$name" == attention_hopper.cu ]] && { prefix="$dir/attention.cu $dir/attention_fast.cu $dir/hopper.cuh"; asserts="$asserts $root/scripts/gpu/layout-asserts-attention_hopper.h"; }
  # gemm_hopper.cu takes hopper.cuh's helpers (after common.cuh), as GemmKernels builds it
  [[ "$name" == gemm_hopper.cu ]] && prefix="$dir/hopper.cuh"
  { cat "$root/scripts/gpu/nvrtc-shim.h"; cat "$dir/common.cuh"; [[ -n "$prefix" ]] && cat $prefix; cat "$cu"; cat $asserts; } > "$tmp/$name"
  "$clang" -fsyntax-only -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_80 -std=c++17 -Wall -Wno-unknown-cuda-version "$tmp/$name"
  echo "ok: $name"
done
