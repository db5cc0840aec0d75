"""Joins bench/Kem.Bench's rows (csharp.jsonl) with the PyTorch twin's (pytorch.jsonl) and prints the tables of
issue #6 with the C#/PyTorch ratio on every row, then the targets. Usage: python3 bench/compare.py DIR > DIR/summary.md
"""
import json
import math
import os
import sys


def load(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append({k: _number(v) for k, v in json.loads(line).items()})
    return rows


def _number(v):
    # C# writes NaN and infinities as strings ("NaN"); Python as bare literals.
    return float(v) if v in ("NaN", "Infinity", "-Infinity") else v


def num(x):
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def f(x, digits=2):
    return f"{x:.{digits}f}" if num(x) else "–"


def ratio(a, b):
    return a / b if num(a) and num(b) and b > 0 else float("nan")


def status(r):
    if r is None:
        return "missing"
    return "ok" if r.get("status") == "ok" else f'{r.get("status")}: {r.get("reason", "")}'


def find(rows, **keys):
    for r in rows:
        if all(r.get(k) == v for k, v in keys.items()):
            return r
    return None


def ms(r):
    return r.get("median_ms") if r and r.get("status") == "ok" else float("nan")


def label(r):
    """Module name; a seq row also shows its map grid and key pooling."""
    return f'{r["kind"]} ({r["grid"]}, keys ÷{r["key_pool"]})' if r["kind"] == "seq" and r.get("grid") else r["kind"]


def col(r, key):
    return r.get(key) if r and r.get("status") == "ok" else float("nan")


def queued(r):
    """queued ms (R) of a row."""
    return f'{f(col(r, "queued_ms"))} ({r.get("queued_iters")})' if r and r.get("status") == "ok" else "–"


def overhead_table(p, pairs, label):
    """Host and queued time next to the median, both sides, one line per (C# row, PyTorch row) pair."""
    p(f"| {label} | C# ms | C# host ms | C# queued ms (R) | PyTorch ms | PyTorch host ms | PyTorch queued ms (R) | C#/PyTorch ms | C#/PyTorch queued |")
    p("|---|---|---|---|---|---|---|---|---|")
    for name, r, t in pairs:
        p(f'| {name} | {f(ms(r))} | {f(col(r, "host_ms"))} | {queued(r)} | {f(ms(t))} | {f(col(t, "host_ms"))} | {queued(t)} | '
          f'{f(ratio(ms(r), ms(t)))} | {f(ratio(col(r, "queued_ms"), col(t, "queued_ms")))} |')
    p("")


def main(folder):
    cs, py = load(os.path.join(folder, "csharp.jsonl")), load(os.path.join(folder, "pytorch.jsonl"))
    out = []
    p = out.append
    device = next((r["device"] for r in cs + py if r.get("device")), "?")
    p(f"Device: {device}. Forward+backward (modules) or a whole training step, after warm-up, three passes on both sides: "
      "a timing pass with no sampler running (`ms` = median of iterations each between two device synchronisations; "
      "`host` = median time for the iteration to return, i.e. to enqueue its work: ≈ `ms` when the row is bound by the "
      "host or by launches), a queued pass (`queued` = R iterations back to back between one synchronisation pair, total / R: "
      "no per-iteration synchronisation latency) and an untimed memory pass of a few iterations: `alloc` = caching-allocator "
      "peak above the bytes allocated at the start (torch.cuda.max_memory_allocated on both sides; C# through bench/native), "
      "`nvml` = peak NVML memory in use above the level after empty_cache, sampled every ~1 ms. Ratio = C# / PyTorch (< 1: C# faster).\n")

    # Modules
    mods = [r for r in cs if r.get("bench") == "module"]
    if mods:
        p("## Interaction modules (B={}, d={}, h={}, m={}, k={}), forward + backward\n".format(
            mods[0].get("batch"), mods[0].get("width"), mods[0].get("heads"), mods[0].get("slots"), mods[0].get("topk")))
        if any(r["kind"] == "seq" for r in mods):
            p("`seq`: one CTAM of the sequential design (MODEL-SPEC §5) on task maps B×T×d×h×w with h×w = n (the 448×576 image "
              "at stride 32 / 16 / 8 for n = 252 / 1008 / 4032), keys average-pooled to stride 16 (÷2 at n = 4032), 1×1 conv–BN "
              "(train mode)–ReLU fusion; the grid and key pooling are in the module column.\n")
        p("| module | T | n | dtype | C# ms | PyTorch ms | C#/PyTorch | naive PyTorch KEM ms | naive/C# | C# alloc MiB | PyTorch alloc MiB | C# nvml MiB | PyTorch nvml MiB | parameters C# / PyTorch | status |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in mods:
            key = dict(bench="module", kind=r["kind"], tasks=r["tasks"], tokens=r["tokens"], dtype=r["dtype"])
            t = find(py, impl="pytorch", **key)
            naive = find(py, impl="pytorch-naive", **key) if r["kind"] == "kem" else None
            st = status(r) if r.get("status") != "ok" else (status(t) if t is None or t.get("status") != "ok" else "ok")
            p(f'| {label(r)} | {r["tasks"]} | {r["tokens"]} | {r["dtype"]} | {f(ms(r))} | {f(ms(t))} | {f(ratio(ms(r), ms(t)))} | '
              f'{f(ms(naive)) if naive else ""} | {f(ratio(ms(naive), ms(r))) if naive else ""} | '
              f'{f(r.get("alloc_peak_mib"), 0)} | {f(t.get("alloc_peak_mib") if t else None, 0)} | '
              f'{f(r.get("nvml_peak_mib"), 0)} | {f(t.get("nvml_peak_mib") if t else None, 0)} | '
              f'{r.get("parameters", "–")} / {t.get("parameters", "–") if t else "–"} | {st} |')
        p("")

        p("### Host and queued time (modules): host ≈ ms means launch/host-bound; queued < ms means per-iteration sync latency\n")
        overhead_table(p, [(f'{label(r)} T={r["tasks"]} n={r["tokens"]} {r["dtype"]}', r,
                            find(py, impl="pytorch", bench="module", kind=r["kind"], tasks=r["tasks"], tokens=r["tokens"], dtype=r["dtype"]))
                           for r in mods], "module T n dtype")

        profiled = [r for r in py if r.get("bench") == "profile" and r.get("status") == "ok"]
        if profiled:
            p("### GPU work against wall time (PyTorch twin, torch.profiler): kernel time per iteration vs queued wall time\n")
            p("| module | T | n | dtype | kernels per iteration | kernel ms | queued wall ms | kernel share % |")
            p("|---|---|---|---|---|---|---|---|")
            for r in profiled:
                name = r["kind"] + (" (naive)" if r.get("impl") == "pytorch-naive" else "")
                p(f'| {name} | {r["tasks"]} | {r["tokens"]} | {r["dtype"]} | {f(r.get("kernels"), 0)} | {f(r.get("kernel_ms"))} | '
                  f'{f(r.get("queued_ms"))} | {f(100 * ratio(r.get("kernel_ms"), r.get("queued_ms")), 0)} |')
            p("")

        # Linearity in n and T (C# KEM, bf16 and fp32)
        p("### KEM cost against n and T (C#; ideal: ×4 per ×4 in n, ×T/2 from T=2)\n")
        p("| dtype | T | ms n=252 | ms n=1008 | ms n=4032 | 4032/1008 | T/2-scaled: ms(T)/ms(2) at n=4032 |")
        p("|---|---|---|---|---|---|---|")
        for dtype in [d for d in ("fp32", "bf16") if find(cs, bench="module", kind="kem", dtype=d)]:   # the dtypes that ran
            base = ms(find(cs, bench="module", kind="kem", tasks=2, tokens=4032, dtype=dtype))
            for T in (2, 3, 5):
                v = [ms(find(cs, bench="module", kind="kem", tasks=T, tokens=n, dtype=dtype)) for n in (252, 1008, 4032)]
                p(f"| {dtype} | {T} | {f(v[0])} | {f(v[1])} | {f(v[2])} | {f(ratio(v[2], v[1]))} | {f(ratio(v[2], base))} (ideal {T / 2:.1f}) |")
        p("")

    # CUDA graphs (diagnostic): the same forward + backward replayed as one graph on both sides
    graphs = [r for r in cs if r.get("bench") == "graph"]
    if graphs:
        p("## Interaction modules replayed as CUDA graphs (diagnostic: launches removed, both sides)\n")
        p("Forward + backward captured once (`--graphs`; C# through bench/native/kem_cuda_graph.cpp, PyTorch with torch.cuda.graph) "
          "and timed as replays; parameter gradients accumulate instead of being reset. What the eager rows above spend beyond "
          "these is launch and host time. The library runs eagerly: these rows are not its speed.\n")
        p("| module | T | n | dtype | C# graph ms | PyTorch graph ms | C#/PyTorch | C# eager ms | eager/graph (C#) | CA/module, graphs (C#) | status |")
        p("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in graphs:
            key = dict(kind=r["kind"], tasks=r["tasks"], tokens=r["tokens"], dtype=r["dtype"])
            t = find(py, bench="graph", impl="pytorch", **key)
            eager = find(cs, bench="module", **key)
            ca = find(cs, bench="graph", kind="ca", tasks=r["tasks"], tokens=r["tokens"], dtype=r["dtype"])
            st = status(r) if r.get("status") != "ok" else (status(t) if t is None or t.get("status") != "ok" else "ok")
            p(f'| {r["kind"]} | {r["tasks"]} | {r["tokens"]} | {r["dtype"]} | {f(ms(r))} | {f(ms(t))} | {f(ratio(ms(r), ms(t)))} | '
              f'{f(ms(eager))} | {f(ratio(ms(eager), ms(r)))} | {f(ratio(ms(ca), ms(r))) if r["kind"] != "ca" else ""} | {st} |')
        p("")

    # Step
    steps = [r for r in cs if r.get("bench") == "step" and r.get("impl") == "csharp"]
    if steps:
        s0 = steps[0]
        p(f'## Whole training step ({s0.get("image")}, B={s0.get("batch")}, {s0.get("dtype")} with fp32 masters, AdamW, clip 1.0)\n')
        p("| interaction | T | C# ms | PyTorch ms | C#/PyTorch | C# before (legacy loop step) ms | C# alloc MiB | PyTorch alloc MiB | C# nvml MiB | PyTorch nvml MiB | parameters C# / PyTorch | status |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in steps:
            key = dict(bench="step", kind=r["kind"], tasks=r["tasks"])
            t = find(py, impl="pytorch", **key)
            legacy = find(cs, impl="csharp-legacy", **key)
            st = status(r) if r.get("status") != "ok" else (status(t) if t is None or t.get("status") != "ok" else "ok")
            p(f'| {r["kind"]} | {r["tasks"]} | {f(ms(r))} | {f(ms(t))} | {f(ratio(ms(r), ms(t)))} | {f(ms(legacy)) if legacy else ""} | '
              f'{f(r.get("alloc_peak_mib"), 0)} | {f(t.get("alloc_peak_mib") if t else None, 0)} | {f(r.get("nvml_peak_mib"), 0)} | '
              f'{f(t.get("nvml_peak_mib") if t else None, 0)} | {r.get("parameters", "–")} / {t.get("parameters", "–") if t else "–"} | {st} |')
        p("")
        p("### Host and queued time (whole step)\n")
        overhead_table(p, [(f'{r["kind"]} T={r["tasks"]}', r, find(py, impl="pytorch", bench="step", kind=r["kind"], tasks=r["tasks"]))
                           for r in steps], "interaction T")

    def paired(bench, key, title, columns, cells):
        """One table of the C# rows of `bench`, each beside the twin's row with the same `key`: cells(C# row, twin row)."""
        rows = [r for r in cs if r.get("bench") == bench]
        if not rows:
            return
        p((title(rows) if callable(title) else title) + "\n")
        p("| " + " | ".join(columns) + " |")
        p("|" + "---|" * len(columns))
        for r in rows:
            t = find(py, bench=bench, **{key: r[key]})
            p("| " + " | ".join(cells(r, t)) + " |")
        p("")

    def jit(r):
        return r.get("jit", "tiered")

    # Phases of the whole step
    paired("phase", "phase", "### The KEM step cut into phases (`--phases`): forward + losses, + backward, whole step",
           ["phase", "jit", "C# ms", "C# host ms", "C# queued ms", "PyTorch ms", "PyTorch host ms", "PyTorch queued ms", "C#/PyTorch queued"],
           lambda r, t: [r["phase"], jit(r), f(ms(r)), f(col(r, "host_ms")), f(col(r, "queued_ms")), f(ms(t)), f(col(t, "host_ms")),
                         f(col(t, "queued_ms")), f(ratio(col(r, "queued_ms"), col(t, "queued_ms")))])

    # Forward stages of the step
    paired("segment", "segment",
           "### The KEM step's forward by stage (`--segments`, gradients on): where each side spends host time\n\n"
           "`jit`: the C# process's JIT, `tiered` (the .NET default) or `full` (`DOTNET_TieredCompilation=0`, optimised from the first call).",
           ["stage", "jit", "C# ms", "C# host ms", "PyTorch ms", "PyTorch host ms", "C#/PyTorch host"],
           lambda r, t: [r["segment"], jit(r), f(ms(r)), f(col(r, "host_ms")), f(ms(t)), f(col(t, "host_ms")),
                         f(ratio(col(r, "host_ms"), col(t, "host_ms")))])

    # Host probe (--probe): host cost per op kind, and which parts of the step wait for the GPU
    paired("op", "op", "### Host cost per op kind (`--probe`): tiny tensors in the step's dtype, calls back to back, µs per call",
           ["op", "C# µs", "PyTorch µs", "C#/PyTorch"],
           lambda r, t: [r["op"], f(col(r, "host_us")), f(col(t, "host_us")), f(ratio(col(r, "host_us"), col(t, "host_us")))])
    paired("sync", "part",
           lambda rows: "### Which parts of the KEM step wait for the GPU (`--probe`): host time on an idle GPU and right after "
                        f'{f(col(rows[0], "preload_ms"), 1)} ms of queued products (a part with a host synchronisation grows by about that)',
           ["part", "C# host ms", "C# host ms, GPU loaded", "PyTorch host ms", "PyTorch host ms, GPU loaded"],
           lambda r, t: [r["part"], f(col(r, "host_ms")), f(col(r, "host_loaded_ms")), f(col(t, "host_ms")), f(col(t, "host_loaded_ms"))])

    # Soak
    soak_rows = [(name, r) for name, rows in (("C#", cs), ("PyTorch", py)) for r in rows if r.get("bench") == "soak"]
    if soak_rows:
        p("## Training on generated data (the loop with prefetching): GPU busy and memory over the run\n")
        p("| impl | augmentation | steps | wall s | ms/step (window) | NVML GPU util % (window) | busy % (resident-data step / window step) | data wait ms/step | GC pause ms/step (gen-2 collections) | alloc MiB first → last (max) | reserved MiB first → last | nvml MiB first → last (max) | status |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, r in soak_rows:
            rows = cs if name == "C#" else py
            resident = ms(find(rows, bench="step", kind=r.get("kind"), tasks=r.get("tasks"), impl="csharp" if name == "C#" else "pytorch"))
            busy = 100 * ratio(resident, r.get("window_ms_per_step")) if r.get("augment", "none") == "none" else float("nan")
            gc = f'{f(r.get("gc_pause_ms_per_step"), 3)} ({r.get("gc_gen2", "–")})' if "gc_pause_ms_per_step" in r else "–"
            p(f'| {name} | {r.get("augment", "none")} | {r.get("steps", "")} | {f(r.get("wall_s"), 1)} | {f(r.get("window_ms_per_step"))} | {f(r.get("gpu_util_mean"), 1)} | {f(busy, 1)} | {f(r.get("data_wait_ms_per_step"), 3)} | {gc} | '
              f'{f(r.get("alloc_first_mib"), 0)} → {f(r.get("alloc_last_mib"), 0)} ({f(r.get("alloc_max_mib"), 0)}) | '
              f'{f(r.get("reserved_first_mib"), 0)} → {f(r.get("reserved_last_mib"), 0)} | '
              f'{f(r.get("nvml_first_mib"), 0)} → {f(r.get("nvml_last_mib"), 0)} ({f(r.get("nvml_max_mib"), 0)}) | {status(r)} |')
        p("")

    # Targets
    p("## Targets (issue #6)\n")
    p("| target | measured | met |")
    p("|---|---|---|")

    def verdict(ok):
        return "–" if ok is None else ("yes" if ok else "**no**")

    worst = [ratio(ms(r), ms(find(py, impl="pytorch", bench="step", kind=r["kind"], tasks=r["tasks"]))) for r in steps]
    worst = [w for w in worst if num(w)]
    p(f'| whole step C#/PyTorch ≤ 1.05 | {", ".join(f(w) for w in worst) or "–"} (worst {f(max(worst)) if worst else "–"}) | {verdict(max(worst) <= 1.05 if worst else None)} |')
    kem = ms(find(cs, bench="module", kind="kem", tasks=3, tokens=4032, dtype="bf16"))
    naive = ms(find(py, bench="module", impl="pytorch-naive", kind="kem", tasks=3, tokens=4032, dtype="bf16"))
    ca = ms(find(cs, bench="module", kind="ca", tasks=3, tokens=4032, dtype="bf16"))
    s1, s2 = ratio(naive, kem), ratio(ca, kem)
    p(f"| KEM ≥ 2× faster than naive eager PyTorch KEM (T=3, n=4032, bf16) | {f(s1)}× ({f(naive)} / {f(kem)} ms) | {verdict(s1 >= 2 if num(s1) else None)} |")
    p(f"| KEM ≥ 5× faster than CA (T=3, n=4032, bf16) | {f(s2)}× ({f(ca)} / {f(kem)} ms) | {verdict(s2 >= 5 if num(s2) else None)} |")
    gkem = ms(find(cs, bench="graph", kind="kem", tasks=3, tokens=4032, dtype="bf16"))
    gca = ms(find(cs, bench="graph", kind="ca", tasks=3, tokens=4032, dtype="bf16"))
    if num(gkem) and num(gca):
        p(f"| (diagnostic, not the target) the same with both replayed as CUDA graphs | {f(ratio(gca, gkem))}× ({f(gca)} / {f(gkem)} ms) | – |")
    r = find(cs, bench="soak", augment="none")
    if r and r.get("status") in ("ok", "partial"):
        u = r.get("gpu_util_mean")
        p(f"| GPU busy ≥ 95% training on generated data (C#) | NVML util {f(u, 1)} % | {verdict(u >= 95 if num(u) else None)} |")
        drift = r.get("reserved_last_mib", float("nan")) - r.get("reserved_first_mib", float("nan"))
        adrift = r.get("alloc_last_mib", float("nan")) - r.get("alloc_first_mib", float("nan"))
        ndrift = r.get("nvml_last_mib", float("nan")) - r.get("nvml_first_mib", float("nan"))
        flat = [abs(d) < 64 for d in (drift, adrift, ndrift) if num(d)]
        p(f'| GPU memory flat over {r.get("steps")} steps (C#) | allocated {f(adrift, 0)}, reserved {f(drift, 0)}, NVML {f(ndrift, 0)} MiB drift from step ~{r.get("steps", 0) // 10} to the end | {verdict(all(flat) if flat else None)} |')
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
