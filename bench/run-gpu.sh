#!/usr/bin/env bash
# Issue #6: the one command for the GPU machine. From the repository root, with .gpu packed by
#   ../shared/gpu/pack bench/Kem.Bench/Kem.Bench.csproj
# and carried:  bash bench/run-gpu.sh
# Runs, phase by phase and C# then PyTorch for each (same machine, same call): interaction modules, whole training
# step, 1,000 training steps through the loop on generated data. Writes csharp.jsonl, pytorch.jsonl, run.log and
# summary.md (the tables with C#/PyTorch ratios) to $OUT (default ./bench-out). Bounded to under 9 minutes: each
# phase has a budget inside the programs (rows past it are written as skipped) and a hard timeout outside.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh

phase "allocator statistics shim (bench/native)"
native=/tmp/kembench-native
if timeout 45 bash bench/native/build.sh "$native"; then
  export LD_LIBRARY_PATH=$native:${LD_LIBRARY_PATH:-}
  echo "built $native/libkemcudastats.so"
else
  echo "shim not built: C# memory columns fall back to NVML only"
fi

# Soft budgets (s) inside the programs, hard timeouts outside; all hard limits together stay under 9.5 minutes
# (505 s of phases + at most 45 s of shim build + the machine lines), so that a 15-minute device lease holds this run and
# a short diagnostic run (run-gpu-quick.sh). Modules: bf16 rows only (the targets are bf16; the fp32 rows of the first
# H100 run are in `git show 72c873c:bench/RESULTS.md`). Per module row: timing pass (≥ 10 iterations and 0.4 s, ≤ 50), queued pass
# (≤ 10 iterations, ≤ 0.3 s), memory pass (3 iterations). C# rows: kem, kem-split (the previous head-split layout, an
# A/B), skem, ca, seq; twin rows: kem, skem, ca, seq, naive KEM; then the twin's profiler on KEM / CA / naive KEM at
# T = 3 (kernel time against wall time). The KEM step cut into phases (forward, + backward, whole) and its forward by
# stage (backbone + encoders, interaction, whole forward, losses) on both sides. The soaks: 1,000 steps each, then 60 C#
# steps with the NYUD augmentation.
phase "modules, C#";              timeout 62 "${CS[@]}" --modules --dtypes bf16 --budget-s 50
phase "modules, PyTorch";         timeout 68 "${PY[@]}" --modules --dtypes bf16 --budget-s 55
phase "profile, PyTorch";         timeout 35 "${PY[@]}" --profile --dtypes bf16 --tasks 3 --kinds kem,ca --budget-s 25
phase "step, C#";                 timeout 60 "${CS[@]}" --step --budget-s 48
phase "step, PyTorch";            timeout 45 "${PY[@]}" --step --budget-s 36
phase "step phases, C#";          timeout 25 "${CS[@]}" --phases --budget-s 18
phase "step phases, PyTorch";     timeout 25 "${PY[@]}" --phases --budget-s 18
phase "forward stages, C#";       timeout 25 "${CS[@]}" --segments --budget-s 18
phase "forward stages, PyTorch";  timeout 25 "${PY[@]}" --segments --budget-s 18
phase "soak 1000 steps, C#";      timeout 60 "${CS[@]}" --soak 1000 --budget-s 52
phase "soak 1000 steps, PyTorch"; timeout 50 "${PY[@]}" --soak 1000 --budget-s 44
phase "soak 60 steps with NYUD augmentation, C#"; timeout 25 "${CS[@]}" --soak 60 --augment --budget-s 16

phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
