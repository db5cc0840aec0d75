#!/usr/bin/env bash
# Issue #6 experiment: where KEM's host time goes. C# module rows of the library's KEM beside KemVariant's switches
# (bench/Kem.Bench/KemVariant.cs: rows kem-v-*), twice, then the per-op host costs (--probe) on both sides and the
# twin's profiler at T 3, n 4032 (kernel time and host time by op). From the repository root with .gpu packed and
# carried, like run-gpu.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh
K=kem,kem-v-lib,kem-v-mm,kem-v-mm-slot,kem-v-mm-all,kem-v-slot,kem-v-old,ca
phase "modules, C#";        timeout 50 "${CS[@]}" --modules --dtypes bf16 --kinds $K --tasks 3,5 --tokens 4032 --budget-s 44
phase "modules, C#, again"; timeout 50 "${CS[@]}" --modules --dtypes bf16 --kinds $K --tasks 3 --tokens 1008,4032 --budget-s 44
phase "probe, C#";          timeout 40 "${CS[@]}" --probe --budget-s 12
phase "probe, PyTorch";     timeout 40 "${PY[@]}" --probe --budget-s 12
phase "profile, PyTorch";   timeout 30 "${PY[@]}" --profile --dtypes bf16 --tasks 3 --tokens 4032 --kinds kem,ca --budget-s 20
phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu-variants.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
