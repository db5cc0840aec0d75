#!/usr/bin/env bash
# Issue #6: a short diagnostic subset of run-gpu.sh (about 2 minutes), for a device call that must leave time for the
# full run: the headline module rows (bf16, T = 3, n 252 and 4032: KEM, "kem-gather" (KEM with the previous Retrieve: k gathered value rows per slot),
# CA, naive KEM) on both sides with the host and queued columns, the twin's profiler on the same rows (kernel time
# against wall time, kernel count, top kernels), the C# KEM whole step at T = 2 and its phases (does the forward still
# wait for the GPU?), 300 C# soak steps (NVML busy, GC pauses) and 30 C# soak steps with the NYUD augmentation on the GPU. Same layout as run-gpu.sh: packed .gpu carried,
# files to $OUT. No allocator shim (memory columns NVML only). WITH_TWIN_LOOP=1 adds the twin's step and soak.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh
ROWS=(--dtypes bf16 --tasks 3 --tokens 252,4032 --kinds kem,ca)
phase "modules, C#";           timeout 60 "${CS[@]}" --modules "${ROWS[@]}" --kinds kem,ca --budget-s 45
phase "modules, PyTorch";      timeout 60 "${PY[@]}" --modules "${ROWS[@]}" --budget-s 45
phase "profile, PyTorch";      timeout 45 "${PY[@]}" --profile "${ROWS[@]}" --budget-s 35
phase "step, C#";              timeout 45 "${CS[@]}" --step --kinds kem --step-tasks 2 --budget-s 35
[[ ${WITH_TWIN_LOOP:-0} == 1 ]] && { phase "step, PyTorch"; timeout 40 "${PY[@]}" --step --kinds kem --step-tasks 2 --budget-s 30; }
phase "step phases, C#";       timeout 20 "${CS[@]}" --phases --budget-s 14
phase "soak 300 steps, C#";    timeout 50 "${CS[@]}" --soak 300 --budget-s 40
[[ ${WITH_TWIN_LOOP:-0} == 1 ]] && { phase "soak 300 steps, PyTorch"; timeout 45 "${PY[@]}" --soak 300 --budget-s 35; }
phase "soak 30 steps with NYUD augmentation, C#"; timeout 30 "${CS[@]}" --soak 30 --augment --budget-s 22
phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu-quick.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
