#!/usr/bin/env bash
# Issue #6: where the C# step's host time goes on CUDA (about 2 minutes). From the repository root with .gpu packed
# and carried, like run-gpu.sh. Both sides: --probe (host cost per op kind on tiny tensors; every part of the KEM step
# timed on the host with an idle GPU and right after ~40 ms of queued GPU work, which finds a host synchronisation),
# --segments and --phases (the forward by stage, the step by phase); then the C# parts again with the JIT optimising
# from the first call (DOTNET_TieredCompilation=0): whether the short warm-up leaves C# running unoptimised code.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh
phase "probe, C#";                        timeout 60 "${CS[@]}" --probe --budget-s 50
phase "probe, PyTorch";                   timeout 60 "${PY[@]}" --probe --budget-s 50
phase "segments and phases, C#";          timeout 40 "${CS[@]}" --segments --phases --budget-s 32
phase "segments and phases, PyTorch";     timeout 40 "${PY[@]}" --segments --phases --budget-s 32
phase "segments and phases, C#, full JIT"; DOTNET_TieredCompilation=0 timeout 40 "${CS[@]}" --segments --phases --budget-s 32
phase "summary"
python3 bench/compare.py "$OUT" | tee "$OUT/summary.md"
echo; echo "run-gpu-probe.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
