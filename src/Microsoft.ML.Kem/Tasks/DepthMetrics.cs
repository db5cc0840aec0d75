namespace Microsoft.ML.Kem.Tasks;

/// <summary>Depth scores over a split (MODEL-SPEC §9). Sums run over all valid pixels of the split (gt &gt; 0, ≠ 255), not per image; d̂ is clamped to ≥ 1e-9.</summary>
/// <param name="TaskName">The task's name.</param>
/// <param name="Rmse">sqrt( Σ (d̂ − d)² / #valid ), metres; the Δm metric (lower is better).</param>
/// <param name="AbsRel">Σ |d̂ − d| / d / #valid.</param>
/// <param name="LogRmse">sqrt( Σ (ln d̂ − ln d)² / #valid ).</param>
/// <param name="Delta1">#{ max(d̂/d, d/d̂) &lt; 1.25 } / #valid × 100.</param>
public sealed record DepthMetrics(string TaskName, double Rmse, double AbsRel, double LogRmse, double Delta1)
    : TaskMetrics(TaskName, TaskKind.Depth)
{
    /// <inheritdoc/>
    public override double Primary => Rmse;
    /// <inheritdoc/>
    public override bool LowerIsBetter => true;
    /// <inheritdoc/>
    public override IReadOnlyList<SecondaryMetric> Secondary =>
        [new(nameof(AbsRel), "abs-rel", AbsRel, true), new(nameof(LogRmse), "log-RMSE", LogRmse, true), new(nameof(Delta1), "δ<1.25 %", Delta1, false)];
}

/// <summary>Global sums of squared, relative and log errors over the split (MODEL-SPEC §9, depth).</summary>
public sealed class DepthMetricAccumulator : IDenseMetricAccumulator
{
    /// <summary>Lower clamp of predicted depth.</summary>
    public const double MinPrediction = 1e-9;

    readonly float? _maxMetres;
    double _squared, _absRel, _logSquared;
    long _delta1, _valid;

    /// <summary>
    /// Creates the accumulator. <paramref name="depthEvalMaxMetres"/> (<see cref="DenseMetricOptions.DepthEvalMaxMetres"/>, off by default)
    /// also drops pixels with gt ≥ that value; MTFormer uses 6.5535 m.
    /// </summary>
    public DepthMetricAccumulator(TaskSpec task, float? depthEvalMaxMetres = null)
    {
        Task = MetricInput.ForKinds(task, nameof(DepthMetricAccumulator), TaskKind.Depth);
        if (depthEvalMaxMetres is float max && !(max > 0))
            throw new ArgumentOutOfRangeException(nameof(depthEvalMaxMetres), max, "DepthEvalMaxMetres must be positive (or null for no cap).");
        _maxMetres = depthEvalMaxMetres;
    }

    /// <inheritdoc/>
    public TaskSpec Task { get; }

    /// <inheritdoc/>
    public void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width)
    {
        MetricInput.Check(Task, prediction, label, height, width, predictionPlanes: 1);
        for (int i = 0; i < label.Length; i++)
        {
            double d = label[i];
            if (!IsValid(label[i]))
                continue;
            double p = Math.Max(prediction[i], MinPrediction);
            _valid++;
            _squared += (p - d) * (p - d);
            _absRel += Math.Abs(p - d) / d;
            double log = Math.Log(p) - Math.Log(d);
            _logSquared += log * log;
            if (Math.Max(p / d, d / p) < 1.25)
                _delta1++;
        }
    }

    /// <inheritdoc/>
    public TaskMetrics Compute()
    {
        if (_valid == 0)
            throw MetricInput.NothingAdded(Task, "valid depth pixels (gt > 0 and ≠ 255)");
        return new DepthMetrics(Task.Name,
            Rmse: Math.Sqrt(_squared / _valid),
            AbsRel: _absRel / _valid,
            LogRmse: Math.Sqrt(_logSquared / _valid),
            Delta1: 100.0 * _delta1 / _valid);
    }

    bool IsValid(float gt) =>
        gt > 0 && gt != TaskSpec.IgnoreLabel && float.IsFinite(gt) && !(gt >= _maxMetres);
}
