#!/usr/bin/env bash
# On the GPU machine, from the repo root: Nsight Compute on paged_prefill_wgmma in the prefill harness (one launch of the
# given case, 8K causal by default): the throughput, pipe, scheduler and warp-state sections, and per SASS instruction the
# executed count and the warp stall samples (CSV), to find where the consumers' cycles go. ncu locks the SM clock to
# base, so figures are per clock, not at the power limit.
# Usage: OUT=dir [NVFLAGS=...] bash scripts/gpu/prefill-harness/profile.sh [queries]
set -u
OUT="${OUT:-/tmp/prefill-profile}"
mkdir -p "$OUT"
q="${1:-8192}"
NVFLAGS="-DHARNESS_PAGE=64 ${NVFLAGS:-}" bash "$(dirname "$0")/run.sh" "$q" | tail -4
NCU="$(command -v ncu || echo /usr/local/cuda/bin/ncu)"
common=(--kernel-name paged_prefill_wgmma --launch-skip 4 --launch-count 1)
timeout 240 "$NCU" "${common[@]}" --section SpeedOfLight --section ComputeWorkloadAnalysis --section SchedulerStats \
  --section WarpStateStats /tmp/prefill-harness "$q" > "$OUT/sections.txt" 2>&1
grep -vE "^==PROF==|^\s*$" "$OUT/sections.txt" | grep -E "Tensor|Issue Slots|Eligible|Cycles Per|Duration|SM Frequency" | head -20
timeout 240 "$NCU" "${common[@]}" --section SourceCounters --page source --print-source sass --csv /tmp/prefill-harness "$q" \
  > "$OUT/sass.csv" 2>&1
echo "per-instruction counts and stall samples: $OUT/sass.csv ($(wc -l < "$OUT/sass.csv") lines)"
