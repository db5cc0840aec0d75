using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class SegmentationMetricsTests
{
    [TestMethod]
    public void IoU_counts_skip_the_ignored_pixel()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.Segmentation(3, "Seg"));
        float[] label = [0, 0, 1, 2, 255, 1];
        float[] prediction = [0, 1, 1, 2, 0, 0];
        accumulator.Add(prediction, label, 2, 3);
        var metrics = (SegmentationMetrics)accumulator.Compute();
        // TP = [1,1,1], FP = [1,1,0], FN = [1,1,0] → IoU = [1/3, 1/3, 1]; the ignored pixel's prediction 0 is not an FP.
        Assert.AreEqual(100.0 / 3, metrics.PerClassIoU[0], 1e-9);
        Assert.AreEqual(100.0 / 3, metrics.PerClassIoU[1], 1e-9);
        Assert.AreEqual(100.0, metrics.PerClassIoU[2], 1e-9);
        Assert.AreEqual(500.0 / 9, metrics.MeanIoU, 1e-9);
        Assert.AreEqual(60.0, metrics.PixelAccuracy, 1e-9);
        Assert.AreEqual(metrics.MeanIoU, metrics.Primary);
        Assert.IsFalse(metrics.LowerIsBetter);
        Assert.AreEqual("Seg", metrics.TaskName);
    }

    [TestMethod]
    public void MeanIoU_uses_counts_over_the_split_not_per_image_means()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.Segmentation(2));
        accumulator.Add([0, 0, 0, 0], [0, 0, 0, 1], 2, 2);
        accumulator.Add([1, 1], [1, 1], 1, 2);
        var metrics = (SegmentationMetrics)accumulator.Compute();
        // global: IoU_0 = 3/4, IoU_1 = 2/3 (per-image means would give 43.75)
        Assert.AreEqual(100 * (0.75 + 2.0 / 3) / 2, metrics.MeanIoU, 1e-9);
    }

    [TestMethod]
    public void Class_absent_everywhere_counts_as_zero_IoU()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.PartsOf(3));
        accumulator.Add([0, 1], [0, 1], 1, 2);
        var metrics = (SegmentationMetrics)accumulator.Compute();
        Assert.AreEqual(TaskKind.Parts, metrics.Kind);
        Assert.AreEqual(200.0 / 3, metrics.MeanIoU, 1e-9);
    }

    [TestMethod]
    [DataRow(21f)]
    [DataRow(-1f)]
    [DataRow(float.NaN)]
    [DataRow(2.5f)]
    public void Label_out_of_range_names_task_value_and_valid_range(float bad)
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.Segmentation(21, "Seg"));
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => accumulator.Add([0, 0], [3, bad], 1, 2));
        Assert.Contains("'Seg'", error.Message);
        Assert.Contains($"label {bad}", error.Message);
        Assert.Contains("labels must be 0..20 or 255", error.Message);
    }

    [TestMethod]
    public void Rejected_image_leaves_the_accumulator_unchanged()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.Segmentation(2));
        accumulator.Add([0, 1], [0, 0], 1, 2);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => accumulator.Add([1, 1], [1, 7], 1, 2));
        var metrics = (SegmentationMetrics)accumulator.Compute();
        Assert.AreEqual(50.0, metrics.PixelAccuracy, 1e-9);
    }

    [TestMethod]
    public void NaN_prediction_names_the_task()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.Segmentation(2, "Seg"));
        var error = Assert.ThrowsExactly<ArgumentException>(() => accumulator.Add([0, float.NaN], [0, 0], 1, 2));
        Assert.Contains("'Seg'", error.Message);
    }

    [TestMethod]
    public void Compute_without_valid_pixels_says_what_to_do()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.Segmentation(2, "Seg"));
        accumulator.Add([0, 1], [255, 255], 1, 2);
        var error = Assert.ThrowsExactly<InvalidOperationException>(accumulator.Compute);
        Assert.Contains("'Seg'", error.Message);
    }
}
