#!/usr/bin/env bash
# Issue #6: the one command for the GPU machine. From the repository root, with .gpu packed by
#   ../shared/gpu/pack bench/Kem.Bench/Kem.Bench.csproj
# and carried:  bash bench/run-gpu.sh
# Runs, phase by phase and C# then PyTorch for each (same machine, same call): interaction modules, whole training
# step, 1,000 training steps through the loop on generated data. Writes csharp.jsonl, pytorch.jsonl, run.log and
# summary.md (the tables with C#/PyTorch ratios) to $OUT (default ./bench-out). Bounded to about 9 minutes: each
# phase has a budget inside the programs (rows past it are written as skipped) and a hard timeout outside.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
start=$(date +%s)
phase() { echo; echo "=== $* (t=$(( $(date +%s) - start )) s)"; }

phase "machine"
date -u +"%Y-%m-%d %H:%M:%S UTC"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
python3 -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))'
[[ -f .gpu/run.sh ]] || { echo "run-gpu.sh: .gpu/ is missing: pack with ../shared/gpu/pack bench/Kem.Bench/Kem.Bench.csproj and carry .gpu"; exit 1; }

phase "allocator statistics shim (bench/native)"
native=/tmp/kembench-native
if timeout 60 bash bench/native/build.sh "$native"; then
  export LD_LIBRARY_PATH=$native:${LD_LIBRARY_PATH:-}
  echo "built $native/libkemcudastats.so"
else
  echo "shim not built: C# memory columns fall back to NVML only"
fi

CS=(bash .gpu/run.sh Kem.Bench.dll --out "$OUT")
PY=(python3 bench/twin/bench.py --out "$OUT")
# Soft budgets (s) inside the programs, hard timeouts outside; all hard limits together stay under 10 minutes
# (495 s of phases + at most 60 s of shim build + the machine lines). Modules run bf16 rows first (T=3, n=4032, bf16 is
# the headline row), so a spent budget skips fp32 rows only. Per module row: timing pass (≥ 10 iterations and 0.4 s,
# ≤ 50), queued pass (≤ 10 iterations, ≤ 0.3 s), memory pass (3 iterations); 72 C# rows (kem, skem, ca, seq), 90 twin
# rows (+ naive KEM). The soaks took 48 s (C#) and 42 s (PyTorch) of training in the last run.
phase "modules, C#";              timeout 110 "${CS[@]}" --modules --budget-s 95
phase "modules, PyTorch";         timeout 120 "${PY[@]}" --modules --budget-s 105
phase "step, C#";                 timeout 65 "${CS[@]}" --step --budget-s 50
phase "step, PyTorch";            timeout 50 "${PY[@]}" --step --budget-s 38
phase "soak 1000 steps, C#";      timeout 80 "${CS[@]}" --soak 1000 --budget-s 68
phase "soak 1000 steps, PyTorch"; timeout 70 "${PY[@]}" --soak 1000 --budget-s 60

phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
