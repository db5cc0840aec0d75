using System.Runtime;

namespace Microsoft.ML.Kem;

/// <summary>
/// Keeps .NET garbage collections out of TorchSharp's native calls, for any number of threads at once. TorchSharp 0.107
/// turns numbers — including the implicit alpha = 1 of every tensor <c>+</c> and <c>-</c> — into <c>Scalar</c> objects
/// that nothing references while the native call that reads them runs; a collection started by another thread at that
/// moment lets the finalizer thread free the Scalar mid-call, and libtorch fails with "Expected false to be true" at
/// <c>c10/core/Scalar.h … toFloat</c> (dotnet/TorchSharp pull requests 1434 and 1496; README, "Known issues").
/// <para>
/// Hold a lease around TorchSharp work: <c>using (NativeCallGuard.Enter()) { … }</c>. The first lease starts a no-GC
/// region of <see cref="Budget"/> bytes (a process-wide runtime state), later leases join it, and the last release ends
/// it. The region is renewed — one collection, on the renewing thread — once half the budget is allocated or it has
/// ended on its own, and only where no other thread holds a lease (so none is inside a guarded native call): a thread
/// entering then waits for the other holders to finish (at most <see cref="MaxWait"/>), and a thread that holds every
/// lease renews at once (<see cref="BetweenCalls"/>, used by the training loop between steps).
/// </para>
/// <para>
/// Not covered: a region that someone else started is left alone (it guards just as well); if the runtime refuses a
/// region, work runs unguarded. The runtime ends a region when more than the budget is allocated before a renewal point
/// or when any thread calls <c>GC.Collect</c>; calls in flight at that moment are unguarded.
/// </para>
/// </summary>
public static class NativeCallGuard
{
    /// <summary>Managed bytes that may be allocated (by any thread) during a region; it is renewed at half of them.</summary>
    public const long Budget = 64L << 20;

    /// <summary>How long a thread waits for other holders to finish before a renewal; after that it joins the old region.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(1);

    private static readonly object gate = new();
    private static readonly Dictionary<int, int> leasesOf = new();   // managed thread id → leases that thread holds
    private static int leases;
    private static bool started;          // the region in force, if any, is the one this guard started
    private static bool refused;          // the last start was refused: retry only after another half budget
    private static long allocatedAtStart; // GC.GetTotalAllocatedBytes() at the last start (or refusal)

    /// <summary>Leases held now, by all threads.</summary>
    public static int Leases { get { lock (gate) return leases; } }

    /// <summary>True while a no-GC region started by this guard is in force.</summary>
    public static bool Active { get { lock (gate) return OwnRegion; } }

    /// <summary>Takes a lease: until it is disposed (on this thread), other threads' allocations start no collection (within the limits above).</summary>
    public static Lease Enter()
    {
        int thread = Environment.CurrentManagedThreadId;
        lock (gate) Acquire(thread);
        return new Lease(thread);
    }

    /// <summary>
    /// Call on a thread that holds a lease, at a point where it is between native calls: renews the region if it is due.
    /// Where other threads hold leases too, a thread that holds one lease gives it back, waits for the others (at most
    /// <see cref="MaxWait"/>), and takes it again in the renewed region. Does nothing on a thread that holds no lease.
    /// </summary>
    public static void BetweenCalls()
    {
        int thread = Environment.CurrentManagedThreadId;
        lock (gate)
        {
            int mine = LeasesOf(thread);
            if (mine == 0 || !RenewalDue) return;
            if (mine == leases) { Renew(); Monitor.PulseAll(gate); return; }
            if (mine > 1) return;   // nested leases on this thread: it cannot step aside
            Count(thread, -1);
            Acquire(thread);
        }
    }

    /// <summary>One lease on the shared region; dispose it on the thread that took it.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly int thread;
        private int released;

        internal Lease(int thread) => this.thread = thread;

        /// <summary>Gives the lease back; the last one ends the region (collections are safe then).</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) != 0) return;
            lock (gate)
            {
                Count(thread, -1);
                if (leases == 0) End();
                Monitor.PulseAll(gate);
            }
        }
    }

    private static bool OwnRegion => started && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;

    private static bool RenewalDue
    {
        get
        {
            bool inRegion = GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;
            if (inRegion && !started) return false;   // someone else's region: leave it alone
            bool halfSpent = GC.GetTotalAllocatedBytes() - allocatedAtStart >= Budget / 2;
            return inRegion ? halfSpent : !refused || halfSpent;
        }
    }

    /// <summary>Under the gate: waits while others hold leases and a renewal is due, renews if this thread may, counts the lease.</summary>
    private static void Acquire(int thread)
    {
        int mine = LeasesOf(thread);
        if (mine == 0)
        {
            long deadline = Environment.TickCount64 + (long)MaxWait.TotalMilliseconds;
            while (leases > 0 && RenewalDue)
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0) break;
                Monitor.Wait(gate, (int)left);
            }
        }
        if (leases == mine && RenewalDue) Renew();   // every lease is this thread's, and it is between native calls
        Count(thread, +1);
        Monitor.PulseAll(gate);
    }

    private static void Renew()
    {
        End();
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return;   // someone else's region
        // First without the full blocking collection a start otherwise runs (0.36 → 0.02 ms per start with 300 MB live, measured
        // here); only where the runtime cannot find the budget that way, with it.
        try { started = GC.TryStartNoGCRegion(Budget, disallowFullBlockingGC: true) || GC.TryStartNoGCRegion(Budget); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException) { started = false; }
        refused = !started;
        allocatedAtStart = GC.GetTotalAllocatedBytes();
    }

    private static void End()
    {
        if (OwnRegion)
        {
            try { GC.EndNoGCRegion(); }
            catch (InvalidOperationException) { }   // the runtime ended it in the meantime
        }
        started = false;
    }

    private static int LeasesOf(int thread) => leasesOf.GetValueOrDefault(thread);

    private static void Count(int thread, int delta)
    {
        int now = LeasesOf(thread) + delta;
        if (now == 0) leasesOf.Remove(thread);
        else leasesOf[thread] = now;
        leases += delta;
    }
}
