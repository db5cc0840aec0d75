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

    [TestMethod]
    public void Waited_counts_the_time_inside_Next_only()
    {
        var data = TinyData.Make(TinyData.SegDepth, 4, 16, 16, seed: 2);
        using var prefetcher = new BatchPrefetcher(data, [[0, 1], [2, 3]], CPU);
        Assert.AreEqual(TimeSpan.Zero, prefetcher.Waited);
        using (var scope = NewDisposeScope()) prefetcher.Next();
        var afterFirst = prefetcher.Waited;
        Assert.IsTrue(afterFirst > TimeSpan.Zero, "gathering on the CPU is waiting for data");
        Thread.Sleep(50);
        Assert.AreEqual(afterFirst, prefetcher.Waited, "the clock stops when Next returns");
    }

    [TestMethod]
    public void Host_batches_travel_as_bytes_only_where_that_is_exact()
    {
        var data = TinyData.Make(TinyData.SegDepth, 6, 16, 16, seed: 2);   // integer pixels 0..255, class labels, depth in whole metres
        int[] indices = [4, 1, 3];
        using var scope = NewDisposeScope();
        var (images, labels) = data.HostBatch(indices, pinned: false);
        Assert.AreEqual(ScalarType.Byte, images.dtype, "raw pixels");
        Assert.AreEqual(ScalarType.Byte, labels[0].dtype, "segmentation labels");
        Assert.AreEqual(ScalarType.Byte, labels[1].dtype, "depth in whole metres 0..255");
        var (expectedImages, expectedLabels) = data.Batch(indices, CPU);
        Assert.IsTrue(DenseDataset.ToFloat(images).eq(expectedImages).all().item<bool>(), "images as float32");
        for (int t = 0; t < labels.Length; t++)
            Assert.IsTrue(DenseDataset.ToFloat(labels[t]).eq(expectedLabels[t]).all().item<bool>(), $"labels of task {t} as float32");

        // One value that a byte cannot hold exactly keeps that whole array in float32.
        var pixels = Enumerable.Range(0, 6).SelectMany(i => data.Image(i).ToArray()).ToArray();
        pixels[5] = 12.5f;
        var labelArrays = Enumerable.Range(0, 2).Select(t => Enumerable.Range(0, 6).SelectMany(i => data.Label(t, i).ToArray()).ToArray()).ToArray();
        labelArrays[1][7] = 2.25f;
        var scaled = new DenseDataset(data.Tasks, 16, 16, pixels, labelArrays, "scaled pixels");
        var (floatImages, floatLabels) = scaled.HostBatch([0], pinned: false);
        Assert.AreEqual(ScalarType.Float32, floatImages.dtype);
        Assert.AreEqual(12.5f, floatImages.flatten()[5].item<float>());
        Assert.AreEqual(ScalarType.Byte, floatLabels[0].dtype, "segmentation labels");
        Assert.AreEqual(ScalarType.Float32, floatLabels[1].dtype, "depth");
        Assert.AreEqual(2.25f, floatLabels[1].flatten()[7].item<float>());
    }
}
