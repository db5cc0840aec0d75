namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// Surface-normal scores over a split (MODEL-SPEC §9). Angle per valid pixel (label vector length &gt; 0, no
/// component 255) = arccos(clip(⟨n̂, n⟩, −1, 1)) in degrees, n̂ and n the L2-normalised prediction and label
/// (a zero prediction counts as 90°); statistics over all valid pixels of the split.
/// </summary>
/// <param name="TaskName">The task's name.</param>
/// <param name="MeanAngle">Mean angle, degrees; the Δm metric (lower is better).</param>
/// <param name="MedianAngle">Median angle, degrees, from a histogram of 0.001° bins (exact to ±0.0005°).</param>
/// <param name="RmseAngle">sqrt(mean angle²), degrees.</param>
/// <param name="Within11_25">% of pixels with angle &lt; 11.25°.</param>
/// <param name="Within22_5">% of pixels with angle &lt; 22.5°.</param>
/// <param name="Within30">% of pixels with angle &lt; 30°.</param>
public sealed record NormalsMetrics(string TaskName, double MeanAngle, double MedianAngle, double RmseAngle,
    double Within11_25, double Within22_5, double Within30)
    : TaskMetrics(TaskName, TaskKind.Normals)
{
    /// <inheritdoc/>
    public override double Primary => MeanAngle;
    /// <inheritdoc/>
    public override bool LowerIsBetter => true;
    /// <inheritdoc/>
    public override IReadOnlyList<SecondaryMetric> Secondary =>
    [
        new(nameof(MedianAngle), "median °", MedianAngle, true), new(nameof(RmseAngle), "RMSE °", RmseAngle, true),
        new(nameof(Within11_25), "<11.25° %", Within11_25, false), new(nameof(Within22_5), "<22.5° %", Within22_5, false),
        new(nameof(Within30), "<30° %", Within30, false),
    ];
}

/// <summary>Sums and a fine histogram of angular errors over the split (MODEL-SPEC §9, normals).</summary>
public sealed class NormalsMetricAccumulator : IDenseMetricAccumulator
{
    const int BinsPerDegree = 1000;

    readonly long[] _histogram = new long[180 * BinsPerDegree + 1];
    double _sum, _sumSquares;
    long _valid, _within11, _within22, _within30;

    /// <summary>Creates the accumulator for a normals task.</summary>
    public NormalsMetricAccumulator(TaskSpec task) =>
        Task = MetricInput.ForKinds(task, nameof(NormalsMetricAccumulator), TaskKind.Normals);

    /// <inheritdoc/>
    public TaskSpec Task { get; }

    /// <inheritdoc/>
    public void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width)
    {
        MetricInput.Check(Task, prediction, label, height, width, predictionPlanes: 3);
        int plane = height * width;
        for (int i = 0; i < plane; i++)
        {
            double lx = label[i], ly = label[plane + i], lz = label[2 * plane + i];
            double labelLength = Math.Sqrt(lx * lx + ly * ly + lz * lz);
            if (!(labelLength > 0) || double.IsInfinity(labelLength)
                || lx == TaskSpec.IgnoreLabel || ly == TaskSpec.IgnoreLabel || lz == TaskSpec.IgnoreLabel)
                continue;
            double px = prediction[i], py = prediction[plane + i], pz = prediction[2 * plane + i];
            double predictionLength = Math.Sqrt(px * px + py * py + pz * pz);
            double cos = predictionLength > 0 ? (px * lx + py * ly + pz * lz) / (predictionLength * labelLength) : 0;
            double angle = Math.Acos(Math.Clamp(cos, -1, 1)) * 180 / Math.PI;
            _valid++;
            _sum += angle;
            _sumSquares += angle * angle;
            if (angle < 11.25) _within11++;
            if (angle < 22.5) _within22++;
            if (angle < 30) _within30++;
            _histogram[Math.Min((int)(angle * BinsPerDegree), _histogram.Length - 1)]++;
        }
    }

    /// <inheritdoc/>
    public TaskMetrics Compute()
    {
        if (_valid == 0)
            throw MetricInput.NothingAdded(Task, "valid normals (label vector length > 0)");
        double median = (BinCentre((_valid - 1) / 2) + BinCentre(_valid / 2)) / 2;
        return new NormalsMetrics(Task.Name,
            MeanAngle: _sum / _valid,
            MedianAngle: median,
            RmseAngle: Math.Sqrt(_sumSquares / _valid),
            Within11_25: 100.0 * _within11 / _valid,
            Within22_5: 100.0 * _within22 / _valid,
            Within30: 100.0 * _within30 / _valid);
    }

    /// <summary>Centre of the bin holding the angle of 0-based rank <paramref name="rank"/>.</summary>
    double BinCentre(long rank)
    {
        long seen = 0;
        for (int b = 0; b < _histogram.Length; b++)
        {
            seen += _histogram[b];
            if (seen > rank)
                return (b + 0.5) / BinsPerDegree;
        }
        return 180;
    }
}
