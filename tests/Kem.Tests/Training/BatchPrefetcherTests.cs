using Microsoft.ML.Kem.Training;
using static TorchSharp.torch;

namespace Kem.Tests.Training;

[TestClass]
public sealed class BatchPrefetcherTests
{
    [TestMethod]
    public void Prefetched_batches_equal_the_data_set_batches_in_order()
    {
        var data = TinyData.Make(TinyData.SegDepth, 6, 16, 16, seed: 2);
        int[][] batches = [[4, 1], [0, 5], [3, 2]];
        using var prefetcher = new BatchPrefetcher(data, batches, CPU);
        foreach (var indices in batches)
        {
            using var scope = NewDisposeScope();
            var (images, labels) = prefetcher.Next();
            var (expectedImages, expectedLabels) = data.Batch(indices, CPU);
            Assert.IsTrue(images.eq(expectedImages).all().item<bool>(), "images");
            for (int t = 0; t < labels.Length; t++) Assert.IsTrue(labels[t].eq(expectedLabels[t]).all().item<bool>(), $"labels of task {t}");
        }
        Assert.ThrowsExactly<InvalidOperationException>(() => prefetcher.Next());
    }
}
