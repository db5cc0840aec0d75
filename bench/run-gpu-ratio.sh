#!/usr/bin/env bash
# Issue #6: the KEM-versus-CA ratio at T 3, n 4032, bf16, measured REPEATS times (default 4) in separate processes on
# both sides, C# and PyTorch alternating, so that the spread between processes (host jitter moves KEM's median, which is
# bound by its host time) shows next to the ratio. From the repository root with .gpu packed and carried, like run-gpu.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/gpu-run-common.sh
R=(--modules --dtypes bf16 --kinds kem,ca --tasks 3 --tokens 4032)
for i in $(seq 1 "${REPEATS:-4}"); do
  phase "pass $i, C#";      timeout 25 "${CS[@]}" "${R[@]}" --budget-s 20
  phase "pass $i, PyTorch"; timeout 30 "${PY[@]}" "${R[@]}" --budget-s 20
done
phase "summary"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
out = sys.argv[1]
for impl, name in (("csharp", "C#"), ("pytorch", "PyTorch")):
    rows = [json.loads(l) for l in open(f"{out}/{impl}.jsonl")]
    rows = [r for r in rows if r.get("bench") == "module" and r.get("status") == "ok"]
    kem = [r for r in rows if r["kind"] == "kem" and r.get("impl", impl) == impl]
    ca = [r for r in rows if r["kind"] == "ca"]
    print(f"## {name}: KEM vs CA, T 3, n 4032, bf16, one pair per process")
    print("| pass | KEM ms | KEM host ms | KEM queued ms | CA ms | CA queued ms | CA/KEM | CA/KEM queued |")
    print("|---|---|---|---|---|---|---|---|")
    ratios, queued = [], []
    for i, (k, c) in enumerate(zip(kem, ca), 1):
        ratios.append(c["median_ms"] / k["median_ms"]); queued.append(c["queued_ms"] / k["queued_ms"])
        print(f"| {i} | {k['median_ms']:.2f} | {k['host_ms']:.2f} | {k['queued_ms']:.2f} | {c['median_ms']:.2f} | {c['queued_ms']:.2f} | {ratios[-1]:.2f} | {queued[-1]:.2f} |")
    if ratios:
        print(f"\nmedian CA/KEM {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}); queued {statistics.median(queued):.2f}x (range {min(queued):.2f}-{max(queued):.2f})\n")
PY
echo; echo "run-gpu-ratio.sh: done in $(( $(date +%s) - start )) s; files in $OUT"
