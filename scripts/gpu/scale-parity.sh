#!/usr/bin/env bash
# On the GPU machine, from the repo root, after scripts/gpu/publish.sh made .device/actors-gpu.tar.xz:
# the at-scale parity check of issue 3 item 4. Per family (Llama-3-8B shape, then Qwen2-7B shape):
#   1. tools/reference/scale_parity.py: random bf16 weights on the device, saved as safetensors (one 15-16 GB model per
#      family, shared by its RoPE variants), transformers teacher-forced in bf16 and f32 per variant;
#   2. actors-gpubench --scale-parity per variant: the CUDA engine over the same tokens, judged against transformers;
#   3. the family's directory is deleted before the next one (disk stays under ~17 GB).
# Variants (tools/reference/scale_parity.py VARIANTS): llama linear-8k (x4), llama3-8k (factor 8, original 2048),
# linear-32k; qwen2 yarn-8k (x4, original 2048), yarn-32k (x4, original 8192). Later variants are skipped when the
# time budget (SCALE_BUDGET_S, default 450 s) runs short; every skip and failure is recorded, the rest go on.
# Usage: [OUT=dir] bash scripts/gpu/scale-parity.sh [bundle dir]
#   env: SCALE_BUDGET_S, SCALE_FAMILIES ("llama qwen2"), SCALE_LLAMA / SCALE_QWEN2 (comma-separated variants),
#        SCALE_WORK (where models go; default /dev/shm when it has 40 GB free, else /tmp), SCALE_NO_F32=1, SCALE_CHUNK
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$root/.device/out}"
res="$OUT/scale-parity"
mkdir -p "$res"
start=$SECONDS
budget="${SCALE_BUDGET_S:-450}"
left() { echo $((budget - (SECONDS - start))); }
log() { echo "[$((SECONDS - start)) s] $*"; }

unpacked=""
if [ -n "${1:-}" ]; then
  b="$1"
else
  unpacked="$(mktemp -d)"
  tar -C "$unpacked" -xJf "$root/.device/actors-gpu.tar.xz" || { echo "no bundle: run scripts/gpu/publish.sh first"; exit 2; }
  b="$unpacked/actors-gpu"
  log "bundle unpacked (commit $(cat "$b/COMMIT" 2>/dev/null))"
fi
bin="$b/bin/actors-gpubench"
py="$root/tools/reference/scale_parity.py"
[ -f "$py" ] || py="$b/tools/reference/scale_parity.py"
export ACTORS_CACHE="${ACTORS_CACHE:-$OUT/cache}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1

if [ -z "${SCALE_WORK:-}" ]; then
  shm_free=$(df -B1G --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
  if [ -n "$shm_free" ] && [ "$shm_free" -ge 40 ] 2>/dev/null; then SCALE_WORK=/dev/shm/actors-scale; else SCALE_WORK="${TMPDIR:-/tmp}/actors-scale"; fi
fi
log "work dir $SCALE_WORK ($(df -h --output=avail "$(dirname "$SCALE_WORK")" | tail -1 | tr -d ' ') free), results in $res, budget ${budget} s"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>&1 | tee "$res/device.txt"
f32_flag=""
[ "${SCALE_NO_F32:-0}" = "1" ] && f32_flag="--no-f32"
status=0

for fam in ${SCALE_FAMILIES:-llama qwen2}; do
  case "$fam" in
    llama) variants="${SCALE_LLAMA:-linear-8k,llama3-8k,linear-32k}" ;;
    qwen2) variants="${SCALE_QWEN2:-yarn-8k,yarn-32k}" ;;
    *) echo "unknown family $fam"; status=1; continue ;;
  esac
  l=$(left)
  if [ "$l" -lt 100 ]; then
    log "$fam: skipped, ${l} s of the budget left"; echo "{\"skipped\": \"budget\"}" > "$res/$fam-skipped.json"; status=1; continue
  fi
  # Seconds the reference side may spend before it skips its remaining variants and f32 runs (scale_parity.py checks
  # between steps): about 32% of what is left while the qwen2 family still has to follow llama, else 60% of what
  # is left after the engine runs of this family (about 30 s each); at most 170 s.
  nv=$(echo "$variants" | tr ',' '\n' | wc -l)
  if [ "$fam" = llama ] && [[ " ${SCALE_FAMILIES:-llama qwen2} " == *" qwen2 "* ]]; then share=$((l * 32 / 100)); else share=$(((l - 30 * nv) * 60 / 100)); fi
  [ "$share" -gt 170 ] && share=170
  [ "$share" -lt 60 ] && share=60
  work="$SCALE_WORK/$fam"
  rm -rf "$work"
  mkdir -p "$work"
  log "== $fam: transformers reference ($variants), reference budget ${share} s"
  timeout $((share + 90)) python3 "$py" --family "$fam" --work "$work" --variants "$variants" --budget-s "$share" $f32_flag \
    2>&1 | tee "$res/$fam-reference.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { log "$fam: reference exit $rc (124: timed out)"; status=1; }
  cp "$work/reference.json" "$res/$fam-reference.json" 2>/dev/null
  for v in ${variants//,/ }; do
    if [ ! -f "$work/$v/ref.json" ] || ! grep -q '"bf16_forward_s"' "$work/$v/ref.json"; then
      log "$fam/$v: no reference, engine side skipped"; status=1; continue
    fi
    l=$(left)
    if [ "$l" -lt 30 ]; then log "$fam/$v: engine side skipped, ${l} s left"; status=1; continue; fi
    t=$((l < 150 ? l : 150))
    log "== $fam/$v: engine (timeout ${t} s)"
    timeout "$t" "$bin" --scale-parity --model "$work/model" --variant "$work/$v" --out "$res/$fam-$v.json" \
      --chunk "${SCALE_CHUNK:-2048}" 2>&1 | tee "$res/$fam-$v.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { log "$fam/$v: engine exit $rc (1: parity failed or error, 124: timed out)"; status=1; }
  done
  rm -rf "$work"
  log "$fam done, work dir removed"
done

python3 - "$res" <<'PY' | tee "$res/summary.txt"
import glob, json, os, sys
res = sys.argv[1]
def pct(x): return f"{x:.3%}" if isinstance(x, (int, float)) else "-"
def sci(x): return f"{x:.3e}" if isinstance(x, (int, float)) else "-"
print(f"{'case':<20} {'ref':<5} {'worst rel':>10} {'HF bf16 rel':>11} {'argmax':>9} {'HF bf16':>9} {'decisive':>9} {'pass':>5}  errors")
for p in sorted(glob.glob(os.path.join(res, "*.json"))):
    name = os.path.basename(p)[:-5]
    if name.endswith("-reference") or name.endswith("-skipped"):
        continue
    try:
        r = json.load(open(p))
    except Exception as e:
        print(f"{name:<20} unreadable: {e}"); continue
    c = r.get("comparisons", {})
    ref = "f32" if "engine_vs_transformers_f32" in c else "bf16"
    e = c.get(f"engine_vs_transformers_{ref}", {})
    y = c.get("yardstick_transformers_bf16_vs_f32", {})
    print(f"{name:<20} {ref:<5} {sci(e.get('worst_relative_error')):>10} {sci(y.get('worst_relative_error')):>11} "
          f"{pct(e.get('argmax_agreement')):>9} {pct(y.get('argmax_agreement')):>9} {pct(e.get('decisive_agreement')):>9} "
          f"{str(r.get('pass', '-')):>5}  {json.dumps(r.get('errors') or {})}")
for p in sorted(glob.glob(os.path.join(res, "*-reference.json"))):
    r = json.load(open(p))
    t = r.get("timings_s", {})
    errs = {v: x.get("errors") for v, x in r.get("variants", {}).items() if x.get("errors")}
    print(f"{os.path.basename(p)}: build {t.get('build', 0):.1f} s, save {t.get('save', 0):.1f} s "
          f"({r.get('saved_bytes', 0) / 1e9:.1f} GB), total {r.get('total_s', 0):.1f} s; errors {json.dumps(errs)}")
print("(worst rel: max |engine - ref| / max |ref| per sampled row, worst row; argmax: share of all positions agreeing; "
      "HF bf16: transformers bf16 against f32, the yardstick; decisive: agreement where the reference top-2 margin "
      "exceeds twice the largest |diff|; pass: worst rel <= 2e-2 and argmax >= 99% against the f32 reference)")
PY
[ -n "$unpacked" ] && rm -rf "$unpacked"
log "scale parity finished, exit $status"
exit $status
