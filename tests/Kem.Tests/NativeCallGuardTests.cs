using System.Runtime;
using Microsoft.ML.Kem;

namespace Kem.Tests;

[TestClass]
public sealed class NativeCallGuardTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>Garbage in 64 KB arrays (small-object heap), <paramref name="bytes"/> in all.</summary>
    private static void Allocate(long bytes)
    {
        for (long done = 0; done < bytes; done += 64 << 10) GC.KeepAlive(new byte[64 << 10]);
    }

    private static void AssertNoRegion(string because)
    {
        Assert.AreEqual(0, NativeCallGuard.Leases, because);
        Assert.IsFalse(NativeCallGuard.Active, because);
        Assert.AreNotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode, because);
    }

    [TestMethod]
    public void Nested_leases_share_one_region_that_ends_with_the_last()
    {
        AssertNoRegion("nothing before the first lease");
        using (NativeCallGuard.Enter())
        {
            Assert.IsTrue(NativeCallGuard.Active);
            Assert.AreEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            int collections = GC.CollectionCount(0);
            using (NativeCallGuard.Enter()) Assert.AreEqual(2, NativeCallGuard.Leases);
            Assert.AreEqual(1, NativeCallGuard.Leases);
            Assert.IsTrue(NativeCallGuard.Active, "the inner release leaves the region in force");
            Assert.AreEqual(collections, GC.CollectionCount(0), "joining starts no new region (each start collects)");
        }
        AssertNoRegion("the last release ends the region");
    }

    [TestMethod]
    public void Leases_from_several_threads_join_one_region_that_ends_after_the_last_release()
    {
        const int Threads = 4;
        var barrier = new Barrier(Threads + 1);   // not disposed: a thread may still wait on it after a failed assertion
        var atEnter = new int[Threads];
        var threads = Enumerable.Range(0, Threads).Select(i => new Thread(() =>
        {
            var lease = NativeCallGuard.Enter();
            atEnter[i] = GC.CollectionCount(0);
            barrier.SignalAndWait(Patience);   // 1: every thread holds a lease
            barrier.SignalAndWait(Patience);   // 2: checked
            if (i < Threads - 1) lease.Dispose();
            barrier.SignalAndWait(Patience);   // 3: all but the last released
            barrier.SignalAndWait(Patience);   // 4: checked
            if (i == Threads - 1) lease.Dispose();
            barrier.SignalAndWait(Patience);   // 5: the last released
        }) { IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();

        barrier.SignalAndWait(Patience);
        Assert.AreEqual(Threads, NativeCallGuard.Leases);
        Assert.IsTrue(NativeCallGuard.Active);
        Assert.IsTrue(atEnter.All(c => c == atEnter[0]), $"later leases join the first one's region without a new start (collection counts at entry: {string.Join(", ", atEnter)})");
        int held = GC.CollectionCount(0);
        barrier.SignalAndWait(Patience);
        barrier.SignalAndWait(Patience);
        Assert.AreEqual(1, NativeCallGuard.Leases);
        Assert.IsTrue(NativeCallGuard.Active, "the region outlives every lease but the last");
        Assert.AreEqual(held, GC.CollectionCount(0), "no collection while leases are held");
        barrier.SignalAndWait(Patience);
        barrier.SignalAndWait(Patience);
        foreach (var t in threads) Assert.IsTrue(t.Join(Patience));
        AssertNoRegion("the last release ends the region");
    }

    [TestMethod]
    public void A_region_the_caller_started_is_left_alone()
    {
        Assert.IsTrue(GC.TryStartNoGCRegion(2 * NativeCallGuard.Budget));
        try
        {
            using (NativeCallGuard.Enter())
            {
                Assert.IsFalse(NativeCallGuard.Active, "the region is not the guard's");
                Allocate(NativeCallGuard.Budget / 2 + (4 << 20));   // a renewal would be due in a region of its own
                NativeCallGuard.BetweenCalls();
                Assert.AreEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode, "a start attempt would have ended it");
            }
            Assert.AreEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode, "the caller's region survives the last release");
        }
        finally
        {
            if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        }
        AssertNoRegion("the guard started nothing of its own");
    }

    [TestMethod]
    public void A_region_that_ran_out_of_budget_is_marked_inactive_and_restarted_between_calls()
    {
        using (NativeCallGuard.Enter())
        {
            Assert.IsTrue(NativeCallGuard.Active);
            Allocate(NativeCallGuard.Budget + (16 << 20));
            Assert.AreNotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode, "the runtime ended the region");
            Assert.IsFalse(NativeCallGuard.Active);
            NativeCallGuard.BetweenCalls();
            Assert.IsTrue(NativeCallGuard.Active, "the sole holder restarts it between its native calls");
        }
        AssertNoRegion("ended with the last release, without throwing");
    }

    [TestMethod]
    public void A_due_renewal_waits_for_the_other_threads_leases()
    {
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int holderCollections = -1;
        var holder = new Thread(() =>
        {
            using (NativeCallGuard.Enter())
            {
                int before = GC.CollectionCount(0);
                held.Set();
                release.Wait(Patience);
                holderCollections = GC.CollectionCount(0) - before;
            }
        }) { IsBackground = true };
        holder.Start();
        held.Wait(Patience);

        Allocate(NativeCallGuard.Budget / 2 + (4 << 20));   // renewal due, budget not spent
        Assert.IsTrue(NativeCallGuard.Active);
        int collections = GC.CollectionCount(0);
        using var entered = new ManualResetEventSlim();
        using var done = new ManualResetEventSlim();
        var enterer = new Thread(() =>
        {
            using (NativeCallGuard.Enter())
            {
                entered.Set();
                done.Wait(Patience);
            }
        }) { IsBackground = true };
        enterer.Start();
        Assert.IsFalse(entered.Wait(100), "a new lease waits: renewing now would collect while the holder may be in a native call");
        release.Set();
        Assert.IsTrue(entered.Wait(Patience));
        Assert.IsTrue(holder.Join(Patience));
        Assert.AreEqual(0, holderCollections, "no collection while the holder's lease was held");
        Assert.IsGreaterThan(collections, GC.CollectionCount(0), "the waiting thread renewed the region once the holder had left");
        Assert.IsTrue(NativeCallGuard.Active);
        done.Set();
        Assert.IsTrue(enterer.Join(Patience));
        AssertNoRegion("the last release ends the region");
    }
}
