using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// The trivial predictor every trained model must beat: per task a constant learned from the training labels —
/// the majority class (segmentation, parts), the mean valid depth, the mean unit normal, and the positive rate
/// (saliency, boundaries) as a constant probability.
/// </summary>
public static class TrivialBaseline
{
    /// <summary>
    /// Metrics of the constant predictor fitted on <paramref name="train"/>, measured on <paramref name="test"/> with
    /// <paramref name="metricOptions"/> (default: no depth cap; give the trained models' options to compare like with like).
    /// </summary>
    public static IReadOnlyList<TaskMetrics> Evaluate(DenseDataset train, DenseDataset test, DenseMetricOptions? metricOptions = null)
    {
        var result = new List<TaskMetrics>();
        for (int t = 0; t < train.Tasks.Count; t++)
        {
            var task = train.Tasks[t];
            var prediction = Constant(task, Fit(task, train, t), test.Height * test.Width);
            var accumulator = DenseMetrics.CreateAccumulator(task, metricOptions);
            for (int i = 0; i < test.Count; i++)
                accumulator.Add(prediction, test.Label(t, i), test.Height, test.Width);
            result.Add(accumulator.Compute());
        }
        return result;
    }

    /// <summary>
    /// <see cref="Evaluate"/> against <paramref name="count"/> test labels read by <paramref name="labelOf"/>(task, image) at
    /// their stored size (the original image size; <see cref="Evaluation.EvaluateAtLabelSize"/> scores the trained models
    /// there): the constant map is simply made at each label's size.
    /// </summary>
    public static IReadOnlyList<TaskMetrics> EvaluateAtLabelSize(DenseDataset train, int count, Func<int, int, Data.DenseLabelMap> labelOf,
        DenseMetricOptions? metricOptions = null)
    {
        ArgumentNullException.ThrowIfNull(labelOf);
        var result = new List<TaskMetrics>();
        for (int t = 0; t < train.Tasks.Count; t++)
        {
            var task = train.Tasks[t];
            var constant = Fit(task, train, t);
            var accumulator = DenseMetrics.CreateAccumulator(task, metricOptions);
            for (int i = 0; i < count; i++)
            {
                var label = labelOf(t, i);
                accumulator.Add(Constant(task, constant, label.Height * label.Width), label.Values, label.Height, label.Width);
            }
            result.Add(accumulator.Compute());
        }
        return result;
    }

    /// <summary>The constant prediction over <paramref name="pixels"/> pixels in the metric layout (one plane for classes).</summary>
    private static float[] Constant(TaskSpec task, float[] constant, int pixels)
    {
        var prediction = new float[task.IsClassification ? pixels : task.Channels * pixels];
        for (int c = 0; c < prediction.Length / pixels; c++)
            Array.Fill(prediction, constant[c], c * pixels, pixels);
        return prediction;
    }

    private static float[] Fit(TaskSpec task, DenseDataset train, int t)
    {
        int pixels = train.Height * train.Width;
        switch (task.Kind)
        {
            case TaskKind.SemanticSegmentation or TaskKind.Parts:
                var counts = new long[task.Classes];
                for (int i = 0; i < train.Count; i++)
                    foreach (var v in train.Label(t, i)) if (v != TaskSpec.IgnoreLabel) counts[(int)v]++;
                return new[] { (float)Array.IndexOf(counts, counts.Max()) };
            case TaskKind.Normals:
                var sum = new double[3];
                for (int i = 0; i < train.Count; i++)
                {
                    var label = train.Label(t, i);
                    for (int c = 0; c < 3; c++)
                        for (int p = 0; p < pixels; p++)
                            if (label[c * pixels + p] != TaskSpec.IgnoreLabel) sum[c] += label[c * pixels + p];
                }
                double norm = Math.Max(Math.Sqrt(sum.Sum(x => x * x)), 1e-12);
                return sum.Select(x => (float)(x / norm)).ToArray();
            default:
                double total = 0; long n = 0;
                for (int i = 0; i < train.Count; i++)
                    foreach (var v in train.Label(t, i))
                    {
                        bool valid = task.Kind == TaskKind.Depth ? v > 0 && v != TaskSpec.IgnoreLabel : v != TaskSpec.IgnoreLabel;
                        if (valid) { total += v; n++; }
                    }
                return new[] { n == 0 ? 0f : (float)(total / n) };
        }
    }
}
