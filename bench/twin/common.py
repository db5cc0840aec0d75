"""Shared helpers of the PyTorch twin: device sync, timing, NVML sampling, allocator statistics, result rows.

Rows have the same keys as bench/Kem.Bench's (one JSON object a line), so bench/compare.py can join them.
"""
import ctypes
import json
import math
import statistics
import threading
import time

import torch


class Gpu:
    def __init__(self, device):
        self.device = torch.device(device)
        self.is_cuda = self.device.type == "cuda"

    def sync(self):
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    @property
    def name(self):
        if self.is_cuda:
            nvml = Nvml.instance()
            return nvml.name if nvml else torch.cuda.get_device_name(self.device)
        import os
        return f"cpu ({os.cpu_count()} logical cores)"

    # Caching-allocator statistics (what torch.cuda.max_memory_allocated reports); None on the CPU.
    def allocator_stats(self):
        if not self.is_cuda:
            return None
        return (torch.cuda.memory_allocated(self.device), torch.cuda.max_memory_allocated(self.device),
                torch.cuda.memory_reserved(self.device), torch.cuda.max_memory_reserved(self.device))

    def reset_peak(self):
        if self.is_cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def empty_cache(self):
        if self.is_cuda:
            torch.cuda.empty_cache()


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class Nvml:
    """NVML through ctypes (libnvidia-ml.so.1), the same calls the C# side makes through P/Invoke."""
    _instance = None
    _opened = False

    def __init__(self, lib, handle, name):
        self.lib, self.handle, self.name = lib, handle, name

    @classmethod
    def instance(cls):
        if not cls._opened:
            cls._opened = True
            try:
                lib = ctypes.CDLL("libnvidia-ml.so.1")
                handle = ctypes.c_void_p()
                if lib.nvmlInit_v2() == 0 and lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle)) == 0:
                    buf = ctypes.create_string_buffer(96)
                    lib.nvmlDeviceGetName(handle, buf, 96)
                    cls._instance = Nvml(lib, handle, buf.value.decode())
            except (OSError, AttributeError):     # no driver library (CPU machines), or one without these symbols
                cls._instance = None
        return cls._instance

    def used_bytes(self):
        m = _Memory()
        return m.used if self.lib.nvmlDeviceGetMemoryInfo(self.handle, ctypes.byref(m)) == 0 else -1

    def utilization(self):
        u = _Utilization()
        return u.gpu if self.lib.nvmlDeviceGetUtilizationRates(self.handle, ctypes.byref(u)) == 0 else -1


class GpuMonitor:
    """Samples NVML while it is open: memory in use every `memory_period` s (peak and last reading) and utilisation
    every UTILIZATION_PERIOD s (timestamped, so a window can be averaged); as Kem.Bench's GpuMonitor. No timed pass
    runs with one (see measure()); the soak does, at SOAK_PERIOD.

    The sampler is a thread of this process. It used to be a forked child process reusing the NVML handle the parent
    had opened; NVML state is not inherited across fork(), so every call in the child failed (-1), the peak stayed -1
    and every NVML column read -(baseline + 1 byte), i.e. about -1100..-1800 MiB, with no utilisation samples at all.
    A thread rather than a `spawn` child (which would open NVML itself and be correct too): a spawned child re-imports
    the main script, and with it torch, for every measurement (seconds each); and a thread costs the measured thread
    little, because ctypes releases the GIL for the whole of each NVML call, so the sampler holds the GIL only for a
    few bytecodes per sample (its wake-ups still take the GIL from the main thread now and then, which is why the
    timing passes run without it and the soak samples every 20 ms instead of every 1 ms)."""

    PEAK_PERIOD = 0.001                  # the memory pass looks for a peak
    SOAK_PERIOD = 0.020                  # the soak reads the last value at every report
    UTILIZATION_PERIOD = 0.020

    def __init__(self, memory_period):
        self.nvml = Nvml.instance()
        self.memory_period = memory_period
        self.start = time.perf_counter()
        self.util = []                   # (seconds since start, percent); list.append is atomic under the GIL
        self.peak_used, self.last_used = -1, -1
        self.baseline_used = self.nvml.used_bytes() if self.nvml else -1
        self._stop = threading.Event()
        self.thread = None
        if self.nvml:
            self.thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
            self.thread.start()

    def now(self):
        return time.perf_counter() - self.start

    def _sample_memory(self):
        used = self.nvml.used_bytes()
        self.last_used = used
        if used > self.peak_used:
            self.peak_used = used

    def _run(self):
        next_util = 0.0
        while not self._stop.is_set():
            self._sample_memory()
            if self.now() >= next_util:
                self.util.append((self.now(), self.nvml.utilization()))
                next_util = self.now() + self.UTILIZATION_PERIOD
            self._stop.wait(self.memory_period)

    def peak_above_baseline_mib(self):
        if not self.nvml or self.peak_used < 0 or self.baseline_used < 0:
            return float("nan")
        return (self.peak_used - self.baseline_used) / 1048576.0

    def mean_utilization(self, t0, t1):
        window = [u for t, u in list(self.util) if t0 <= t <= t1 and u >= 0]
        return float("nan") if not window else sum(window) / len(window)

    def close(self):
        """Stops the sampler and takes one last memory reading here, so a peak reached just before the stop (the
        caching allocator keeps what it reserved) is seen even when the pass was shorter than a sampling period."""
        if self.thread and not self._stop.is_set():
            self._stop.set()
            self.thread.join()
            self._sample_memory()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def queued_pass(gpu, iteration, count):
    """ms per iteration of `count` iterations back to back between one pair of device synchronisations."""
    gpu.sync()
    start = time.perf_counter()
    for _ in range(count):
        iteration()
    gpu.sync()
    return (time.perf_counter() - start) * 1000.0 / count


def time_it(gpu, iteration, s):
    """Warm-up, the timing pass and the queued pass of schedule `s` (as Kem.Bench's Measure.Time): every timed
    iteration between two device synchronisations (median/p10/p90), the median time for iteration() to return
    (host_ms), then R iterations back to back between one synchronisation pair (queued_ms = total / R)."""
    warm, i = time.perf_counter(), 0
    while i < s["warmup"] or time.perf_counter() - warm < s["warmup_s"]:   # as Kem.Bench: iterations and seconds
        iteration()
        i += 1
    gpu.sync()
    times, host = [], []
    t0 = time.perf_counter()
    while len(times) < s["max_iters"]:
        elapsed = time.perf_counter() - t0
        if len(times) >= s["min_iters"] and elapsed >= s["min_s"]:
            break
        if len(times) >= 3 and elapsed >= s["max_s"]:
            break
        gpu.sync()
        start = time.perf_counter()
        iteration()
        host.append((time.perf_counter() - start) * 1000.0)
        gpu.sync()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    host.sort()
    median = _percentile(times, 0.5)

    queued = int(min(max(math.floor(s["queued_s"] * 1000.0 / max(median, 1e-3)), 1), s["queued_iters"]))
    queued_ms = queued_pass(gpu, iteration, queued)

    return {"median_ms": median, "p10_ms": _percentile(times, 0.1), "p90_ms": _percentile(times, 0.9), "iters": len(times),
            "host_ms": _percentile(host, 0.5), "queued_ms": queued_ms, "queued_iters": queued}


def peak_memory(gpu, iteration, iterations):
    """The memory pass (as Kem.Bench's Measure.PeakMemory): `iterations` untimed iterations from an emptied allocator
    with a fresh peak and the NVML sampler on. Allocator peak above the bytes allocated at the start, NVML peak above
    the level after empty_cache, MiB (NaN on the CPU or without NVML)."""
    gpu.sync()
    gpu.empty_cache()
    start = gpu.allocator_stats()
    gpu.reset_peak()
    with GpuMonitor(GpuMonitor.PEAK_PERIOD) as monitor:
        for _ in range(iterations):
            iteration()
        gpu.sync()
    end = gpu.allocator_stats()
    alloc = (end[1] - start[0]) / 1048576.0 if start and end else float("nan")
    return alloc, monitor.peak_above_baseline_mib()


def measure(gpu, iteration, s):
    """The three passes of schedule `s` (warm-up + timing, queued, memory) as one row's columns (as Measure.TimeInto)."""
    row = time_it(gpu, iteration, s)
    row["memory_iters"] = s["memory_iters"]
    row["alloc_peak_mib"], row["nvml_peak_mib"] = peak_memory(gpu, iteration, s["memory_iters"])
    return row


def _percentile(xs, q):
    at = q * (len(xs) - 1)
    lo, hi = math.floor(at), math.ceil(at)
    return xs[lo] + (xs[hi] - xs[lo]) * (at - lo)


class Results:
    def __init__(self, path):
        self.path = path

    def write(self, row):
        row.setdefault("impl", "pytorch")
        row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps(row)
        with open(self.path, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)


class Budget:
    def __init__(self, seconds):
        self.seconds = seconds
        self.t0 = time.perf_counter()

    @property
    def exceeded(self):
        return time.perf_counter() - self.t0 > self.seconds


def sdpa(q, k, v):
    """scaled_dot_product_attention (1/sqrt(d_h)); a plain fallback only for old CPU torch builds (smoke tests)."""
    f = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if f is not None:
        return f(q, k, v)
    w = (q @ k.transpose(-2, -1)).mul(1.0 / math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v


def median(xs):
    return statistics.median(xs)
