using Kem.Tests.Interaction;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Kem.Tests.Tasks;

/// <summary>MODEL-SPEC §9's option: predictions resized to their labels' (original) size before scoring.</summary>
[TestClass]
public sealed class PredictionResizeTests
{
    /// <summary>PyTorch's bilinear resize (align_corners = False), the reference: C×h×w → C×H×W.</summary>
    private static Tensor Interpolate(Tensor planes, int height, int width) =>
        F.interpolate(planes.unsqueeze(0), [height, width], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0);

    [TestMethod]
    [DataRow(5, 7, 12, 9)]   // up
    [DataRow(12, 9, 5, 4)]   // down
    [DataRow(6, 6, 6, 6)]    // same size: unchanged
    public void Scores_are_resized_as_pytorchs_bilinear_interpolate(int h, int w, int outH, int outW)
    {
        using var scope = NewDisposeScope();
        var depth = TensorAssert.Randn(1, 1, h, w).abs();
        var resized = PredictionResize.ToSize(TaskSpec.DepthTask(), depth.data<float>().ToArray(), h, w, outH, outW);
        TensorAssert.Close(Interpolate(depth, outH, outW), tensor(resized).view(1, outH, outW), 1e-5, "depth");
    }

    [TestMethod]
    public void Classes_are_the_argmax_of_the_resized_scores_and_normals_stay_unit_vectors()
    {
        using var scope = NewDisposeScope();
        var logits = TensorAssert.Randn(2, 5, 4, 6);
        var labels = PredictionResize.ToSize(TaskSpec.Segmentation(5), logits.data<float>().ToArray(), 4, 6, 9, 11);
        CollectionAssert.AreEqual(Interpolate(logits, 9, 11).argmax(0).to(ScalarType.Float32).data<float>().ToArray(), labels);

        var normals = F.normalize(TensorAssert.Randn(3, 3, 4, 6), p: 2, dim: 0);
        var resized = tensor(PredictionResize.ToSize(TaskSpec.NormalsTask(), normals.data<float>().ToArray(), 4, 6, 7, 5)).view(3, 7, 5);
        TensorAssert.Close(F.normalize(Interpolate(normals, 7, 5), p: 2, dim: 0), resized, 1e-5, "normalize(interpolate(n))");
        TensorAssert.Close(ones(7, 5), resized.norm(0), 1e-5, "unit length");

        var tie = PredictionResize.ToSize(TaskSpec.Segmentation(3), [0.5f, 2f, 2f], 1, 1, 1, 1);
        CollectionAssert.AreEqual(new[] { 1f }, tie, "ties go to the first class, as torch.argmax");
        Assert.ThrowsExactly<ArgumentException>(() => PredictionResize.ToSize(TaskSpec.Segmentation(3), new float[5], 1, 2, 2, 2));
    }

    private const int Small = 2, Large = 4;

    public sealed class ScoredRow
    {
        [VectorType(1, Large, Large)] public float[] Segmentation { get; set; } = [];
        [VectorType(2, Small, Small)] public float[] SegmentationScore { get; set; } = [];
        [VectorType(Small, Small)] public int[] SegmentationPredictedLabel { get; set; } = [];
        [VectorType(1, Large, Large)] public float[] Depth { get; set; } = [];
        [VectorType(1, Small, Small)] public float[] DepthScore { get; set; } = [];
    }

    /// <summary>1-D bilinear weights of a 2 → 4 upscale on pixel centres: outputs sit at −¼, ¼, ¾, 1¼ source pixels (clamped).</summary>
    private static float Up(float a, float b, int o) => o switch { 0 => a, 1 => 0.75f * a + 0.25f * b, 2 => 0.25f * a + 0.75f * b, _ => b };

    [TestMethod]
    public void MLNet_evaluator_scores_predictions_at_the_labels_size_only_when_asked()
    {
        // Depth 2×2 [[1, 2], [3, 4]]; its 4×4 label is that map upsampled by hand, one pixel 1 m off.
        float[,] small = { { 1, 2 }, { 3, 4 } };
        var depthLabel = new float[Large * Large];
        for (int y = 0; y < Large; y++)
            for (int x = 0; x < Large; x++)
                depthLabel[y * Large + x] = Up(Up(small[0, 0], small[0, 1], x), Up(small[1, 0], small[1, 1], x), y);
        depthLabel[5] += 1;
        // Segmentation: class 1 on the left column at 2×2 → after resizing, class 1 on the two left columns of 4×4.
        var row = new ScoredRow
        {
            SegmentationScore = [0, 1, 0, 1, /* class 1 */ 1, 0, 1, 0],
            SegmentationPredictedLabel = [1, 0, 1, 0],
            Segmentation = Enumerable.Range(0, Large * Large).Select(i => i % Large < 2 ? 1f : 0f).ToArray(),
            DepthScore = [1, 2, 3, 4],
            Depth = depthLabel,
        };
        var ml = new MLContext(seed: 1);
        var scored = ml.Data.LoadFromEnumerable([row]);
        TaskColumn[] columns = [new(TaskSpec.Segmentation(2)), new(TaskSpec.DepthTask())];

        var refused = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MultiTask().Evaluate(scored, columns));
        Assert.Contains("ResizePredictionsToLabels", refused.Message);

        var metrics = ml.MultiTask().Evaluate(scored, columns, metricOptions: new DenseMetricOptions { ResizePredictionsToLabels = true });
        Assert.AreEqual(100.0, ((SegmentationMetrics)metrics["Segmentation"]).MeanIoU, 1e-9, "argmax of the resized logits (percent)");
        Assert.AreEqual(Math.Sqrt(1.0 / 16), ((DepthMetrics)metrics["Depth"]).Rmse, 1e-6, "one pixel 1 m off among 16");
    }
}
