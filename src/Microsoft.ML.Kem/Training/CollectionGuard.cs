namespace Microsoft.ML.Kem.Training;

/// <summary>
/// A training loop's lease on <see cref="NativeCallGuard"/>: keeps other threads from starting a .NET garbage collection
/// while the loop's thread is inside TorchSharp's native calls (why: see <see cref="NativeCallGuard"/>). The lease is
/// taken at the first step and held until disposal; between steps, where no native call is in flight on this thread,
/// the region is renewed once half the budget is used — at once when the loop holds the only lease, after the other
/// holders (scoring threads) have finished otherwise. Reproduced under load in the training-loop tests.
/// </summary>
public sealed class CollectionGuard : IDisposable
{
    /// <summary>Managed bytes that may be allocated (by any thread) before the region is renewed at half of them.</summary>
    public const long Budget = NativeCallGuard.Budget;

    private NativeCallGuard.Lease? lease;

    /// <summary>True while this guard holds a lease and a no-GC region started by <see cref="NativeCallGuard"/> is in force.</summary>
    public bool Active => lease is not null && NativeCallGuard.Active;

    /// <summary>
    /// Call between steps, on the loop's thread: takes the lease at the first call, later renews the region once half
    /// the budget is used (or when it has ended), with the one collection that needs — started here, where no native
    /// call is in flight on this thread.
    /// </summary>
    public void BetweenSteps()
    {
        if (lease is null) lease = NativeCallGuard.Enter();
        else NativeCallGuard.BetweenCalls();
    }

    /// <summary>Gives the lease back; the region ends with the last lease (collections resume as usual).</summary>
    public void Dispose()
    {
        lease?.Dispose();
        lease = null;
    }
}
