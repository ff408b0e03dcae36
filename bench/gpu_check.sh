#!/usr/bin/env bash
# The recorded GPU run: one prepared script for a CUDA machine (no Jupyter needed).
#
#   bash bench/gpu_check.sh                      # on the GPU machine, from the repository root
#   ALLOW_CPU=1 PRESET=ci SMOKE_STEPS=6 MAX_STEPS=30 OUT=/tmp/gpu-rehearsal bash bench/gpu_check.sh
#
# 1. records the date, nvidia-smi and the course's device plan;
# 2. a smoke test of every CUDA path (bench/gpu_smoke.py: bfloat16 autocast, fused AdamW, TF32,
#    torch.compile, pinned memory, checkpoint and resume) for SMOKE_STEPS steps;
# 3. the PRESET run (default gpu) with `python -m course_lib.train`, and copies its run card,
#    metrics and loss curve into OUT (default runs/reference), which notebook 09 renders.
# Needs python3 with torch and NumPy. The checkpoint stays in OUT/run and is not committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-runs/reference}"
PRESET="${PRESET:-gpu}"
SMOKE_STEPS="${SMOKE_STEPS:-20}"
MAX_STEPS="${MAX_STEPS:-}"
ALLOW_CPU="${ALLOW_CPU:-}"

if [ -e "$OUT/run_card.json" ] && [ -z "${FORCE:-}" ]; then
  echo "$OUT already holds a recorded run; FORCE=1 replaces it" >&2
  exit 2
fi
rm -rf "$OUT/run" "$OUT/smoke-runs"
mkdir -p "$OUT"
date -u +"%Y-%m-%d %H:%M UTC" > "$OUT/DATE"
(nvidia-smi 2>&1 || echo "nvidia-smi: not available") > "$OUT/nvidia-smi.txt"
"$PY" -m course_lib.device > "$OUT/device.txt"
cat "$OUT/device.txt"

echo "== smoke test ($SMOKE_STEPS steps, preset $PRESET)"
start=$(date +%s)
"$PY" bench/gpu_smoke.py --out "$OUT/smoke-runs" --json "$OUT/smoke.json" --preset "$PRESET" \
  --steps "$SMOKE_STEPS" ${ALLOW_CPU:+--allow-cpu}
echo "smoke test: $(( $(date +%s) - start )) s"

echo "== the $PRESET preset"
start=$(date +%s)
"$PY" -m course_lib.train --preset "$PRESET" ${MAX_STEPS:+--max-steps "$MAX_STEPS"} \
  --no-progress --out "$OUT/run" 2>&1 | tee "$OUT/train.log"
echo "run: $(( $(date +%s) - start )) s" | tee -a "$OUT/train.log"
cp "$OUT/run/run_card.json" "$OUT/run/run_card.md" "$OUT/run/metrics.jsonl" "$OUT/"
if [ -f "$OUT/run/loss.png" ]; then cp "$OUT/run/loss.png" "$OUT/"; fi
rm -rf "$OUT/smoke-runs"
echo "done: $OUT"
