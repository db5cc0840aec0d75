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

# Soft budgets (s) inside the programs, hard timeouts outside; all hard limits together stay under 10 minutes (the
# device tool's limit for one call): 537 s of phases + at most 45 s of shim build. The soft budgets end it far sooner:
# ~5 minutes with both dtypes (212 s for bf16 alone at 61346f8), which leaves room in a 15-minute lease for a start and
# a short diagnostic run (run-gpu-quick.sh). DTYPES=bf16 (the targets' dtype) skips the fp32 module rows.
# Modules: bf16 rows first, so a spent budget skips fp32 rows only. Per module row: timing pass (≥ 10 iterations and
# 0.4 s, ≤ 50), queued pass (≤ 10 iterations, ≤ 0.3 s), memory pass (3 iterations). C# rows: kem, kem-split (the
# previous head-split layout, an A/B), skem, ca, seq; twin rows: kem, skem, ca, seq, naive KEM; then the twin's profiler
# on KEM / CA / naive KEM at T = 3 in bf16 (kernel time against wall time). The KEM step cut into phases (forward,
# + backward, whole) and its forward by stage (backbone + encoders, interaction, whole forward, losses) on both sides,
# the C# stages also with DOTNET_TieredCompilation=0 (do short rows time unoptimised tier-0 code?).
# The soaks: 1,000 steps each, then 60 C# steps with the NYUD augmentation.
DTYPES=${DTYPES:-bf16,fp32}
phase "modules, C#";              timeout 105 "${CS[@]}" --modules --dtypes "$DTYPES" --budget-s 95
phase "modules, PyTorch";         timeout 110 "${PY[@]}" --modules --dtypes "$DTYPES" --budget-s 100
phase "profile, PyTorch";         timeout 25 "${PY[@]}" --profile --dtypes bf16 --tasks 3 --kinds kem,ca --budget-s 20
phase "step, C#";                 timeout 40 "${CS[@]}" --step --budget-s 32
phase "step, PyTorch";            timeout 35 "${PY[@]}" --step --budget-s 28
phase "step phases, C#";          timeout 20 "${CS[@]}" --phases --budget-s 14
phase "step phases, PyTorch";     timeout 20 "${PY[@]}" --phases --budget-s 14
phase "forward stages, C#";       timeout 20 "${CS[@]}" --segments --budget-s 14
phase "forward stages, PyTorch";  timeout 20 "${PY[@]}" --segments --budget-s 14
phase "forward stages, C#, JIT optimised from the first call"; DOTNET_TieredCompilation=0 timeout 20 "${CS[@]}" --segments --budget-s 14
phase "soak 1000 steps, C#";      timeout 55 "${CS[@]}" --soak 1000 --budget-s 48
phase "soak 1000 steps, PyTorch"; timeout 50 "${PY[@]}" --soak 1000 --budget-s 44
phase "soak 60 steps with NYUD augmentation, C#"; timeout 17 "${CS[@]}" --soak 60 --augment --budget-s 13

phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
