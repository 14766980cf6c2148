#!/usr/bin/env bash
# Builds the bench of each given commit as an overlay on the bundle of scripts/gpu/publish.sh, for A/B runs and
# bisects on one card in one device call: timings move by several percent between machines of the pool, so two
# commits compare only side by side, alternating.
#
# A self-contained publish is ~115 MB, and a device call carries 64 MiB. Commits of this repo share the .NET runtime,
# so an overlay keeps only the project's own assemblies (Actors.*.dll, actors-*.dll and the bench's deps.json, ~0.1 MB
# packed per commit). A commit whose bench takes a NuGet package the bundle lacks needs a bundle of its own.
# Packed as .device/overlays.tar.xz (git-ignored) beside .device/actors-gpu.tar.xz.
#
# Usage (here):            bash scripts/gpu/overlays.sh 284f99d d748208 ...   (names other than [A-Za-z0-9._-] become _)
# On the GPU machine (carry .device/actors-gpu.tar.xz, .device/overlays.tar.xz and this script):
#   bash scripts/gpu/overlays.sh --unpack DIR   # DIR/<commit>/bin: the bundle's bin with that commit's assemblies
#   for r in 1 2 3; do for c in 284f99d d748208; do DIR/$c/bin/actors-gpubench --only "decode attention"; done; done
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ "${1:-}" == "--unpack" ]]; then
  dir="${2:?usage: overlays.sh --unpack DIR}"
  mkdir -p "$dir"
  tar -C "$dir" -xJf "$root/.device/actors-gpu.tar.xz"
  tar -C "$dir" -xJf "$root/.device/overlays.tar.xz"
  for o in "$dir"/overlays/*/; do
    c="$(basename "$o")"
    mkdir -p "$dir/$c"
    cp -r "$dir/actors-gpu/bin" "$dir/$c/bin"
    cp "$o"/* "$dir/$c/bin/"
    echo "$dir/$c/bin: $(cat "$o/COMMIT")"
  done
  exit 0
fi
[[ $# -ge 1 ]] || { echo "usage: overlays.sh COMMIT... | --unpack DIR" >&2; exit 2; }
out="$root/.device"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"; git -C "$root" worktree prune' EXIT
mkdir -p "$stage/overlays"
for c in "$@"; do
  sha="$(git -C "$root" rev-parse --verify "$c^{commit}")"
  name="$(echo "$c" | tr -c 'A-Za-z0-9._\n-' '_')"
  tree="$stage/tree-$name"
  git -C "$root" worktree add -f --detach "$tree" "$sha" -q
  echo "publish bench/GpuBench at $c ($sha)" >&2
  dotnet publish "$tree/bench/GpuBench" -c Release -r linux-x64 --self-contained true -o "$stage/bin-$name" \
    -p:PublishTrimmed=false -p:DebugType=none -p:GenerateDocumentationFile=false -nologo -v quiet >&2
  mkdir -p "$stage/overlays/$name"
  cp "$stage/bin-$name"/Actors.*.dll "$stage/bin-$name"/actors-*.dll "$stage/bin-$name"/actors-gpubench.deps.json "$stage/overlays/$name/"
  echo "$sha" > "$stage/overlays/$name/COMMIT"
  git -C "$root" worktree remove --force "$tree"
done
tar -C "$stage" -cf - overlays | xz -T0 -9 > "$out/overlays.tar.xz"
ls -l "$out/overlays.tar.xz" >&2
