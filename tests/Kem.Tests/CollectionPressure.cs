using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests;

/// <summary>
/// A network that counts the forwards during which a garbage collection ran: it wraps <paramref name="inner"/> and
/// compares GC.CollectionCount(0) before and after the inner forward — the window in which TorchSharp's unreferenced
/// Scalars must not be collected (README, "Known issues").
/// </summary>
internal sealed class CollectionProbe : MultiTaskModel
{
    private readonly MultiTaskModel inner;
    private int forwards, disturbed;

    public CollectionProbe(MultiTaskModel inner) : base("probe", inner.Options)
    {
        this.inner = inner;
        register_module("inner", inner);
    }

    /// <summary>Forwards run so far.</summary>
    public int Forwards => Volatile.Read(ref forwards);

    /// <summary>Forwards during which a gen-0 collection ran.</summary>
    public int Disturbed => Volatile.Read(ref disturbed);

    public override Tensor[] forward(Tensor images)
    {
        int before = GC.CollectionCount(0);
        var outputs = inner.forward(images);
        if (GC.CollectionCount(0) != before) Interlocked.Increment(ref disturbed);
        Interlocked.Increment(ref forwards);
        return outputs;
    }
}

/// <summary>
/// Another thread that allocates garbage at a steady rate (about 128 KB a millisecond) until disposed: without a no-GC
/// region it starts a gen-0 collection every few milliseconds; inside one it stays well within the guard's budget
/// between renewals. (An explicit GC.Collect on another thread would end any no-GC region: the runtime allows no region
/// to refuse it, so that is not what a guard can be tested against.)
/// </summary>
internal sealed class AllocationPressure : IDisposable
{
    private readonly Thread thread;
    private volatile bool stop;
    private long allocated;

    public AllocationPressure()
    {
        thread = new Thread(Run) { IsBackground = true, Name = "allocation-pressure" };
        thread.Start();
    }

    /// <summary>Bytes allocated so far.</summary>
    public long Allocated => Interlocked.Read(ref allocated);

    private void Run()
    {
        while (!stop)
        {
            GC.KeepAlive(new byte[128 << 10]);
            Interlocked.Add(ref allocated, 128 << 10);
            Thread.Sleep(1);
        }
    }

    public void Dispose()
    {
        stop = true;
        thread.Join();
    }
}
