namespace Microsoft.ML.Kem.Tasks;

/// <summary>Semantic segmentation or parts scores over a split (MODEL-SPEC §9), in percent.</summary>
/// <param name="TaskName">The task's name.</param>
/// <param name="Kind"><see cref="TaskKind.SemanticSegmentation"/> or <see cref="TaskKind.Parts"/>.</param>
/// <param name="MeanIoU">mIoU = (1/C) Σ_c IoU_c over all C classes; the Δm metric.</param>
/// <param name="PixelAccuracy">Σ_c TP_c / #valid pixels × 100.</param>
/// <param name="PerClassIoU">IoU_c = TP_c / max(TP_c + FP_c + FN_c, 1e-8) × 100, counts over all valid pixels (label ≠ 255) of the split; 0 for a class absent from labels and predictions.</param>
public sealed record SegmentationMetrics(string TaskName, TaskKind Kind, double MeanIoU, double PixelAccuracy, IReadOnlyList<double> PerClassIoU)
    : TaskMetrics(TaskName, Kind)
{
    /// <inheritdoc/>
    public override double Primary => MeanIoU;
    /// <inheritdoc/>
    public override bool LowerIsBetter => false;
    /// <inheritdoc/>
    public override IReadOnlyList<SecondaryMetric> Secondary => [new(nameof(PixelAccuracy), "pixel acc. %", PixelAccuracy, false)];
}

/// <summary>Global per-class TP/FP/FN counts over the split (MODEL-SPEC §9, mIoU).</summary>
public sealed class SegmentationMetricAccumulator : IDenseMetricAccumulator
{
    readonly long[] _tp, _fp, _fn;
    long _valid;

    /// <summary>Creates the accumulator for a segmentation or parts task.</summary>
    public SegmentationMetricAccumulator(TaskSpec task)
    {
        Task = MetricInput.ForKinds(task, nameof(SegmentationMetricAccumulator), TaskKind.SemanticSegmentation, TaskKind.Parts);
        _tp = new long[task.Classes];
        _fp = new long[task.Classes];
        _fn = new long[task.Classes];
    }

    /// <inheritdoc/>
    public TaskSpec Task { get; }

    /// <inheritdoc/>
    public void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width)
    {
        MetricInput.Check(Task, prediction, label, height, width, predictionPlanes: 1);
        int classes = Task.Classes;
        for (int i = 0; i < label.Length; i++)
        {
            var l = label[i];
            if (l != TaskSpec.IgnoreLabel && !IsClassIndex(l, classes))
                throw new ArgumentOutOfRangeException(nameof(label), l,
                    $"Task '{Task.Name}' ({Task.Kind}): label {l} at pixel {i} is out of range; labels must be 0..{classes - 1} or 255.");
            if (!IsClassIndex(prediction[i], classes))
                throw new ArgumentOutOfRangeException(nameof(prediction), prediction[i],
                    $"Task '{Task.Name}' ({Task.Kind}): prediction {prediction[i]} at pixel {i} is not a class index 0..{classes - 1} (pass the argmax, TaskOutputs.PredictedLabel).");
        }
        for (int i = 0; i < label.Length; i++)
        {
            if (label[i] == TaskSpec.IgnoreLabel)
                continue;
            int l = (int)label[i], p = (int)prediction[i];
            _valid++;
            if (p == l)
                _tp[l]++;
            else
            {
                _fp[p]++;
                _fn[l]++;
            }
        }
    }

    /// <inheritdoc/>
    public TaskMetrics Compute()
    {
        if (_valid == 0)
            throw MetricInput.NothingAdded(Task, "valid pixels (label ≠ 255)");
        var iou = new double[Task.Classes];
        for (int c = 0; c < iou.Length; c++)
            iou[c] = 100.0 * _tp[c] / Math.Max(_tp[c] + _fp[c] + _fn[c], 1e-8);   // MODEL-SPEC §9, IoU_c
        return new SegmentationMetrics(Task.Name, Task.Kind, iou.Average(), 100.0 * _tp.Sum() / _valid, iou);
    }

    static bool IsClassIndex(float v, int classes) => v >= 0 && v < classes && v == MathF.Floor(v);
}
