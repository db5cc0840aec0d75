using System.Diagnostics;
using System.Text.Json;

namespace Kem.Bench;

/// <summary>Median step time: warm-up, then timed iterations, each between two device synchronisations.</summary>
internal static class Measure
{
    public sealed record Timing(double MedianMs, double P10Ms, double P90Ms, int Iterations);

    /// <summary>
    /// Runs <paramref name="iteration"/> <paramref name="warmup"/> times untimed, then at least <paramref name="minIters"/>
    /// and until <paramref name="minSeconds"/> have passed (at most <paramref name="maxIters"/>, and no more than 3 once
    /// <paramref name="maxSeconds"/> have passed). Each timed iteration is bracketed by device synchronisations.
    /// </summary>
    public static Timing Time(Gpu gpu, Action iteration, int warmup, int minIters, int maxIters, double minSeconds, double maxSeconds)
    {
        for (int i = 0; i < warmup; i++) iteration();
        gpu.Sync();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < maxIters)
        {
            if (times.Count >= minIters && total.Elapsed.TotalSeconds >= minSeconds) break;
            if (times.Count >= 3 && total.Elapsed.TotalSeconds >= maxSeconds) break;
            gpu.Sync();
            var sw = Stopwatch.StartNew();
            iteration();
            gpu.Sync();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return new Timing(Percentile(times, 0.5), Percentile(times, 0.1), Percentile(times, 0.9), times.Count);
    }

    /// <summary>
    /// Times <paramref name="iteration"/> like <see cref="Time"/> from an emptied allocator with a fresh peak and an NVML
    /// monitor running, and writes status, median/p10/p90 ms, iterations and both peak-memory columns into <paramref name="row"/>.
    /// </summary>
    public static void TimeInto(Dictionary<string, object?> row, Gpu gpu, Action iteration,
                                int warmup, int minIters, int maxIters, double minSeconds, double maxSeconds)
    {
        gpu.Sync();
        CudaAllocator.EmptyCache();
        var start = CudaAllocator.Stats();
        CudaAllocator.ResetPeak();
        using var monitor = new GpuMonitor(GpuMonitor.PeakPeriod);
        var timing = Time(gpu, iteration, warmup, minIters, maxIters, minSeconds, maxSeconds);
        monitor.Stop();
        var end = CudaAllocator.Stats();
        row["status"] = "ok";
        row["median_ms"] = timing.MedianMs;
        row["p10_ms"] = timing.P10Ms;
        row["p90_ms"] = timing.P90Ms;
        row["iters"] = timing.Iterations;
        row["alloc_peak_mib"] = start is { } s && end is { } e ? (e.AllocatedPeak - s.Allocated) / 1048576.0 : double.NaN;
        row["nvml_peak_mib"] = monitor.PeakAboveBaselineMiB;
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
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public void Write(Dictionary<string, object?> row)
    {
        row.TryAdd("impl", "csharp");
        row["time"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ");
        var line = JsonSerializer.Serialize(row, Json);
        File.AppendAllText(path, line + "\n");
        Console.WriteLine(line);
    }
}
