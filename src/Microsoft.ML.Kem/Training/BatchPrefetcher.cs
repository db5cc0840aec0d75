using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// Hands out the batches of <see cref="DenseDataset"/> in a given order, prepared ahead of the GPU: on CUDA a
/// background thread gathers the next batches into pinned host tensors (as bytes where that is exact, see
/// <see cref="DenseDataset.HostBatch"/>), and <see cref="Next"/> starts their copies to the device without waiting
/// (non-blocking), so the step never waits for data and never synchronises the host. The copies share the compute
/// stream (TorchSharp has no stream API), so the bytes they move are GPU time: a quarter as many for pixels and labels.
/// On the CPU it simply gathers each batch when asked (same tensors as <see cref="DenseDataset.Batch"/>).
/// </summary>
public sealed class BatchPrefetcher : IDisposable
{
    private readonly DenseDataset data;
    private readonly IReadOnlyList<int[]> batches;
    private readonly Device device;
    private readonly BlockingCollection<(Tensor Images, Tensor[] Labels)>? ready;
    private readonly CancellationTokenSource? stop;
    private readonly Thread? worker;
    private Exception? failure;
    private int next;
    private readonly System.Diagnostics.Stopwatch waiting = new();

    /// <summary>
    /// Time <see cref="Next"/> spent waiting for a batch (CUDA: for the background thread; CPU: gathering it). Time the
    /// GPU may have gone without work: a training loop whose data keeps up shows ~0 here.
    /// </summary>
    public TimeSpan Waited => waiting.Elapsed;

    /// <summary>Prefetches <paramref name="batches"/> (image indices per batch) of <paramref name="data"/> for <paramref name="device"/>.</summary>
    /// <param name="data">The data set.</param>
    /// <param name="batches">Image indices of every batch, in the order <see cref="Next"/> returns them.</param>
    /// <param name="device">Where the batches are used.</param>
    /// <param name="depth">Batches prepared ahead (CUDA only).</param>
    public BatchPrefetcher(DenseDataset data, IReadOnlyList<int[]> batches, Device device, int depth = 3)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(batches);
        if (depth < 1) throw new ArgumentOutOfRangeException(nameof(depth), depth, "depth must be ≥ 1.");
        (this.data, this.batches, this.device) = (data, batches, device);
        if (device.type != DeviceType.CUDA) return;
        ready = new BlockingCollection<(Tensor, Tensor[])>(depth);
        stop = new CancellationTokenSource();
        worker = new Thread(Produce) { IsBackground = true, Name = "kem-batch-prefetcher" };
        worker.Start();
    }

    /// <summary>The next batch on the device: images B×3×H×W and labels B×P×H×W per task, in the caller's dispose scope.</summary>
    public (Tensor Images, Tensor[] Labels) Next()
    {
        if (next >= batches.Count) throw new InvalidOperationException($"All {batches.Count} batches were already handed out.");
        waiting.Start();
        (Tensor Images, Tensor[] Labels) host;
        try
        {
            if (ready is null) return data.Batch(batches[next++], device);
            if (!ready.TryTake(out host, Timeout.Infinite))
                throw new InvalidOperationException("The batch prefetcher stopped early.", failure);
        }
        finally { waiting.Stop(); }
        next++;
        try
        {
            // Pinned host memory: the copies run asynchronously; the host allocator keeps each block until its copy is done.
            // Byte batches (raw pixels, class labels) become float32 on the device.
            var images = DenseDataset.ToFloat(host.Images.to(device, non_blocking: true));
            var labels = host.Labels.Select(l => DenseDataset.ToFloat(l.to(device, non_blocking: true))).ToArray();
            return (images, labels);
        }
        finally
        {
            host.Images.Dispose();
            foreach (var l in host.Labels) l.Dispose();
        }
    }

    private void Produce()
    {
        try
        {
            foreach (var indices in batches)
            {
                var pinned = data.HostBatch(indices, pinned: true);   // gathered straight into page-locked memory: no managed copy
                try { ready!.Add(pinned, stop!.Token); }
                catch (OperationCanceledException)
                {
                    pinned.Images.Dispose();
                    foreach (var l in pinned.Labels) l.Dispose();
                    throw;
                }
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception e) { failure = e; }
        finally { ready!.CompleteAdding(); }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (ready is null) return;
        stop!.Cancel();
        worker!.Join();
        while (ready.TryTake(out var left))
        {
            left.Images.Dispose();
            foreach (var l in left.Labels) l.Dispose();
        }
        ready.Dispose();
        stop.Dispose();
    }
}
