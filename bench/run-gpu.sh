#!/usr/bin/env bash
# Issue #6: the one command for the GPU machine. From the repository root, with .gpu packed by
#   ../shared/gpu/pack bench/Kem.Bench/Kem.Bench.csproj
# and carried:  bash bench/run-gpu.sh
# Runs, phase by phase and C# then PyTorch for each (same machine, same call): interaction modules (eager, then replayed
# as CUDA graphs), whole training step, 1,000 training steps through the loop on generated data. Writes csharp.jsonl, pytorch.jsonl, run.log and
# summary.md (the tables with C#/PyTorch ratios) to $OUT (default ./bench-out). Bounded to under 9 minutes: each
# phase has a budget inside the programs (rows past it are written as skipped) and a hard timeout outside. Since the
# time-based warm-up (0.5 s a module row, 2 s a step row) the last fp32 module rows may fall past their budget.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh

phase "allocator statistics shim (bench/native)"
native=/tmp/kembench-native
export LD_LIBRARY_PATH=$native:${LD_LIBRARY_PATH:-}
if timeout 45 bash bench/native/build.sh "$native" stats; then
  echo "built $native/libkemcudastats.so"
else
  echo "shim not built: C# memory columns fall back to NVML only"
fi
phase "CUDA graph shim (bench/native)"
if timeout 45 bash bench/native/build.sh "$native" graph; then
  echo "built $native/libkemcudagraph.so"
else
  echo "graph shim not built: the C# graph rows are skipped"
fi

# Soft budgets (s) inside the programs, hard timeouts outside; all hard limits together stay under 10 minutes (the
# device tool's limit for one call): 480 s of phases + at most 90 s of shim builds. The soft budgets end it far sooner
# (~5 minutes with both dtypes; 212 s for bf16 alone at 61346f8). DTYPES=bf16 (the targets' dtype) skips the fp32 rows.
# Modules: bf16 rows first, so a spent budget skips fp32 rows only. Per module row: timing pass (≥ 10 iterations and
# 0.4 s, ≤ 50), queued pass (≤ 10 iterations, ≤ 0.3 s), memory pass (3 iterations). C# rows: kem, kem-gather (the
# previous Retrieve: k gathered value rows per slot, an A/B), skem, ca, seq; twin rows: kem, skem, ca, seq, naive KEM. Then the diagnostic
# CUDA-graph rows (KEM, sKEM, CA at n 4032 in bf16, replayed as one graph on both sides: the cost without launches),
# the twin's profiler on KEM / CA / naive KEM at T = 3 in bf16 (kernel time against wall time), the whole step, the KEM
# step cut into phases (forward + losses, + backward, whole: does the C# forward still wait for the GPU?) and the soaks
# (1,000 steps each). Dropped from this run for time, still in the programs: --segments (forward by stage), the JIT
# comparison (DOTNET_TieredCompilation=0) and the augmented soak (--soak 60 --augment; run-gpu-quick.sh has 30 steps).
DTYPES=${DTYPES:-bf16,fp32}
GRAPH_ROWS=(--dtypes bf16 --tokens 4032 --kinds kem,skem,ca)
phase "modules, C#";              timeout 95 "${CS[@]}" --modules --dtypes "$DTYPES" --budget-s 85
phase "modules, PyTorch";         timeout 100 "${PY[@]}" --modules --dtypes "$DTYPES" --budget-s 90
phase "CUDA graphs, C#";          timeout 20 "${CS[@]}" --graphs "${GRAPH_ROWS[@]}" --budget-s 14
phase "CUDA graphs, PyTorch";     timeout 20 "${PY[@]}" --graphs "${GRAPH_ROWS[@]}" --budget-s 14
phase "profile, PyTorch";         timeout 25 "${PY[@]}" --profile --dtypes bf16 --tasks 3 --kinds kem,ca --budget-s 20
phase "step, C#";                 timeout 40 "${CS[@]}" --step --budget-s 32
phase "step, PyTorch";            timeout 35 "${PY[@]}" --step --budget-s 28
phase "step phases, C#";          timeout 20 "${CS[@]}" --phases --budget-s 14
phase "step phases, PyTorch";     timeout 20 "${PY[@]}" --phases --budget-s 14
phase "soak 1000 steps, C#";      timeout 55 "${CS[@]}" --soak 1000 --budget-s 48
phase "soak 1000 steps, PyTorch"; timeout 50 "${PY[@]}" --soak 1000 --budget-s 44

phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
