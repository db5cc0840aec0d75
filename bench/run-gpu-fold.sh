#!/usr/bin/env bash
# Issue #6 experiment: KEM with the token projections folded into the slot side (bench/Kem.Bench/FoldedKem.cs, rows
# kem-fold-r, kem-fold-rw, kem-fold, kem-fold-sm) against the library's KEM and cross-attention, bf16, C# only, then the
# T 3 n 4032 rows once more. From the repository root with .gpu packed and carried, like run-gpu.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh
K=kem,kem-fold-r,kem-fold-rw,kem-fold,kem-fold-sm,ca
phase "modules, C#";                timeout 80 "${CS[@]}" --modules --dtypes bf16 --kinds $K --tasks 2,3,5 --tokens 1008,4032 --budget-s 70
phase "T 3 n 4032 again"; timeout 30 "${CS[@]}" --modules --dtypes bf16 --kinds ca,kem-fold-sm,kem-fold,kem-fold-rw,kem-fold-r,kem --tasks 3 --tokens 4032 --budget-s 24
phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu-fold.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
