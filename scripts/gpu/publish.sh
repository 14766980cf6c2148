#!/usr/bin/env bash
# Builds the GPU bundle on a machine without a GPU: self-contained linux-x64 publishes of tests/Engine.Tests,
# tests/Kernels.Tests and bench/GpuBench into one folder (they share the runtime files), plus the parity fixtures,
# the HF baseline and the on-device scripts, packed as .device/actors-gpu.tar.xz (git-ignored).
# The device then needs no .NET SDK: scripts/gpu/on-device-all.sh unpacks and runs everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.device"
stage="$out/stage/actors-gpu"
rm -rf "$out/stage"
mkdir -p "$stage/bin" "$stage/tests/fixtures" "$stage/tools/reference" "$stage/scripts/gpu"
for p in tests/Engine.Tests tests/Kernels.Tests bench/GpuBench; do
  echo "publish $p" >&2
  dotnet publish "$root/$p" -c Release -r linux-x64 --self-contained true -o "$stage/bin" \
    -p:PublishTrimmed=false -p:DebugType=none -p:GenerateDocumentationFile=false -nologo -v quiet >&2
done
cp -r "$root/tests/fixtures/models" "$stage/tests/fixtures/"
cp "$root/tools/reference/hf_baseline.py" "$root/tools/reference/scale_parity.py" "$stage/tools/reference/"
cp "$root/scripts/gpu/bench.sh" "$root/scripts/gpu/on-device-all.sh" "$root/scripts/gpu/scale-parity.sh" "$stage/scripts/gpu/"
git -C "$root" rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"
tar -C "$out/stage" -cf - actors-gpu | xz -T0 -9 > "$out/actors-gpu.tar.xz"
rm -rf "$out/stage"
ls -l "$out/actors-gpu.tar.xz" >&2
