using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;

namespace Kem.Tests;

/// <summary>
/// Small learnable multi-task data: every image is a few axis-aligned rectangles on a background; a rectangle's
/// class sets its colour (plus noise), its depth (1 + class metres) and its normal, so all tasks are learnable from RGB.
/// </summary>
internal static class TinyData
{
    public const int Classes = 4;
    public static readonly TaskSpec Segmentation = TaskSpec.Segmentation(Classes);
    public static readonly TaskSpec Depth = TaskSpec.DepthTask();
    public static readonly TaskSpec Normals = TaskSpec.NormalsTask();
    public static readonly TaskSpec Saliency = TaskSpec.SaliencyTask();
    public static readonly TaskSpec[] SegDepth = { Segmentation, Depth };

    private static readonly float[][] Colours = { new[] { 40f, 40f, 40f }, new[] { 220f, 40f, 40f }, new[] { 40f, 200f, 60f }, new[] { 50f, 80f, 230f } };
    private static readonly float[][] NormalOf = { new[] { 0f, 1f, 0f }, new[] { 0f, 0f, 1f }, new[] { 1f, 0f, 0f }, new[] { -0.6f, 0f, 0.8f } };

    /// <summary>Images (N×3×H×W, 0..255) and per-class label maps for <paramref name="tasks"/>.</summary>
    public static DenseDataset Make(IReadOnlyList<TaskSpec> tasks, int count, int height, int width, int seed)
    {
        var rng = new SplitMix(seed);
        int n = height * width;
        var images = new float[count * 3 * n];
        var classMaps = new int[count][];
        for (int i = 0; i < count; i++)
        {
            var map = new int[n];
            for (int r = 0; r < 3; r++)
            {
                int c = 1 + rng.NextInt(Classes - 1);
                int y0 = rng.NextInt(height - 8), x0 = rng.NextInt(width - 8);
                int h = 6 + rng.NextInt(height / 2), w = 6 + rng.NextInt(width / 2);
                for (int y = y0; y < Math.Min(height, y0 + h); y++)
                    for (int x = x0; x < Math.Min(width, x0 + w); x++) map[y * width + x] = c;
            }
            classMaps[i] = map;
            for (int p = 0; p < n; p++)
                for (int ch = 0; ch < 3; ch++)
                    images[(i * 3 + ch) * n + p] = Math.Clamp(Colours[map[p]][ch] + (rng.NextInt(41) - 20), 0, 255);
        }
        var labels = tasks.Select(t => Labels(t, classMaps, n)).ToArray();
        return new DenseDataset(tasks, height, width, images, labels, "tiny data");
    }

    /// <summary>
    /// The shared end-to-end check: trains <paramref name="net"/> on <paramref name="train"/> (CPU, seeded) and asserts
    /// that on <paramref name="test"/> segmentation mIoU beats the trivial baseline by 20 points and depth RMSE falls
    /// below <paramref name="depthFactor"/> × the baseline's. Returns the model's and the baseline's metrics.
    /// </summary>
    public static (IReadOnlyList<TaskMetrics> Model, IReadOnlyList<TaskMetrics> Baseline) AssertFitBeatsBaseline(
        MultiTaskModel net, DenseDataset train, DenseDataset test, TrainingOptions recipe, double depthFactor = 0.75)
    {
        MultiTaskTrainingLoop.Fit(net, train, null, recipe);
        var model = Evaluation.Evaluate(net, test);
        var baseline = TrivialBaseline.Evaluate(train, test);
        var seg = ((SegmentationMetrics)model[0]).MeanIoU;
        var segBaseline = ((SegmentationMetrics)baseline[0]).MeanIoU;
        Assert.IsGreaterThan(segBaseline + 20, seg, $"mIoU {seg:F1} vs baseline {segBaseline:F1}");
        Assert.IsLessThan(((DepthMetrics)baseline[1]).Rmse * depthFactor, ((DepthMetrics)model[1]).Rmse);
        return (model, baseline);
    }

    private static float[] Labels(TaskSpec task, int[][] maps, int n)
    {
        int planes = task.LabelPlanes;
        var result = new float[maps.Length * planes * n];
        for (int i = 0; i < maps.Length; i++)
            for (int p = 0; p < n; p++)
            {
                int c = maps[i][p];
                for (int k = 0; k < planes; k++)
                    result[(i * planes + k) * n + p] = task.Kind switch
                    {
                        TaskKind.SemanticSegmentation or TaskKind.Parts => c,
                        TaskKind.Depth => 1 + c,
                        TaskKind.Normals => NormalOf[c][k],
                        _ => c > 0 ? 1 : 0,
                    };
            }
        return result;
    }
}
