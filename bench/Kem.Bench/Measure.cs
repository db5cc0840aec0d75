using System.Diagnostics;
using System.Text.Json;

namespace Kem.Bench;

/// <summary>
/// Iteration counts of one measurement (<see cref="Measure.TimeInto"/>): warm-up, at least <see cref="Warmup"/> iterations
/// and <see cref="WarmupSeconds"/> (long enough for .NET's tiered JIT to have replaced the first, unoptimised code of the
/// hot methods: about half a second of iterations on a CPU probe, where the first 50 iterations of KEM cost 16 % more
/// host time than later ones; two seconds for a whole step, many of whose methods run once a step); the timing pass, at
/// least <see cref="MinIters"/> and until <see cref="MinSeconds"/> have passed (at most <see cref="MaxIters"/>, and no more
/// than 3 once <see cref="MaxSeconds"/> have passed); the queued pass, up to <see cref="QueuedIters"/> iterations back to
/// back but no more than fit in <see cref="QueuedSeconds"/>; the memory pass, <see cref="MemoryIters"/> iterations.
/// </summary>
internal sealed record Schedule(int Warmup, double WarmupSeconds, int MinIters, int MaxIters, double MinSeconds, double MaxSeconds,
                                int QueuedIters, double QueuedSeconds, int MemoryIters);

/// <summary>
/// Step time and memory of one iteration (the PyTorch twin's bench/twin/common.py measures the same way), in three
/// passes after the warm-up:
/// <list type="number">
/// <item>timing pass, no NVML sampler running: every iteration between two device synchronisations; its median, p10
/// and p90 (<c>median_ms</c>, ...), and the median time for <c>iteration()</c> to return, i.e. to enqueue its work
/// (<c>host_ms</c>; ≈ <c>median_ms</c> when the row is bound by the host or by launches);</item>
/// <item>queued pass: R iterations back to back between one synchronisation pair, total / R (<c>queued_ms</c>,
/// R = <c>queued_iters</c>): no per-iteration synchronisation latency, the steady-state throughput;</item>
/// <item>memory pass, untimed: from an emptied allocator with a fresh peak and the NVML sampler on
/// (<c>alloc_peak_mib</c>, <c>nvml_peak_mib</c>).</item>
/// </list>
/// </summary>
internal static class Measure
{
    public sealed record Timing(double MedianMs, double P10Ms, double P90Ms, int Iterations, double HostMs, double QueuedMs, int QueuedIters);

    /// <summary>Warm-up, the timing pass and the queued pass of <paramref name="schedule"/>.</summary>
    public static Timing Time(Gpu gpu, Action iteration, Schedule schedule)
    {
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < schedule.Warmup || warm.Elapsed.TotalSeconds < schedule.WarmupSeconds; i++) iteration();
        gpu.Sync();
        var times = new List<double>();
        var hostTimes = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < schedule.MaxIters)
        {
            if (times.Count >= schedule.MinIters && total.Elapsed.TotalSeconds >= schedule.MinSeconds) break;
            if (times.Count >= 3 && total.Elapsed.TotalSeconds >= schedule.MaxSeconds) break;
            gpu.Sync();
            var sw = Stopwatch.StartNew();
            iteration();
            hostTimes.Add(sw.Elapsed.TotalMilliseconds);
            gpu.Sync();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        hostTimes.Sort();
        var median = Percentile(times, 0.5);

        int queued = (int)Math.Clamp(Math.Floor(schedule.QueuedSeconds * 1000 / Math.Max(median, 1e-3)), 1, schedule.QueuedIters);
        gpu.Sync();
        var queue = Stopwatch.StartNew();
        for (int i = 0; i < queued; i++) iteration();
        gpu.Sync();
        var queuedMs = queue.Elapsed.TotalMilliseconds / queued;

        return new Timing(median, Percentile(times, 0.1), Percentile(times, 0.9), times.Count, Percentile(hostTimes, 0.5), queuedMs, queued);
    }

    /// <summary>
    /// Runs the passes of <paramref name="schedule"/> and writes status, the timing columns, iteration counts and both
    /// peak-memory columns into <paramref name="row"/>.
    /// </summary>
    public static void TimeInto(Dictionary<string, object?> row, Gpu gpu, Action iteration, Schedule schedule)
    {
        var timing = Time(gpu, iteration, schedule);
        var (allocPeakMiB, nvmlPeakMiB) = PeakMemory(gpu, iteration, schedule.MemoryIters);
        row["status"] = "ok";
        row["median_ms"] = timing.MedianMs;
        row["p10_ms"] = timing.P10Ms;
        row["p90_ms"] = timing.P90Ms;
        row["iters"] = timing.Iterations;
        row["host_ms"] = timing.HostMs;
        row["queued_ms"] = timing.QueuedMs;
        row["queued_iters"] = timing.QueuedIters;
        row["memory_iters"] = schedule.MemoryIters;
        row["alloc_peak_mib"] = allocPeakMiB;
        row["nvml_peak_mib"] = nvmlPeakMiB;
    }

    /// <summary>
    /// The memory pass: <paramref name="iterations"/> untimed iterations from an emptied allocator with a fresh peak and
    /// the NVML sampler on. Allocator peak above the bytes allocated at the start, and NVML peak above the level after
    /// empty_cache, MiB (NaN where the shim or NVML is absent).
    /// </summary>
    public static (double AllocPeakMiB, double NvmlPeakMiB) PeakMemory(Gpu gpu, Action iteration, int iterations)
    {
        gpu.Sync();
        CudaAllocator.EmptyCache();
        var start = CudaAllocator.Stats();
        CudaAllocator.ResetPeak();
        using var monitor = new GpuMonitor(GpuMonitor.PeakPeriod);
        for (int i = 0; i < iterations; i++) iteration();
        gpu.Sync();
        monitor.Stop();
        var end = CudaAllocator.Stats();
        var alloc = start is { } s && end is { } e ? (e.AllocatedPeak - s.Allocated) / 1048576.0 : double.NaN;
        return (alloc, monitor.PeakAboveBaselineMiB);
    }

    private static double Percentile(List<double> sorted, double q)
    {
        var at = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(at), hi = (int)Math.Ceiling(at);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
    }
}

/// <summary>Result rows, one JSON object a line (the PyTorch twin writes the same keys).</summary>
internal sealed class Results(string path)
{
    /// <summary>"tiered" (the .NET default: methods start unoptimised and are recompiled once hot) or "full" (DOTNET_TieredCompilation=0: optimised from the first call).</summary>
    public static readonly string Jit = Environment.GetEnvironmentVariable("DOTNET_TieredCompilation") == "0" ? "full" : "tiered";

    private static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public void Write(Dictionary<string, object?> row)
    {
        row.TryAdd("impl", "csharp");
        row["jit"] = Jit;
        row["time"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ");
        var line = JsonSerializer.Serialize(row, Json);
        File.AppendAllText(path, line + "\n");
        Console.WriteLine(line);
    }

    /// <summary>
    /// Writes one timed row: as skipped once <paramref name="budget"/> is spent; otherwise after <paramref name="measure"/>
    /// has filled it in, or, when it throws, as an error with the exception's type and first line (the other rows still run).
    /// </summary>
    public void Write(Dictionary<string, object?> row, Budget budget, Action measure)
    {
        if (budget.Exceeded) { Write(Skip(row, $"time budget of {budget.Seconds:F0} s used up")); return; }
        try { measure(); }
        catch (Exception e) { row["status"] = "error"; row["reason"] = e.GetType().Name + ": " + e.Message.Split('\n')[0]; }
        Write(row);
    }

    /// <summary>Marks <paramref name="row"/> as skipped for <paramref name="reason"/>.</summary>
    public static Dictionary<string, object?> Skip(Dictionary<string, object?> row, string reason)
    {
        row["status"] = "skipped";
        row["reason"] = reason;
        return row;
    }
}
