#!/usr/bin/env bash
# On the GPU machine: runs bench/GpuBench (ours) and tools/reference/hf_baseline.py (transformers) on the same card,
# then prints one table with the ratio ours/HF. Usage: bench.sh <bundle dir> <out dir> [--quick]
set -uo pipefail
bundle="$1"; out="$2"; shift 2
mkdir -p "$out"
export ACTORS_CACHE="${ACTORS_CACHE:-$out/cache}"
echo "== ours: actors-gpubench"
timeout 360 "$bundle/bin/actors-gpubench" --out "$out/ours.json" "$@" 2>&1 | tee "$out/ours.log"; ours_rc=${PIPESTATUS[0]}
echo "== Hugging Face transformers baseline"
timeout 240 python3 "$bundle/tools/reference/hf_baseline.py" --out "$out/hf.json" "$@" 2>&1 | tee "$out/hf.log"; hf_rc=${PIPESTATUS[0]}
python3 - "$out/ours.json" "$out/hf.json" <<'PY' | tee "$out/combined.txt"
import json, os, sys
def load(p):
    try:
        return json.load(open(p))
    except Exception as e:
        print(f"(no {os.path.basename(p)}: {e})")
        return {}
ours, hf = load(sys.argv[1]), load(sys.argv[2])
print(f"ours: {ours.get('device', '?')}")
print(f"HF:   {hf.get('device', '?')}  torch {hf.get('torch', '?')}  transformers {hf.get('transformers', '?')}")
print(f"{'metric':<44} {'ours':>12} {'HF':>12} {'ours/HF':>9}")
keys = [k for k in ours if isinstance(ours[k], (int, float))] + [k for k in hf if isinstance(hf[k], (int, float)) and k not in ours]
for k in keys:
    a, b = ours.get(k), hf.get(k)
    fa = f"{a:12.2f}" if isinstance(a, (int, float)) else f"{'-':>12}"
    fb = f"{b:12.2f}" if isinstance(b, (int, float)) else f"{'-':>12}"
    r = f"{a / b:9.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else f"{'-':>9}"
    print(f"{k:<44} {fa} {fb} {r}")
print("(ms, joules: lower is better; TFLOP/s, tokens/s, TB/s: higher is better; watts: the mean draw)")
PY
echo "actors-gpubench exit $ours_rc, hf_baseline exit $hf_rc (124: timed out)"
[ "$ours_rc" -eq 0 ] && [ "$hf_rc" -eq 0 ]
