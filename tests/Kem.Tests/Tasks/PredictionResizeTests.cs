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

    [TestMethod]
    public void Engine_evaluation_at_the_labels_size_matches_interpolating_the_raw_outputs()
    {
        const int N = 3, Size = 32, Original = 48;
        var tasks = new[] { TinyData.Segmentation, TinyData.Depth, TinyData.Normals };
        var data = TinyData.Make(tasks, N, Size, Size, seed: 4);
        var original = TinyData.Make(tasks, N, Original, Original, seed: 4);       // the same scenes drawn at 48×48
        torch.manual_seed(3);
        using var network = new Microsoft.ML.Kem.Modeling.MultiTaskNetwork(Microsoft.ML.Kem.Modeling.MultiTaskNetworkOptions.Tiny(tasks) with
        {
            ImageHeight = Size, ImageWidth = Size, Width = 32, Heads = 2,
        });
        Microsoft.ML.Kem.Data.DenseLabelMap LabelOf(int t, int image) =>
            new(original.Label(t, image).ToArray(), tasks[t].LabelPlanes, Original, Original);

        var resized = Microsoft.ML.Kem.Training.Evaluation.EvaluateAtLabelSize(network, data, LabelOf, batchSize: 2);

        // Reference: the raw outputs interpolated by libtorch, post-processed, then the class argmax.
        var reference = tasks.Select(t => DenseMetrics.CreateAccumulator(t)).ToArray();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            network.eval();
            var images = tensor(Enumerable.Range(0, N).SelectMany(i => data.Image(i).ToArray()).ToArray()).view(N, 3, Size, Size);
            var outputs = network.forward(images);
            for (int t = 0; t < tasks.Length; t++)
            {
                var up = F.interpolate(outputs[t], [Original, Original], mode: InterpolationMode.Bilinear, align_corners: false);
                var scores = TaskOutputs.Postprocess(tasks[t], up);
                var maps = tasks[t].IsClassification ? scores.argmax(1, keepdim: true).to(ScalarType.Float32) : scores;
                for (int i = 0; i < N; i++)
                    reference[t].Add(maps[i].contiguous().data<float>().ToArray(), original.Label(t, i), Original, Original);
            }
        }
        // Segmentation and depth resize the same maps (logits, metres); normals resize the unit vectors, not the raw outputs.
        for (int t = 0; t < tasks.Length; t++)
            Assert.AreEqual(reference[t].Compute().Primary, resized[t].Primary, tasks[t].Kind == TaskKind.Normals ? 0.5 : 1e-6 * Math.Abs(resized[t].Primary),
                $"{tasks[t].Name}: {reference[t].Compute().Primary} vs {resized[t].Primary}");

        // labels at the network's size: the same numbers (normals: re-normalised unit vectors, to float rounding)
        var same = Microsoft.ML.Kem.Training.Evaluation.EvaluateAtLabelSize(network, data,
            (t, image) => new(data.Label(t, image).ToArray(), tasks[t].LabelPlanes, Size, Size), batchSize: 2);
        var plain = Microsoft.ML.Kem.Training.Evaluation.Evaluate(network, data, batchSize: 2);
        for (int t = 0; t < tasks.Length; t++)
            Assert.AreEqual(plain[t].Primary, same[t].Primary, 1e-6, $"{tasks[t].Name}: labels at the network's size change nothing ({plain[t].Primary} vs {same[t].Primary})");

        // The constant predictor at the labels' size: the same as scoring it on the 48×48 data directly.
        var trivialResized = Microsoft.ML.Kem.Training.TrivialBaseline.EvaluateAtLabelSize(data, N, LabelOf);
        var trivialDirect = Microsoft.ML.Kem.Training.TrivialBaseline.Evaluate(data, original);
        for (int t = 0; t < tasks.Length; t++)
            Assert.AreEqual(trivialDirect[t].Primary, trivialResized[t].Primary, 1e-12, $"trivial {tasks[t].Name}");

        var wrongPlanes = Assert.ThrowsExactly<ArgumentException>(() => Microsoft.ML.Kem.Training.Evaluation.EvaluateAtLabelSize(network, data,
            (t, image) => new(new float[Size * Size], 1, Size, Size)));
        Assert.Contains("Normals", wrongPlanes.Message);
    }
}
