"""PyTorch twin of bench/Kem.Bench (issue #6): the same shapes, ops, timing and memory columns, run in the same
device call so that every C# row has a PyTorch row to divide by.

  python3 bench/twin/bench.py --modules --step --soak 1000 --out DIR [--quick] [--device cuda|cpu] [--budget-s S]
"""
import argparse
import os
import queue
import sys
import threading
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modules  # noqa: E402
import network  # noqa: E402
from common import Budget, Gpu, GpuMonitor, Results, measure, queued_pass, sdpa  # noqa: E402

FULL = dict(batch=8, width=384, heads=6, slots=20, top_k=3, tasks=[2, 3, 5], tokens=[252, 1008, 4032], dtypes=["bf16", "fp32"],
            warmup=3, warmup_s=0.5, min_iters=10, max_iters=50, min_s=0.4, max_s=2.0, queued_iters=10, queued_s=0.3, memory_iters=3,
            height=448, img_width=576, stride=16, backbone_depth=4, step_tasks=[2, 3], step_warmup=5, step_warmup_s=2.0, step_min=15, step_max=40,
            soak_images=96, soak_report=50)
# quick tokens 8, 32, 128: the 32×64 image at strides 16, 8, 4, so the seq rows have a grid (and pooled keys at 8 and 4)
QUICK = dict(FULL, batch=2, width=32, heads=4, slots=4, tasks=[2, 3], tokens=[8, 32, 128], warmup=1, warmup_s=0, min_iters=2, max_iters=3, min_s=0, max_s=1,
             height=32, img_width=64, backbone_depth=1, step_warmup=1, step_warmup_s=0, step_min=2, step_max=3, soak_images=8, soak_report=5, queued_iters=3)


def module_schedule(c):
    """Iteration counts of a module row (Kem.Bench's Config.ModuleSchedule)."""
    return dict(warmup=c["warmup"], warmup_s=c["warmup_s"], min_iters=c["min_iters"], max_iters=c["max_iters"], min_s=c["min_s"], max_s=c["max_s"],
                queued_iters=c["queued_iters"], queued_s=c["queued_s"], memory_iters=c["memory_iters"])


def step_schedule(c):
    """Iteration counts of a whole-step row (Kem.Bench's Config.StepSchedule)."""
    return dict(module_schedule(c), warmup=c["step_warmup"], warmup_s=c["step_warmup_s"], min_iters=c["step_min"], max_iters=c["step_max"], max_s=c["max_s"] * 2)


MODULE_KINDS = ["kem", "skem", "ca", "seq", "kem-naive"]
STEP_KINDS = ["kem", "ca", "none"]


def runs(c, kind):
    """--kinds: kem also selects the naive KEM (its reference)."""
    return c.get("kinds") is None or kind.replace("-naive", "") in c["kinds"]


def skip(row, reason):
    row.update(status="skipped", reason=reason)
    return row


def error(row, e):
    row.update(status="error", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return row


def run_modules(c, gpu, results, budget):
    for dtype in c["dtypes"]:
        for tasks in c["tasks"]:
            for tokens in c["tokens"]:
                for kind in [k for k in MODULE_KINDS if runs(c, k)]:
                    impl = "pytorch-naive" if kind == "kem-naive" else "pytorch"
                    row = dict(bench="module", impl=impl, kind=kind.replace("-naive", ""), tasks=tasks, tokens=tokens, batch=c["batch"],
                               width=c["width"], heads=c["heads"], slots=c["slots"], topk=c["top_k"], dtype=dtype, device=gpu.name)
                    if budget.exceeded:
                        results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
                        continue
                    try:
                        module_row(c, gpu, kind, tasks, tokens, dtype, row)
                    except Exception as e:  # noqa: BLE001 - a failed row is reported, the rest still runs
                        error(row, e)
                    results.write(row)
                    gpu.empty_cache()


def grid(c, tokens):
    """ModuleBench.Grid: the power-of-two stride at which the configuration's image has `tokens` tokens, and that grid."""
    stride = 1
    while stride <= min(c["height"], c["img_width"]):
        if c["height"] % stride == 0 and c["img_width"] % stride == 0 and (c["height"] // stride) * (c["img_width"] // stride) == tokens:
            return stride, c["height"] // stride, c["img_width"] // stride
        stride *= 2
    return None


def module_row(c, gpu, kind, tasks, tokens, dtype, row):
    """Forward + backward of one module in train mode; "seq" is one CTAM on task maps B×T×d×h×w with h×w = tokens."""
    m, iteration, _, _ = module_iteration(c, gpu, kind, tasks, tokens, dtype, row)
    row.update(status="ok", **measure(gpu, iteration, module_schedule(c)))
    row["parameters"] = sum(p.numel() for p in m.parameters())


def module_iteration(c, gpu, kind, tasks, tokens, dtype, row):
    """The module of a row in train mode, its iteration (zero grads, forward, backward with a fixed G), its input X and G."""
    torch.manual_seed(1)
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    if kind == "seq":
        found = grid(c, tokens)
        if found is None:
            raise ValueError(f'No stride gives {tokens} tokens on a {c["height"]}×{c["img_width"]} image: the seq row needs a token grid.')
        stride, rows, cols = found
        pool = modules.key_pool_at(stride)
        row.update(grid=f"{rows}x{cols}", stride=stride, key_pool=pool)
        m = modules.CrossTaskAttentionModule(tasks, c["width"], c["heads"], pool)
        shape = (c["batch"], tasks, c["width"], rows, cols)
    else:
        m = modules.create(kind, c["width"], c["heads"], tasks, c["slots"], c["top_k"])
        shape = (c["batch"], tasks, tokens, c["width"])
    m = m.to(gpu.device).to(dt).train()
    x = torch.randn(*shape, dtype=dt, device=gpu.device).requires_grad_(True)
    g = torch.randn(*shape, dtype=dt, device=gpu.device)

    def iteration():
        m.zero_grad(set_to_none=True)
        m(x).backward(g)

    return m, iteration, x, g


GRAPH_KINDS = ["kem", "skem", "ca"]


def run_graphs(c, gpu, results, budget):
    """ModuleBench.RunGraphs: forward + backward captured once with torch.cuda.graph (after 3 warm-up iterations on a side
    stream) and timed as replays, rows bench = graph. Gradients accumulate across replays (set-to-none cannot be replayed)."""
    for dtype in c["dtypes"]:
        for tasks in c["tasks"]:
            for tokens in c["tokens"]:
                for kind in [k for k in GRAPH_KINDS if runs(c, k)]:
                    row = dict(bench="graph", impl="pytorch", kind=kind, tasks=tasks, tokens=tokens, batch=c["batch"], width=c["width"],
                               heads=c["heads"], slots=c["slots"], topk=c["top_k"], dtype=dtype, device=gpu.name)
                    if not gpu.is_cuda:
                        results.write(skip(row, "CUDA graphs need a CUDA device"))
                        continue
                    if budget.exceeded:
                        results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
                        continue
                    try:
                        m, _, x, g = module_iteration(c, gpu, kind, tasks, tokens, dtype, row)

                        def iteration():
                            m(x).backward(g)

                        side = torch.cuda.Stream()
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):
                            for _ in range(3):
                                iteration()
                        torch.cuda.current_stream().wait_stream(side)
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph):
                            iteration()
                        row.update(status="ok", **measure(gpu, graph.replay, module_schedule(c)))
                        row["parameters"] = sum(p.numel() for p in m.parameters())
                        del graph
                    except Exception as e:  # noqa: BLE001 - a failed row is reported, the rest still runs
                        error(row, e)
                    results.write(row)
                    gpu.empty_cache()


def run_profile(c, gpu, results, budget, iterations=5):
    """torch.profiler over a few module iterations: the device time of the kernels per iteration (the GPU's own work)
    against the wall time per iteration, synchronised and queued, and the number of kernels. Work ≪ wall means the
    row is bound by launches and the host, not by the GPU; the top kernels are printed."""
    from torch.profiler import ProfilerActivity, profile
    for dtype in c["dtypes"]:
        for tasks in c["tasks"]:
            for tokens in c["tokens"]:
                for kind in [k for k in MODULE_KINDS if runs(c, k) and k != "seq"]:
                    row = dict(bench="profile", impl="pytorch-naive" if kind == "kem-naive" else "pytorch", kind=kind.replace("-naive", ""),
                               tasks=tasks, tokens=tokens, batch=c["batch"], width=c["width"], heads=c["heads"], dtype=dtype, device=gpu.name)
                    if budget.exceeded:
                        results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
                        continue
                    try:
                        _, iteration, _, _ = module_iteration(c, gpu, kind, tasks, tokens, dtype, row)
                        for _ in range(3):
                            iteration()
                        gpu.sync()
                        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu.is_cuda else [])
                        with profile(activities=acts) as prof:
                            for _ in range(iterations):
                                iteration()
                            gpu.sync()
                        kernels = [e for e in prof.events() if str(getattr(e, "device_type", "")).endswith("CUDA")]
                        kernel_us = sum(e.time_range.elapsed_us() for e in kernels)
                        queued_ms = queued_pass(gpu, iteration, iterations)
                        row.update(status="ok", kernel_ms=kernel_us / 1000 / iterations, kernels=len(kernels) / iterations,
                                   queued_ms=queued_ms, profiled_iters=iterations)
                        averages = prof.key_averages()
                        sort = "self_cpu_time_total"
                        if gpu.is_cuda:
                            sort = "self_device_time_total" if hasattr(averages[0], "self_device_time_total") else "self_cuda_time_total"
                        print(f"## profile {kind} T={tasks} n={tokens} {dtype}: {row['kernel_ms']:.3f} ms of kernels, {row['kernels']:.0f} kernels, "
                              f"{queued_ms:.3f} ms queued per iteration\n{averages.table(sort_by=sort, row_limit=14)}", flush=True)
                        print(f"## profile {kind}: host time by op\n{averages.table(sort_by='self_cpu_time_total', row_limit=24)}", flush=True)
                    except Exception as e:  # noqa: BLE001
                        error(row, e)
                    results.write(row)


def build(c, kind, tasks, device):
    torch.manual_seed(1)
    net = network.Network(kind, tasks, c["height"], c["img_width"], c["stride"], c["width"], c["heads"], c["backbone_depth"], c["slots"], c["top_k"])
    loss = network.MultiTaskLoss(net.tasks)
    return net.to(device).train(), loss.to(device)


def run_step(c, gpu, results, budget):
    tokens = (c["height"] // c["stride"]) * (c["img_width"] // c["stride"])
    for tasks in c["step_tasks"]:
        for kind in [k for k in STEP_KINDS if runs(c, k)]:
            row = dict(bench="step", kind=kind, tasks=tasks, tokens=tokens, batch=c["batch"], image=f'{c["height"]}x{c["img_width"]}',
                       dtype="bf16" if gpu.is_cuda else "fp32", device=gpu.name)
            if budget.exceeded:
                results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
                continue
            try:
                net, loss = build(c, kind, tasks, gpu.device)
                row["parameters"] = sum(p.numel() for p in net.parameters())
                step = network.TrainingStep(net, loss, bf16=gpu.is_cuda)
                images, labels = network.random_batch(net.tasks, c["batch"], c["height"], c["img_width"], gpu.device)
                row.update(status="ok", **measure(gpu, lambda: step.run(images, labels, 1e-4), step_schedule(c)))
                del net, loss, step, images, labels
            except Exception as e:  # noqa: BLE001
                error(row, e)
            results.write(row)
            gpu.empty_cache()


def time_part(c, gpu, results, budget, bench, name, kind, tasks, iteration):
    """Kem.Bench's StepBench.TimePart: one row for a part, timed as every row or skipped once the budget is spent."""
    row = {"bench": bench, bench: name, "kind": kind, "tasks": tasks, "batch": c["batch"], "image": f'{c["height"]}x{c["img_width"]}',
           "dtype": "bf16" if gpu.is_cuda else "fp32", "device": gpu.name}
    if budget.exceeded:
        results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
        return
    try:
        row.update(status="ok", **measure(gpu, iteration, step_schedule(c)))
    except Exception as e:  # noqa: BLE001
        error(row, e)
    results.write(row)


def run_parts(c, gpu, results, budget, phases, segments):
    """Kem.Bench's StepBench.RunParts: --phases: forward + losses, + backward, whole step. --segments: the forward by
    stage (backbone + encoders, interaction, whole forward, losses on fixed outputs)."""
    for bench, name, tasks, iteration in parts(c, gpu, phases, segments):
        time_part(c, gpu, results, budget, bench, name, "kem", tasks, iteration)


def parts(c, gpu, phases, segments):
    """Kem.Bench's StepBench.ForEachPart: the KEM step at the first task count in parts, on one network (bf16 on CUDA),
    fixed inputs and gradients on; yields (kind of part, name, tasks, iteration)."""
    kind, tasks = "kem", c["step_tasks"][0]
    net, loss = build(c, kind, tasks, gpu.device)
    step = network.TrainingStep(net, loss, bf16=gpu.is_cuda)                # casts the network to bf16 on CUDA
    images, labels = network.random_batch(net.tasks, c["batch"], c["height"], c["img_width"], gpu.device)
    x = images.to(torch.bfloat16) if gpu.is_cuda else images

    def losses(outputs):
        return loss([network.task_loss(k, out, lab) for (_, k, _, _), out, lab in zip(net.tasks, outputs, labels)])

    def encode():
        shared = net.backbone((x - net.pixel_mean) / net.pixel_std)
        return torch.stack([e(shared) for e in net.encoders], 1)

    if phases:
        yield "phase", "forward", tasks, lambda: losses(net(x))
        yield "phase", "forward+backward", tasks, lambda: losses(net(x)).backward()
        yield "phase", "step", tasks, lambda: step.run(images, labels, 1e-4)
    if segments:
        with torch.no_grad():
            tokens = encode()
            outputs = [o.float().requires_grad_(True) for o in net(x)]
        yield "segment", "backbone+encoders", tasks, encode
        yield "segment", "interaction", tasks, lambda: net.interaction(tokens)
        yield "segment", "forward", tasks, lambda: net(x)
        yield "segment", "losses", tasks, lambda: losses(outputs)


PROBE_CALLS = 400


def probe_ops(device, dtype):
    """Kem.Bench's HostProbe.Ops: the op kinds of the network's forward and losses, each on tensors of a few hundred values."""
    def r(*shape):
        return torch.randn(*shape, dtype=dtype, device=device)
    x, y = r(2, 16, 32), r(2, 16, 32)
    w, b, w2 = r(96, 32), r(96), r(64, 32)
    gamma, beta = torch.ones(32, dtype=dtype, device=device), torch.zeros(32, dtype=dtype, device=device)
    q, k, v = r(2, 4, 16, 8), r(2, 4, 16, 8), r(2, 4, 16, 8)
    fmap = r(2, 32, 4, 8)
    cw, cb = r(32, 32, 1, 1), r(32)
    mean, var = torch.zeros(32, dtype=dtype, device=device), torch.ones(32, dtype=dtype, device=device)
    mask = torch.rand(2, 16, 32, device=device).gt(0.5)
    zero = torch.zeros((), dtype=dtype, device=device)
    logits = torch.randn(2, 5, 4, 8, device=device)
    target = torch.randint(0, 5, (2, 4, 8), device=device)
    rows, yt, slot_bias = r(32, 32), r(2, 32, 16), r(16)
    xg, wg = r(2, 16, 32).requires_grad_(True), r(32, 32).requires_grad_(True)
    return [
        ("add", lambda: x + y),
        ("mul_scalar", lambda: x.mul(0.5)),
        ("linear", lambda: F.linear(x, w, b)),
        ("linear_rows", lambda: F.linear(x.reshape(-1, 32), w, b).view(2, 16, 96)),
        ("addmm", lambda: F.linear(rows, w, b)),
        ("mm", lambda: rows.mm(w.t())),
        ("bmm", lambda: x.bmm(yt)),
        ("baddbmm", lambda: torch.baddbmm(slot_bias, x, yt)),
        ("layer_norm", lambda: F.layer_norm(x, [32], gamma, beta)),
        ("gelu", lambda: F.gelu(x)),
        ("softmax", lambda: x.softmax(-1)),
        ("matmul_4d", lambda: q @ k.transpose(-2, -1)),
        ("sdpa", lambda: sdpa(q, k, v)),
        ("merge_heads", lambda: q.transpose(1, 2).reshape(2, 16, 32)),
        ("cat_weights", lambda: torch.cat([w, w2], 0)),
        ("chunk3_views", lambda: x.chunk(4, -1)),
        ("conv1x1", lambda: F.conv2d(fmap, cw, cb)),
        ("batch_norm_train", lambda: F.batch_norm(fmap, mean, var, gamma, beta, training=True)),
        ("relu", lambda: F.relu(fmap)),
        ("interpolate", lambda: F.interpolate(fmap, scale_factor=2.0, mode="bilinear", align_corners=True)),
        ("stack2", lambda: torch.stack([x, y], 1)),
        ("to_fp32", lambda: x.float()),
        ("where", lambda: torch.where(mask, x, zero)),
        ("sum", lambda: x.sum()),
        ("cross_entropy", lambda: F.cross_entropy(logits, target, reduction="none")),
        ("linear_backward", lambda: F.linear(xg, wg).sum().backward()),
    ]


def run_probe(c, gpu, results, budget):
    """Kem.Bench's HostProbe: rows "op" (host cost per op kind: PROBE_CALLS calls back to back, results kept until the
    end as the C# dispose scope keeps them, best of 3 passes after one warm-up) and rows "sync" (each part of the KEM
    step timed on the host with an idle GPU and right after ~40 ms of queued matrix products: a part that waits for the
    GPU returns only after them)."""
    dtype = torch.bfloat16 if gpu.is_cuda else torch.float32
    for name, op in probe_ops(gpu.device, dtype):
        row = dict(bench="op", op=name, dtype="bf16" if gpu.is_cuda else "fp32", device=gpu.name, calls=PROBE_CALLS)
        if budget.exceeded:
            results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
            continue
        try:
            best = float("inf")
            for p in range(4):
                gpu.sync()
                start = time.perf_counter()
                kept = [op() for _ in range(PROBE_CALLS)]
                del kept
                us = (time.perf_counter() - start) * 1e6 / PROBE_CALLS
                gpu.sync()
                if p > 0:
                    best = min(best, us)
            row.update(status="ok", host_us=best)
        except Exception as e:  # noqa: BLE001
            error(row, e)
        results.write(row)

    size = 4096 if gpu.is_cuda else 128
    a = torch.randn(size, size, dtype=dtype, device=gpu.device)

    def queue(count):                                                       # matrix products, queued and not waited for
        for _ in range(count):
            a @ a

    def timed(count):                                                       # ms for count products, idle GPU to idle GPU
        gpu.sync()
        start = time.perf_counter()
        queue(count)
        gpu.sync()
        return (time.perf_counter() - start) * 1000.0

    products = min(max(int(40 / max(timed(4) / 4, 1e-3)), 1), 2000) if gpu.is_cuda else 1
    preload_ms = timed(products)
    for bench, name, tasks, iteration in parts(c, gpu, True, True):
        row = dict(bench="sync", part=f"{bench}: {name}", kind="kem", tasks=tasks, batch=c["batch"], image=f'{c["height"]}x{c["img_width"]}',
                   dtype="bf16" if gpu.is_cuda else "fp32", device=gpu.name)
        if budget.exceeded:
            results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
            continue
        try:
            idle, loaded = [], []
            for i in range(5):
                gpu.sync()
                start = time.perf_counter()
                iteration()
                if i > 0:
                    idle.append((time.perf_counter() - start) * 1000.0)
                gpu.sync()
                queue(products)
                start = time.perf_counter()
                iteration()
                if i > 0:
                    loaded.append((time.perf_counter() - start) * 1000.0)
                gpu.sync()
            idle.sort()
            loaded.sort()
            row.update(status="ok", host_ms=idle[len(idle) // 2], host_loaded_ms=loaded[len(loaded) // 2], preload_ms=preload_ms)
        except Exception as e:  # noqa: BLE001
            error(row, e)
        results.write(row)


def generate(tasks, count, height, width, seed):
    """Random images (0..255) and labels in host memory, like a data set read from disk."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, height, width), generator=g).float()
    labels = []
    for _, kind, channels, _ in tasks:
        if kind == "seg":
            lab = torch.randint(0, channels, (count, 1, height, width), generator=g).float()
            labels.append(lab.masked_fill_(torch.rand(count, 1, height, width, generator=g).lt(0.05), network.IGNORE))
        elif kind == "depth":
            labels.append(torch.rand(count, 1, height, width, generator=g).mul_(9.5).add_(0.5))
        else:
            labels.append(torch.rand(count, 3, height, width, generator=g).mul_(2).sub_(1))
    return images, labels


class Prefetcher:
    """BatchPrefetcher.cs: a thread gathers the next batches into pinned host tensors; next() starts non-blocking copies."""

    def __init__(self, images, labels, batches, device, depth=3):
        self.device, self.cuda = device, device.type == "cuda"
        self.images, self.labels, self.batches = images, labels, batches
        self.index = 0
        if self.cuda:
            self.ready = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._produce, daemon=True)
            self.thread.start()

    def _gather(self, idx):
        return self.images.index_select(0, idx), [lab.index_select(0, idx) for lab in self.labels]

    def _produce(self):
        for idx in self.batches:
            imgs, labs = self._gather(idx)
            self.ready.put((imgs.pin_memory(), [lab.pin_memory() for lab in labs]))

    def next(self):
        if not self.cuda:
            idx = self.batches[self.index]
            self.index += 1
            return self._gather(idx)
        imgs, labs = self.ready.get()
        return imgs.to(self.device, non_blocking=True), [lab.to(self.device, non_blocking=True) for lab in labs]


def run_soak(c, gpu, results, steps, budget):
    kind, tasks = "kem", 2
    tokens = (c["height"] // c["stride"]) * (c["img_width"] // c["stride"])
    row = dict(bench="soak", kind=kind, tasks=tasks, tokens=tokens, batch=c["batch"], image=f'{c["height"]}x{c["img_width"]}',
               dtype="bf16" if gpu.is_cuda else "fp32", device=gpu.name, steps=steps)
    if budget.exceeded:
        results.write(skip(row, f"time budget of {budget.seconds:.0f} s used up"))
        return
    try:
        soak_row(c, gpu, kind, tasks, steps, row, deadline=budget.t0 + budget.seconds)
    except Exception as e:  # noqa: BLE001
        error(row, e)
    results.write(row)


def soak_row(c, gpu, kind, tasks, steps, row, deadline=float("inf")):
    """MultiTaskTrainingLoop.Fit's loop: shuffled epochs, prefetched batches, warm-up + poly schedule, losses summed
    on the device and read back every `soak_report` steps and at the end of every epoch."""
    net, loss = build(c, kind, tasks, gpu.device)
    images, labels = generate(net.tasks, c["soak_images"], c["height"], c["img_width"], seed=3)
    batch = c["batch"]
    per_epoch = c["soak_images"] // batch
    epochs = max(1, -(-steps // per_epoch))
    total_steps, warmup = per_epoch * epochs, min(50, per_epoch * epochs // 4)

    def lr_at(i, lr0=3e-4, power=0.9):
        if i < warmup:
            return lr0 * (i + 1) / warmup
        return lr0 * max(0.0, 1 - (i - warmup) / max(1, total_steps - warmup)) ** power

    gpu.sync()
    gpu.empty_cache()
    step_fn = network.TrainingStep(net, loss, bf16=gpu.is_cuda)
    samples = []
    g = torch.Generator().manual_seed(1)
    window_task = torch.zeros(tasks, device=gpu.device)
    window_loss = torch.zeros(1, device=gpu.device)
    window_steps, step, last_loss, stopped = 0, 0, float("nan"), False
    all_batches = []                                  # every epoch's batches up front, as the loop does
    for _ in range(epochs):
        order = torch.randperm(c["soak_images"], generator=g)
        all_batches += [order[s * batch:(s + 1) * batch] for s in range(per_epoch)]
    prefetch = Prefetcher(images, labels, all_batches, gpu.device)
    with GpuMonitor(GpuMonitor.SOAK_PERIOD) as monitor:
        wall = time.perf_counter()
        for _ in range(epochs):
            if stopped:
                break
            for s in range(per_epoch):
                if time.perf_counter() > deadline:     # out of time: stop and report the steps done
                    stopped = True
                    break
                imgs, labs = prefetch.next()
                total, losses = step_fn.run(imgs, labs, lr_at(step))
                with torch.no_grad():
                    window_task.add_(torch.stack(losses).detach())
                    window_loss.add_(total.detach().reshape(1))
                window_steps += 1
                step += 1
                if step % c["soak_report"] == 0 or s == per_epoch - 1:
                    window_task.cpu()
                    last_loss = window_loss.cpu().item() / window_steps          # one host sync per report
                    window_task.zero_()
                    window_loss.zero_()
                    window_steps = 0
                    st = gpu.allocator_stats()
                    samples.append(dict(step=step, t=monitor.now(),
                                        alloc_mib=st[0] / 1048576.0 if st else float("nan"),
                                        reserved_mib=st[2] / 1048576.0 if st else float("nan"),
                                        nvml_mib=(monitor.last_used - monitor.baseline_used) / 1048576.0 if monitor.last_used >= 0 else float("nan")))
        gpu.sync()
        total_s = time.perf_counter() - wall
        end = monitor.now()
    first = next((s for s in samples if s["step"] >= step // 10), samples[0])
    last = samples[-1]
    mem = [s for s in samples if s["step"] >= first["step"]]
    if stopped:
        row["reason"] = f"stopped by the time budget after {step} of {steps} steps"
    row.update(status="partial" if stopped else "ok", steps=step, wall_s=total_s, window_steps=last["step"] - first["step"],
               window_ms_per_step=(last["t"] - first["t"]) * 1000 / max(1, last["step"] - first["step"]),
               gpu_util_mean=monitor.mean_utilization(first["t"], end), final_loss=last_loss,
               alloc_first_mib=mem[0]["alloc_mib"], alloc_last_mib=mem[-1]["alloc_mib"], alloc_max_mib=max(s["alloc_mib"] for s in mem),
               reserved_first_mib=mem[0]["reserved_mib"], reserved_last_mib=mem[-1]["reserved_mib"],
               nvml_first_mib=mem[0]["nvml_mib"], nvml_last_mib=mem[-1]["nvml_mib"], nvml_max_mib=max(s["nvml_mib"] for s in mem),
               memory_series=samples)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", action="store_true")
    p.add_argument("--step", action="store_true")
    p.add_argument("--soak", type=int, default=0)
    p.add_argument("--busy", action="store_true", help="same as --soak 300")
    p.add_argument("--out", default=".")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--budget-s", type=float, default=float("inf"))
    p.add_argument("--warmup-s", type=float, default=None, help="warm-up of every module row (default 0.5) and whole-step row (default 2), seconds")
    p.add_argument("--dtypes", default=None)
    p.add_argument("--kinds", default=None, help="subset of kem,skem,ca,seq (modules; kem includes the naive KEM) and kem,ca,none (step)")
    p.add_argument("--tasks", default=None, help="task counts of --modules / --profile")
    p.add_argument("--tokens", default=None, help="tokens per task of --modules / --profile")
    p.add_argument("--step-tasks", default=None, help="task counts of --step")
    p.add_argument("--profile", action="store_true", help="torch.profiler: kernel time vs wall time of the selected module rows")
    p.add_argument("--graphs", action="store_true", help="kem, skem, ca forward+backward captured as one CUDA graph and replayed")
    p.add_argument("--phases", action="store_true", help="the KEM whole step cut after the forward pass, after the backward pass, and whole")
    p.add_argument("--segments", action="store_true", help="the KEM step's forward by stage (backbone+encoders, interaction, forward, losses)")
    p.add_argument("--probe", action="store_true", help="host cost per op kind on tiny tensors, and which step parts wait for the GPU")
    a = p.parse_args()
    if a.busy:
        a.soak = max(a.soak, 300)
    if not (a.modules or a.graphs or a.step or a.soak or a.profile or a.phases or a.segments or a.probe):
        p.error("give --modules, --graphs, --step, --phases, --segments, --probe, --profile and/or --soak N")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    c = dict(QUICK if a.quick else FULL)
    if a.dtypes:
        c["dtypes"] = a.dtypes.split(",")
    c["kinds"] = a.kinds.split(",") if a.kinds else None
    if a.warmup_s is not None:
        c["warmup_s"] = c["step_warmup_s"] = a.warmup_s
    for key, arg in (("tasks", a.tasks), ("tokens", a.tokens), ("step_tasks", a.step_tasks)):
        if arg:
            c[key] = [int(v) for v in arg.split(",")]
    if a.quick and device == "cpu":
        torch.set_num_threads(1)   # tiny CPU smoke test: OpenMP spinning only slows a shared machine
    os.makedirs(a.out, exist_ok=True)
    gpu = Gpu(device)
    results = Results(os.path.join(a.out, "pytorch.jsonl"))
    budget = Budget(a.budget_s)
    print(f"# twin on {gpu.name}, torch {torch.__version__}", flush=True)
    if a.modules:
        run_modules(c, gpu, results, budget)
    if a.graphs:
        run_graphs(c, gpu, results, budget)
    if a.profile:
        run_profile(c, gpu, results, budget)
    if a.step:
        run_step(c, gpu, results, budget)
    if a.phases or a.segments:
        run_parts(c, gpu, results, budget, a.phases, a.segments)
    if a.probe:
        run_probe(c, gpu, results, budget)
    if a.soak:
        run_soak(c, gpu, results, a.soak, budget)


if __name__ == "__main__":
    main()
