using System.Runtime;
using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Training;

namespace Kem.Tests.Training;

[TestClass]
public sealed class CollectionGuardTests
{
    [TestMethod]
    public void Holds_a_no_gc_region_between_steps_and_ends_it_on_dispose()
    {
        using (var guard = new CollectionGuard())
        {
            Assert.IsFalse(guard.Active, "nothing before the first step");
            guard.BetweenSteps();
            Assert.IsTrue(guard.Active);
            Assert.AreEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            int collections = GC.CollectionCount(0);
            var small = new byte[1 << 20];                                         // well inside the budget
            guard.BetweenSteps();
            Assert.AreEqual(collections, GC.CollectionCount(0), "no collection while the region holds");
            GC.KeepAlive(small);
        }
        Assert.AreNotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode, "collections resume after the guard");
    }

    [TestMethod]
    public void Renews_the_region_once_half_the_budget_is_allocated()
    {
        using var guard = new CollectionGuard();
        guard.BetweenSteps();
        int collections = GC.CollectionCount(0);
        var chunks = new List<byte[]>();
        for (long allocated = 0; allocated < CollectionGuard.Budget / 2 + (8 << 20); allocated += 8 << 20) chunks.Add(new byte[8 << 20]);
        chunks.Clear();
        guard.BetweenSteps();
        Assert.IsTrue(guard.Active, "a new region");
        Assert.IsGreaterThan(collections, GC.CollectionCount(0), "renewing collects, on this thread, between steps");
    }

    [TestMethod]
    public void An_inner_guard_joins_the_outer_region_and_leaves_it_in_force()
    {
        using var outer = new CollectionGuard();
        outer.BetweenSteps();
        using (var inner = new CollectionGuard())
        {
            inner.BetweenSteps();
            Assert.IsTrue(inner.Active, "the inner guard's lease joins the outer region");
            Assert.AreEqual(2, NativeCallGuard.Leases);
        }
        Assert.IsTrue(outer.Active, "the outer region survives the inner guard");
    }

    [TestMethod]
    public void A_due_renewal_between_steps_waits_for_a_scoring_threads_lease()
    {
        using var guard = new CollectionGuard();
        guard.BetweenSteps();
        using var held = new ManualResetEventSlim();
        int scorerCollections = -1;
        var scorer = new Thread(() =>
        {
            using (NativeCallGuard.Enter())
            {
                int before = GC.CollectionCount(0);
                held.Set();
                Thread.Sleep(200);   // "in a native call"
                Volatile.Write(ref scorerCollections, GC.CollectionCount(0) - before);
            }
        }) { IsBackground = true };
        scorer.Start();
        Assert.IsTrue(held.Wait(TimeSpan.FromSeconds(30)));
        var chunks = new List<byte[]>();
        for (long allocated = 0; allocated < CollectionGuard.Budget / 2 + (4 << 20); allocated += 64 << 10) chunks.Add(new byte[64 << 10]);
        chunks.Clear();
        int collections = GC.CollectionCount(0);

        guard.BetweenSteps();
        Assert.AreEqual(0, Volatile.Read(ref scorerCollections), "the renewal waited until the scorer had left, with no collection during its lease");
        Assert.IsGreaterThan(collections, GC.CollectionCount(0), "then renewed");
        Assert.IsTrue(guard.Active);
        Assert.IsTrue(scorer.Join(TimeSpan.FromSeconds(30)));
    }
}
