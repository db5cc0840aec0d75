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
                    accumulators[t].Add(PredictionOf(predictions[t], b, pixels), data.Label(t, start + b), data.Height, data.Width);
        }
        return accumulators.Select(a => a.Compute()).ToArray();
    }

    /// <summary>Image <paramref name="b"/>'s prediction in the metric layout: class index (as float) for classification, else the scores.</summary>
    public static float[] PredictionOf(TaskPrediction prediction, int b, int pixels)
    {
        if (prediction.Labels is { } labels)
            return labels.AsSpan(b * pixels, pixels).ToArray().Select(v => (float)v).ToArray();
        int per = prediction.Task.Channels * pixels;
        return prediction.Scores.AsSpan(b * per, per).ToArray();
    }
}
