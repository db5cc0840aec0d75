using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem;

/// <summary>
/// libtorch reports running out of memory (CUDA's caching allocator, a cuBLAS or cuDNN workspace, the CPU allocator) as a
/// plain <see cref="ExternalException"/> carrying the native message and stack. These tell that failure apart from other
/// native errors and turn it into an <see cref="InsufficientMemoryException"/> that says what was running and what to change.
/// </summary>
internal static class DeviceMemory
{
    // CUDA: "CUDA out of memory. Tried to allocate …", "CUDA error: out of memory"; cuBLAS / cuDNN: "…_STATUS_ALLOC_FAILED";
    // CPU: "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes" (older libtorch: "not enough memory").
    private static readonly string[] Markers = ["out of memory", "can't allocate memory", "not enough memory", "ALLOC_FAILED"];

    /// <summary>True when <paramref name="e"/>, or an exception it wraps (the prefetcher's thread), is libtorch running out of memory.</summary>
    public static bool IsExhausted(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is ExternalException && Markers.Any(m => e.Message.Contains(m, StringComparison.OrdinalIgnoreCase))) return true;
        return false;
    }

    /// <summary>
    /// "The GPU (cuda:0) ran out of memory while <paramref name="during"/>: native message. <paramref name="fix"/>", with
    /// <paramref name="e"/> as the inner exception.
    /// </summary>
    public static InsufficientMemoryException Exhausted(Exception e, Device device, string during, string fix)
    {
        var native = e;
        while (native is not ExternalException && native.InnerException is not null) native = native.InnerException;
        var where = device.type == DeviceType.CUDA ? $"The GPU ({device})" : $"The {device.type.ToString().ToLowerInvariant()} device";
        return new InsufficientMemoryException($"{where} ran out of memory while {during}: {Summary(native.Message)} {fix}", e);
    }

    /// <summary>The native message without libtorch's C++ stack (its first line), or its <c>[enforce fail …]</c> prefix.</summary>
    private static string Summary(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        int end = line.StartsWith("[enforce fail", StringComparison.Ordinal) ? line.IndexOf("] ", StringComparison.Ordinal) : -1;
        return end >= 0 ? line[(end + 2)..] : line;
    }
}
