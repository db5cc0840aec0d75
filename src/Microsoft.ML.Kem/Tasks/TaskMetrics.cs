namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// The scores of one task on an evaluation split (MODEL-SPEC §9). Each kind has its own record with one
/// property per metric; <see cref="Primary"/> is the metric that enters Δm.
/// </summary>
/// <param name="TaskName">The task's <see cref="TaskSpec.Name"/>.</param>
/// <param name="Kind">The task's kind.</param>
public abstract record TaskMetrics(string TaskName, TaskKind Kind)
{
    /// <summary>The metric used by Δm (MODEL-SPEC §9): mIoU, sal maxIoU, depth RMSE, normals mean angle or odsF.</summary>
    public abstract double Primary { get; }

    /// <summary>True when a smaller <see cref="Primary"/> is better (depth RMSE, normals mean angle): l_i = 1 in Δm.</summary>
    public abstract bool LowerIsBetter { get; }

    /// <summary>
    /// The other scalar metrics of the record, in a fixed order per kind (e.g. saliency maxF, depth abs-rel and log-RMSE), for
    /// reports that list every metric without knowing the kind. Each is also a property of the kind's record.
    /// </summary>
    public abstract IReadOnlyList<SecondaryMetric> Secondary { get; }
}

/// <summary>One metric besides <see cref="TaskMetrics.Primary"/>.</summary>
/// <param name="Name">The property's name on the kind's record (e.g. <c>LogRmse</c>): stable, for CSV columns and code.</param>
/// <param name="Label">A short label for tables (e.g. "log-RMSE").</param>
/// <param name="Value">The value, in the record's unit (percent for rates, metres or degrees otherwise).</param>
/// <param name="LowerIsBetter">True when smaller is better, false when larger is better, null for a setting such as a threshold.</param>
public sealed record SecondaryMetric(string Name, string Label, double Value, bool? LowerIsBetter);

/// <summary>
/// Accumulates one task's metric over a whole evaluation split, one image at a time, on CPU arrays.
/// Not thread-safe; <see cref="Compute"/> may be called more than once and does not reset.
/// </summary>
public interface IDenseMetricAccumulator
{
    /// <summary>The task being scored.</summary>
    TaskSpec Task { get; }

    /// <summary>
    /// Adds one image, row-major. <paramref name="prediction"/>: the predicted class index per pixel (H×W, as float)
    /// for segmentation/parts, metres (H×W) for depth, probability (H×W) for saliency and boundaries, and 3×H×W
    /// planes for normals. <paramref name="label"/>: <see cref="TaskSpec.LabelPlanes"/>×H×W as in <see cref="TaskSpec"/>.
    /// A call that throws leaves the accumulator unchanged.
    /// </summary>
    void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width);

    /// <summary>The metrics over everything added so far.</summary>
    TaskMetrics Compute();
}

/// <summary>Creates the metric accumulator of a task.</summary>
public static class DenseMetrics
{
    /// <summary>
    /// The accumulator for <paramref name="task"/>'s kind; <paramref name="options"/> (default <see cref="DenseMetricOptions.Default"/>)
    /// carries the evaluation settings, e.g. the depth cap <see cref="DenseMetricOptions.DepthEvalMaxMetres"/>.
    /// </summary>
    public static IDenseMetricAccumulator CreateAccumulator(TaskSpec task, DenseMetricOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        options ??= DenseMetricOptions.Default;
        options.Validate();
        return task.Kind switch
        {
            TaskKind.SemanticSegmentation or TaskKind.Parts => new SegmentationMetricAccumulator(task),
            TaskKind.Depth => new DepthMetricAccumulator(task, options.DepthEvalMaxMetres),
            TaskKind.Saliency => new SaliencyMetricAccumulator(task),
            TaskKind.Normals => new NormalsMetricAccumulator(task),
            TaskKind.Boundaries => new BoundaryMetricAccumulator(task),
            _ => throw new ArgumentOutOfRangeException(nameof(task), task.Kind, $"Task '{task.Name}': unknown task kind."),
        };
    }
}

/// <summary>Argument checks shared by the accumulators; messages name the task.</summary>
static class MetricInput
{
    /// <summary>Checks the task kind an accumulator was built for.</summary>
    public static TaskSpec ForKinds(TaskSpec task, string accumulator, params TaskKind[] kinds)
    {
        ArgumentNullException.ThrowIfNull(task);
        task.Validate();
        if (!kinds.Contains(task.Kind))
            throw new ArgumentException(
                $"Task '{task.Name}' is {task.Kind}; {accumulator} scores {string.Join(" or ", kinds)}. Use DenseMetrics.CreateAccumulator.",
                nameof(task));
        return task;
    }

    /// <summary>Checks the image size, the span lengths, and that every prediction is finite.</summary>
    public static void Check(TaskSpec task, ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width, int predictionPlanes)
    {
        if (height <= 0 || width <= 0)
            throw new ArgumentOutOfRangeException(height <= 0 ? nameof(height) : nameof(width),
                $"Task '{task.Name}': image size must be positive, got {height}×{width}.");
        long pixels = (long)height * width;
        if (prediction.Length != predictionPlanes * pixels)
            throw new ArgumentException(
                $"Task '{task.Name}' ({task.Kind}): prediction has {prediction.Length} values, expected {predictionPlanes}×{height}×{width} = {predictionPlanes * pixels}.",
                nameof(prediction));
        if (label.Length != task.LabelPlanes * pixels)
            throw new ArgumentException(
                $"Task '{task.Name}' ({task.Kind}): label has {label.Length} values, expected {task.LabelPlanes}×{height}×{width} = {task.LabelPlanes * pixels}.",
                nameof(label));
        for (int i = 0; i < prediction.Length; i++)
            if (!float.IsFinite(prediction[i]))
                throw new ArgumentException(
                    $"Task '{task.Name}' ({task.Kind}): prediction {prediction[i]} at index {i} is not finite (NaN or infinity; did training diverge?).",
                    nameof(prediction));
    }

    /// <summary>For saliency/boundaries: labels 0..1 or 255, probabilities 0..1.</summary>
    public static void CheckBinary(TaskSpec task, ReadOnlySpan<float> prediction, ReadOnlySpan<float> label)
    {
        for (int i = 0; i < label.Length; i++)
        {
            var v = label[i];
            if (v != TaskSpec.IgnoreLabel && !(v >= 0 && v <= 1))
                throw new ArgumentOutOfRangeException(nameof(label), v,
                    $"Task '{task.Name}' ({task.Kind}): label {v} at pixel {i} is out of range; labels must be 0..1 or 255.");
        }
        for (int i = 0; i < prediction.Length; i++)
            if (!(prediction[i] >= 0 && prediction[i] <= 1))
                throw new ArgumentOutOfRangeException(nameof(prediction), prediction[i],
                    $"Task '{task.Name}' ({task.Kind}): prediction {prediction[i]} at pixel {i} is not a probability; pass sigmoid scores (TaskOutputs.Postprocess), not logits.");
    }

    /// <summary>The error for <see cref="IDenseMetricAccumulator.Compute"/> before any valid pixel was added.</summary>
    public static InvalidOperationException NothingAdded(TaskSpec task, string what) =>
        new($"Task '{task.Name}' ({task.Kind}): no {what} were added; call Add with at least one labelled image before Compute.");

    /// <summary>F = 2PR/(P+R), 0 when P + R = 0.</summary>
    public static double F1(double precision, double recall) =>
        precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
}
