using System.Runtime;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// Keeps other threads from starting a .NET garbage collection while a training loop's thread is inside TorchSharp's
/// native calls. TorchSharp 0.107 turns numbers — including the implicit alpha = 1 of every tensor <c>+</c> and
/// <c>-</c> — into <c>Scalar</c> objects that nothing references during the native call that reads them; a collection
/// started by another thread at that moment lets the finalizer thread free the Scalar mid-call, and libtorch then fails
/// with "Expected false to be true" at <c>c10/core/Scalar.h … toFloat</c> (dotnet/TorchSharp pull requests 1434 and
/// 1496). Reproduced here under load in the training-loop tests. The guard holds a no-GC region of
/// <see cref="Budget"/> bytes and renews it between steps, where this thread collects on its own.
/// </summary>
public sealed class CollectionGuard : IDisposable
{
    /// <summary>Managed bytes that may be allocated (by any thread) before the region is renewed at half of them.</summary>
    public const long Budget = 64L << 20;

    private long allocatedAtStart;
    private bool active;

    /// <summary>True while this guard holds a no-GC region.</summary>
    public bool Active => active && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;

    /// <summary>
    /// Call between steps, on the loop's thread: renews the region once half the budget is used (or when it has ended),
    /// with the one collection that needs — started here, where no native call is in flight on this thread.
    /// </summary>
    public void BetweenSteps()
    {
        if (Active && GC.GetTotalAllocatedBytes() - allocatedAtStart < Budget / 2) return;
        End();
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return;   // the caller's own region: leave it alone
        try { active = GC.TryStartNoGCRegion(Budget); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException) { active = false; }
        allocatedAtStart = GC.GetTotalAllocatedBytes();
    }

    /// <summary>Ends the region (collections resume as usual).</summary>
    public void Dispose() => End();

    private void End()
    {
        if (Active) GC.EndNoGCRegion();
        active = false;
    }
}
