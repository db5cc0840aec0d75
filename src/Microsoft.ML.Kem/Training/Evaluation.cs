using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Training;

/// <summary>Metrics of a network on an in-memory split (the engine-level twin of the ML.NET evaluator).</summary>
public static class Evaluation
{
    /// <summary>
    /// Runs <paramref name="network"/> over <paramref name="data"/> in batches and accumulates every task's metrics with
    /// <paramref name="metricOptions"/> (default: no depth cap).
    /// </summary>
    public static IReadOnlyList<TaskMetrics> Evaluate(MultiTaskModel network, DenseDataset data, int batchSize = 8, DenseMetricOptions? metricOptions = null)
    {
        int pixels = data.Height * data.Width;
        return Run(network, data, batchSize, metricOptions, (accumulator, t, image, prediction, b) =>
            accumulator.Add(PredictionOf(prediction, b, pixels), data.Label(t, image), data.Height, data.Width));
    }

    /// <summary>
    /// MODEL-SPEC §9's option "resize predictions back to the original image size", at the engine level: as
    /// <see cref="Evaluate"/>, but every task is scored against <paramref name="labelOf"/>(task, image) — a label at its
    /// stored size, e.g. <see cref="IMultiTaskLayout.ReadLabel"/> at the original image size, which may differ per image —
    /// with the prediction resized to it (<see cref="PredictionResize"/>). <paramref name="data"/>'s own labels are not read.
    /// </summary>
    public static IReadOnlyList<TaskMetrics> EvaluateAtLabelSize(MultiTaskModel network, DenseDataset data, Func<int, int, DenseLabelMap> labelOf,
        int batchSize = 8, DenseMetricOptions? metricOptions = null)
    {
        ArgumentNullException.ThrowIfNull(labelOf);
        int pixels = data.Height * data.Width;
        return Run(network, data, batchSize, metricOptions, (accumulator, t, image, prediction, b) =>
        {
            var task = prediction.Task;
            var label = labelOf(t, image) ?? throw new ArgumentException($"No label for task '{task.Name}', image {image}.", nameof(labelOf));
            if (label.Planes != task.LabelPlanes || label.Values.Length != (long)label.Planes * label.Height * label.Width)
                throw new ArgumentException($"The label of task '{task.Name}', image {image}, is {label.Planes}×{label.Height}×{label.Width} " +
                    $"with {label.Values.Length} values; the task has {task.LabelPlanes} plane(s).", nameof(labelOf));
            int per = task.Channels * pixels;
            var resized = PredictionResize.ToSize(task, prediction.Scores.AsSpan(b * per, per), data.Height, data.Width, label.Height, label.Width);
            accumulator.Add(resized, label.Values, label.Height, label.Width);
        });
    }

    /// <summary>Image <paramref name="b"/>'s prediction in the metric layout: class index (as float) for classification, else the scores.</summary>
    public static float[] PredictionOf(TaskPrediction prediction, int b, int pixels)
    {
        if (prediction.Labels is { } labels)
            return labels.AsSpan(b * pixels, pixels).ToArray().Select(v => (float)v).ToArray();
        int per = prediction.Task.Channels * pixels;
        return prediction.Scores.AsSpan(b * per, per).ToArray();
    }

    /// <summary>Predicts <paramref name="data"/> in batches; <paramref name="add"/>(accumulator, task, image, predictions of the batch, index in the batch).</summary>
    private static IReadOnlyList<TaskMetrics> Run(MultiTaskModel network, DenseDataset data, int batchSize, DenseMetricOptions? metricOptions,
        Action<IDenseMetricAccumulator, int, int, TaskPrediction, int> add)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var tasks = network.Options.Tasks;
        var accumulators = tasks.Select(t => DenseMetrics.CreateAccumulator(t, metricOptions)).ToArray();
        int pixels = data.Height * data.Width;
        for (int start = 0; start < data.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, data.Count - start);
            var images = new float[count * 3 * pixels];
            for (int b = 0; b < count; b++) data.Image(start + b).CopyTo(images.AsSpan(b * 3 * pixels));
            var predictions = Inference.Predict(network, images, count);
            for (int t = 0; t < tasks.Count; t++)
                for (int b = 0; b < count; b++)
                    add(accumulators[t], t, start + b, predictions[t], b);
        }
        return accumulators.Select(a => a.Compute()).ToArray();
    }
}
