#!/usr/bin/env bash
# Builds what the GPU machine runs: tests/Kernels.Tests published self-contained for linux-x64 (the GPU machine has no
# .NET), packed as .device/kernels-tests.tar.xz together with scripts/gpu/on-device.sh. .device/ is ignored by git, so
# the device run must carry it:  run(command="bash scripts/gpu/on-device.sh", carry=[".device"]).
# Usage: scripts/gpu/run-gpu-tests.sh            (publish + pack; prints the size and the device command)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="$root/.device"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"

dotnet publish tests/Kernels.Tests -c Release -r linux-x64 --self-contained -o "$stage/kernels-tests" \
  -p:InvariantGlobalization=true -p:PublishTrimmed=false -p:DebugType=none -p:DebugSymbols=false \
  -p:GenerateDocumentationFile=false -p:SatelliteResourceLanguages=en -nologo -v:q
test -x "$stage/kernels-tests/Actors.Kernels.Tests" || { echo "publish produced no Actors.Kernels.Tests executable" >&2; exit 1; }

git -C "$root" rev-parse HEAD > "$stage/kernels-tests/COMMIT" 2>/dev/null || echo unknown > "$stage/kernels-tests/COMMIT"
if ! git -C "$root" diff --quiet HEAD 2>/dev/null; then echo "(with uncommitted changes)" >> "$stage/kernels-tests/COMMIT"; fi

XZ_OPT="-9 -T2" tar -C "$stage" -cJf "$out/kernels-tests.tar.xz.tmp" kernels-tests
mv "$out/kernels-tests.tar.xz.tmp" "$out/kernels-tests.tar.xz"
size=$(stat -c %s "$out/kernels-tests.tar.xz")
echo "packed $out/kernels-tests.tar.xz: $((size / 1024 / 1024)) MiB ($size bytes), commit $(head -1 "$stage/kernels-tests/COMMIT")"
if (( size > 60 * 1024 * 1024 )); then echo "package exceeds 60 MiB: the device carry limit is 64 MiB in all" >&2; exit 1; fi
echo "device command: run(command=\"bash scripts/gpu/on-device.sh\", carry=[\".device\"])"
