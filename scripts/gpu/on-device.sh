#!/usr/bin/env bash
# Runs on the GPU machine (see run-gpu-tests.sh): unpacks .device/kernels-tests.tar.xz, finds the CUDA libraries,
# prints nvidia-smi, runs every Kernels test (the CUDA ones included) and leaves logs and reports under $OUT.
# Extra arguments go to the test executable (xUnit.net v3 in-process runner when started directly), e.g.
#   -namespace Actors.Kernels.Tests.Cuda      (only the GPU tests)    -class "*AttentionCudaTests"    -stopOnFail
# Fails when a CUDA test skipped: on this machine a skip means the backend could not open the device.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$root/.device/out}"
mkdir -p "$out"
log="$out/on-device.log"
exec > >(tee -a "$log") 2>&1

echo "== $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" || echo "nvidia-smi failed"

pkg="$root/.device/kernels-tests.tar.xz"
[[ -f "$pkg" ]] || { echo "missing $pkg: run scripts/gpu/run-gpu-tests.sh here and carry .device"; exit 2; }
work="$(mktemp -d)"
tar -C "$work" -xJf "$pkg" 2>/dev/null \
  || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$pkg" "$work" \
  || { echo "cannot unpack $pkg"; exit 2; }
chmod +x "$work/kernels-tests/Actors.Kernels.Tests"
app="$work/kernels-tests"
echo "== package commit: $(cat "$app/COMMIT" 2>/dev/null)"

# libcuda comes with the driver; NVRTC and cuBLASLt come from the toolkit or from PyTorch's nvidia-* wheels.
dirs=()
if ! ldconfig -p 2>/dev/null | grep -q " libcuda.so.1 "; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [[ -e "$d/libcuda.so.1" ]] && dirs+=("$d") && break
  done
fi
for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [[ -d "$d" ]] && dirs+=("$d")
done
for lib in libnvrtc.so libcublasLt.so; do
  found=""
  for d in ${dirs[@]+"${dirs[@]}"}; do compgen -G "$d/$lib.*" > /dev/null && found="$d" && break; done
  if [[ -z "$found" ]]; then
    hit="$(find /usr /opt -name "$lib.1[23]*" -not -path '*/proc/*' 2>/dev/null | head -1)"
    [[ -n "$hit" ]] && dirs+=("$(dirname "$hit")")
  fi
done
if ((${#dirs[@]})); then export LD_LIBRARY_PATH="$(IFS=:; echo "${dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
for lib in libcuda.so.1 libnvrtc.so.13 libnvrtc.so.12 libcublasLt.so.13 libcublasLt.so.12; do
  where="$(ldconfig -p 2>/dev/null | grep -m1 " $lib " | sed 's/.*=> //')"
  [[ -z "$where" ]] && for d in ${dirs[@]+"${dirs[@]}"}; do [[ -e "$d/$lib" ]] && where="$d/$lib" && break; done
  echo "   $lib: ${where:-not found}"
done

export ACTORS_CACHE="$work/cache"
# first timings at Llama-3-8B shape (tests/Kernels.Tests/Cuda/GpuTimings.cs); ACTORS_GPU_TIMINGS=0 skips them
export ACTORS_GPU_TIMINGS="${ACTORS_GPU_TIMINGS:-1}"
export ACTORS_GPU_REPORT="$out/gpu-timings.md"
printf '| card | what | time | rate |\n|---|---|---|---|\n' > "$ACTORS_GPU_REPORT"
cd "$app"
./Actors.Kernels.Tests -noColor -result-trx "$out/kernels-tests.trx" "$@" 2>&1 | tee "$out/tests.log"
rc=${PIPESTATUS[0]}
echo "== test executable exit code: $rc"
echo "== timings ($ACTORS_GPU_REPORT):"
cat "$ACTORS_GPU_REPORT"

if grep -q "no usable CUDA device" "$out/tests.log"; then
  echo "== CUDA tests SKIPPED on the GPU machine; reason:"
  grep -m1 "no usable CUDA device" "$out/tests.log"
  [[ $rc -eq 0 ]] && rc=3
fi
rm -rf "$work"
exit $rc
