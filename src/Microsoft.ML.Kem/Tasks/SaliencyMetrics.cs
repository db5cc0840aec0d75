namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// Saliency scores over a split (MODEL-SPEC §9), in percent. Per image and threshold τ ∈ linspace(0.2, 0.9, 15):
/// P = {p &gt; τ}, G = {label &gt; 0.5}, over pixels with label ≠ 255.
/// </summary>
/// <param name="TaskName">The task's name.</param>
/// <param name="MaxIoU">The paper's "sal mIoU": max_τ of the mean over images of |P∩G| / |P∪G| (1 when both are empty); the Δm metric.</param>
/// <param name="MaxF">max_τ 2·P̄·R̄ / (P̄ + R̄), with P̄, R̄ the per-image means of |P∩G|/|P| and |P∩G|/|G| (each 0 when its denominator is 0).</param>
/// <param name="MaxFBeta03">InvPT's maxF (option <c>SaliencyMaxFBeta03</c>): max over τ ∈ {0.05, …, 0.95} of (1+β²)·P·R / (β²·P + R), β² = 0.3, P and R from counts summed over the split with P = {p ≥ τ}.</param>
public sealed record SaliencyMetrics(string TaskName, double MaxIoU, double MaxF, double MaxFBeta03)
    : TaskMetrics(TaskName, TaskKind.Saliency)
{
    /// <inheritdoc/>
    public override double Primary => MaxIoU;
    /// <inheritdoc/>
    public override bool LowerIsBetter => false;
    /// <inheritdoc/>
    public override IReadOnlyList<SecondaryMetric> Secondary =>
        [new(nameof(MaxF), "maxF %", MaxF, false), new(nameof(MaxFBeta03), "maxF β²=0.3 %", MaxFBeta03, false)];
}

/// <summary>Per-image Jaccard, precision and recall at 15 thresholds, averaged over images (MODEL-SPEC §9, saliency).</summary>
public sealed class SaliencyMetricAccumulator : IDenseMetricAccumulator
{
    /// <summary>The thresholds of sal mIoU and maxF: linspace(0.2, 0.9, 15).</summary>
    public static IReadOnlyList<double> Thresholds { get; } = [.. Enumerable.Range(0, 15).Select(k => 0.2 + k * 0.7 / 14)];

    /// <summary>The thresholds of <see cref="SaliencyMetrics.MaxFBeta03"/>: 0.05, 0.10, …, 0.95.</summary>
    public static IReadOnlyList<double> BetaThresholds { get; } = [.. Enumerable.Range(1, 19).Select(k => k * 0.05)];

    const double BetaSquared = 0.3;

    readonly double[] _jaccard = new double[15], _precision = new double[15], _recall = new double[15];
    readonly long[] _betaTruePositives = new long[19], _betaPredicted = new long[19];
    long _betaActual;
    int _images;

    /// <summary>Creates the accumulator for a saliency task.</summary>
    public SaliencyMetricAccumulator(TaskSpec task) =>
        Task = MetricInput.ForKinds(task, nameof(SaliencyMetricAccumulator), TaskKind.Saliency);

    /// <inheritdoc/>
    public TaskSpec Task { get; }

    /// <inheritdoc/>
    public void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width)
    {
        MetricInput.Check(Task, prediction, label, height, width, predictionPlanes: 1);
        MetricInput.CheckBinary(Task, prediction, label);
        for (int k = 0; k < Thresholds.Count; k++)
        {
            double tau = Thresholds[k];
            long both = 0, predicted = 0, actual = 0;
            for (int i = 0; i < label.Length; i++)
            {
                if (label[i] == TaskSpec.IgnoreLabel)
                    continue;
                bool p = prediction[i] > tau, g = label[i] > 0.5f;
                if (p) predicted++;
                if (g) actual++;
                if (p && g) both++;
            }
            long union = predicted + actual - both;
            _jaccard[k] += union == 0 ? 1.0 : (double)both / union;
            _precision[k] += predicted == 0 ? 0 : (double)both / predicted;
            _recall[k] += actual == 0 ? 0 : (double)both / actual;
        }
        for (int k = 0; k < BetaThresholds.Count; k++)
        {
            double tau = BetaThresholds[k];
            for (int i = 0; i < label.Length; i++)
            {
                if (label[i] == TaskSpec.IgnoreLabel || !(prediction[i] >= tau))
                    continue;
                _betaPredicted[k]++;
                if (label[i] > 0.5f)
                    _betaTruePositives[k]++;
            }
        }
        for (int i = 0; i < label.Length; i++)
            if (label[i] != TaskSpec.IgnoreLabel && label[i] > 0.5f)
                _betaActual++;
        _images++;
    }

    /// <inheritdoc/>
    public TaskMetrics Compute()
    {
        if (_images == 0)
            throw MetricInput.NothingAdded(Task, "images");
        double maxIoU = 0, maxF = 0, maxFBeta = 0;
        for (int k = 0; k < Thresholds.Count; k++)
        {
            maxIoU = Math.Max(maxIoU, _jaccard[k] / _images);
            maxF = Math.Max(maxF, MetricInput.F1(_precision[k] / _images, _recall[k] / _images));
        }
        for (int k = 0; k < BetaThresholds.Count; k++)
        {
            double p = _betaPredicted[k] == 0 ? 0 : (double)_betaTruePositives[k] / _betaPredicted[k];
            double r = _betaActual == 0 ? 0 : (double)_betaTruePositives[k] / _betaActual;
            double denominator = BetaSquared * p + r;
            maxFBeta = Math.Max(maxFBeta, denominator > 0 ? (1 + BetaSquared) * p * r / denominator : 0);
        }
        return new SaliencyMetrics(Task.Name, 100 * maxIoU, 100 * maxF, 100 * maxFBeta);
    }
}
