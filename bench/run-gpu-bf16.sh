#!/usr/bin/env bash
# Issue #6: the bf16 rows of run-gpu.sh that carry the targets, in about 5 minutes (hard limits 372 s), for a device
# call with less time left than the full run needs. From the repository root with .gpu packed and carried, like
# run-gpu.sh. Modules in bf16 (kem, skem, ca; the twin adds the naive KEM), the twin's profiler at T 3,
# n 4032, the whole step and its phases, and 1,000 steps of the training loop on both sides. Left out against
# run-gpu.sh: fp32 and the sequential design's rows and the CUDA-graph diagnostic (and so the native shims: memory
# columns are NVML only). Run 4 of 2026-11-26 ran it without the phases (183 s) and with kem-gather, before the
# time-based warm-up.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh
M=(--dtypes bf16 --kinds kem,skem,ca)
phase "modules, C#";              timeout 52 "${CS[@]}" --modules "${M[@]}" --budget-s 44
phase "modules, PyTorch";         timeout 58 "${PY[@]}" --modules "${M[@]}" --budget-s 50
phase "step, C#";                 timeout 50 "${CS[@]}" --step --budget-s 44
phase "step, PyTorch";            timeout 40 "${PY[@]}" --step --budget-s 34
phase "step phases, C#";          timeout 28 "${CS[@]}" --phases --budget-s 22
phase "step phases, PyTorch";     timeout 28 "${PY[@]}" --phases --budget-s 22
phase "soak 1000 steps, C#";      timeout 52 "${CS[@]}" --soak 1000 --budget-s 44
phase "profile, PyTorch";         timeout 18 "${PY[@]}" --profile --dtypes bf16 --tasks 3 --tokens 4032 --kinds kem,ca --budget-s 12
phase "soak 1000 steps, PyTorch"; timeout 46 "${PY[@]}" --soak 1000 --budget-s 40
phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu-bf16.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
