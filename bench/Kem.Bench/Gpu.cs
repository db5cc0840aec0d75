using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>The device under test: synchronisation, the caching allocator's statistics and NVML sampling.</summary>
internal sealed class Gpu(Device device)
{
    public Device Device { get; } = device;
    public bool IsCuda => Device.type == DeviceType.CUDA;

    /// <summary>Waits until every queued kernel has finished (no-op on the CPU).</summary>
    public void Sync()
    {
        if (IsCuda) torch.cuda.synchronize(Device);
    }

    /// <summary>Name of the device (NVML on CUDA).</summary>
    public string Name => IsCuda ? (Nvml.Instance?.Name ?? "cuda") : $"cpu ({Environment.ProcessorCount} logical cores)";
}

/// <summary>
/// PyTorch's CUDA caching-allocator statistics (the numbers behind torch.cuda.max_memory_allocated), through a
/// 20-line C++ shim built on the GPU machine against its libtorch (bench/native/kem_cuda_stats.cpp). TorchSharp
/// 0.107 exposes none of them. Absent (and every call a no-op) when the shim was not built.
/// </summary>
internal static class CudaAllocator
{
    private const string Lib = "kemcudastats";
    [DllImport(Lib)] private static extern int kem_cuda_stats(int device, long[] values);
    [DllImport(Lib)] private static extern int kem_cuda_reset_peak(int device);
    [DllImport(Lib)] private static extern int kem_cuda_empty_cache();

    private static bool? available;

    public static bool Available
    {
        get
        {
            if (available is null)
            {
                try { available = kem_cuda_stats(0, new long[4]) == 0; }
                catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException) { available = false; }
            }
            return available.Value;
        }
    }

    /// <summary>(allocated now, allocated peak, reserved now, reserved peak) in bytes; null without the shim.</summary>
    public static (long Allocated, long AllocatedPeak, long Reserved, long ReservedPeak)? Stats()
    {
        if (!Available) return null;
        var v = new long[4];
        return kem_cuda_stats(0, v) == 0 ? (v[0], v[1], v[2], v[3]) : null;
    }

    public static void ResetPeak() { if (Available) kem_cuda_reset_peak(0); }
    public static void EmptyCache() { if (Available) kem_cuda_empty_cache(); }
}

/// <summary>NVML through P/Invoke (libnvidia-ml.so.1): device memory in use and GPU utilisation of device 0.</summary>
internal sealed class Nvml
{
    private const string Lib = "libnvidia-ml.so.1";
    [StructLayout(LayoutKind.Sequential)] private struct Memory { public ulong Total, Free, Used; }
    [StructLayout(LayoutKind.Sequential)] private struct Utilization { public uint Gpu, MemoryBandwidth; }
    [DllImport(Lib)] private static extern int nvmlInit_v2();
    [DllImport(Lib)] private static extern int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);
    [DllImport(Lib)] private static extern int nvmlDeviceGetMemoryInfo(IntPtr device, out Memory memory);
    [DllImport(Lib)] private static extern int nvmlDeviceGetUtilizationRates(IntPtr device, out Utilization utilization);
    [DllImport(Lib)] private static extern int nvmlDeviceGetName(IntPtr device, byte[] name, uint length);

    private readonly IntPtr handle;
    private static readonly Lazy<Nvml?> instance = new(Open);

    private Nvml(IntPtr handle, string name) => (this.handle, Name) = (handle, name);

    /// <summary>NVML for device 0, or null where there is none (CPU machines).</summary>
    public static Nvml? Instance => instance.Value;
    public string Name { get; }

    private static Nvml? Open()
    {
        try
        {
            if (nvmlInit_v2() != 0 || nvmlDeviceGetHandleByIndex_v2(0, out var device) != 0) return null;
            var name = new byte[96];
            nvmlDeviceGetName(device, name, (uint)name.Length);
            return new Nvml(device, System.Text.Encoding.ASCII.GetString(name).TrimEnd('\0'));
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

    /// <summary>Device memory in use (all processes), bytes.</summary>
    public long UsedBytes() => nvmlDeviceGetMemoryInfo(handle, out var m) == 0 ? (long)m.Used : -1;

    /// <summary>Percent of the last sample period in which a kernel ran.</summary>
    public int UtilizationPercent() => nvmlDeviceGetUtilizationRates(handle, out var u) == 0 ? (int)u.Gpu : -1;
}

/// <summary>
/// Samples NVML on a background thread while it is alive: device memory in use every <c>memoryPeriod</c> (peak and
/// last reading) and GPU utilisation every <see cref="UtilizationPeriod"/> (timestamped, so a window can be averaged).
/// No timed pass runs with one (see <see cref="Measure"/>); the soak does, at <see cref="SoakPeriod"/>.
/// </summary>
internal sealed class GpuMonitor : IDisposable
{
    /// <summary>Memory sampling period of the memory pass, which looks for a peak.</summary>
    public static readonly TimeSpan PeakPeriod = TimeSpan.FromMilliseconds(1);
    /// <summary>Memory sampling period of the soak, which reads the last value at every report.</summary>
    public static readonly TimeSpan SoakPeriod = TimeSpan.FromMilliseconds(20);
    public static readonly TimeSpan UtilizationPeriod = TimeSpan.FromMilliseconds(20);

    private readonly Nvml? nvml = Nvml.Instance;
    private readonly TimeSpan memoryPeriod;
    private readonly Thread? thread;
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private readonly List<(double Seconds, int Percent)> utilization = new();
    private volatile bool running = true;
    private long peakUsed = -1, lastUsed = -1;

    public GpuMonitor(TimeSpan memoryPeriod)
    {
        this.memoryPeriod = memoryPeriod;
        if (nvml is null) return;
        BaselineUsed = nvml.UsedBytes();
        thread = new Thread(Run) { IsBackground = true, Name = "nvml-sampler" };
        thread.Start();
    }

    /// <summary>NVML memory in use when the monitor started, bytes (-1 without NVML).</summary>
    public long BaselineUsed { get; } = -1;
    public double Now => clock.Elapsed.TotalSeconds;
    public long LastUsed => Interlocked.Read(ref lastUsed);

    private void Run()
    {
        double nextUtilization = 0;
        while (running)
        {
            SampleMemory();
            if (Now >= nextUtilization)
            {
                var u = nvml!.UtilizationPercent();
                lock (utilization) utilization.Add((Now, u));
                nextUtilization = Now + UtilizationPeriod.TotalSeconds;
            }
            Thread.Sleep(memoryPeriod);
        }
    }

    private void SampleMemory()
    {
        var used = nvml!.UsedBytes();
        Interlocked.Exchange(ref lastUsed, used);
        if (used > Interlocked.Read(ref peakUsed)) Interlocked.Exchange(ref peakUsed, used);
    }

    /// <summary>Peak NVML memory in use above the baseline, MiB (NaN without NVML or without a successful reading).</summary>
    public double PeakAboveBaselineMiB
    {
        get
        {
            var peak = Interlocked.Read(ref peakUsed);
            return nvml is null || peak < 0 || BaselineUsed < 0 ? double.NaN : (peak - BaselineUsed) / 1048576.0;
        }
    }

    /// <summary>Mean NVML utilisation over samples taken in [from, to] seconds (NaN without NVML or samples).</summary>
    public double MeanUtilization(double from, double to)
    {
        lock (utilization)
        {
            var window = utilization.Where(s => s.Seconds >= from && s.Seconds <= to && s.Percent >= 0).ToList();
            return window.Count == 0 ? double.NaN : window.Average(s => s.Percent);
        }
    }

    /// <summary>
    /// Stops the sampler and takes one last memory reading on this thread, so a peak reached just before the stop (the
    /// caching allocator keeps what it reserved) is seen even when the pass was shorter than a sampling period.
    /// </summary>
    public void Stop()
    {
        if (!running) return;
        running = false;
        thread?.Join();
        if (nvml is not null) SampleMemory();
    }

    public void Dispose() => Stop();
}
