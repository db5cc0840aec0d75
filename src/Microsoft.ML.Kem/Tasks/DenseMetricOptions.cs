namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// Options of the evaluation (MODEL-SPEC §9), given where a split is scored: <see cref="DenseMetrics.CreateAccumulator"/>,
/// <c>Training.Evaluation.Evaluate</c>, <c>Training.TrivialBaseline.Evaluate</c> and the ML.NET <c>MultiTask().Evaluate</c>.
/// They change how predictions are scored, never the model, so they are not part of a <see cref="TaskSpec"/>.
/// </summary>
public sealed record DenseMetricOptions
{
    /// <summary>The defaults: no depth cap.</summary>
    public static DenseMetricOptions Default { get; } = new();

    /// <summary>MTFormer's NYUD evaluation range: its depth metric drops ground truth ≥ 6.5535 m (MODEL-SPEC §9, §15.16).</summary>
    public const float MtformerDepthEvalMaxMetres = 6.5535f;

    /// <summary>
    /// Depth metrics also drop pixels whose ground truth is ≥ this many metres (MODEL-SPEC §9 <c>DepthEvalMaxMetres</c>). Null (default):
    /// no cap, every pixel with gt &gt; 0 and ≠ 255 counts. Set <see cref="MtformerDepthEvalMaxMetres"/> for numbers comparable with
    /// the paper's NYUD table. Other task kinds ignore it.
    /// </summary>
    public float? DepthEvalMaxMetres { get; init; }

    /// <summary>
    /// MODEL-SPEC §9 option: score predictions resized to the size of their labels, so that labels kept at the original image
    /// size (e.g. NYUD's 480×640 for a network at 448×576) are scored there instead of on labels shrunk to the network's size
    /// (<see cref="PredictionResize"/>: bilinear on pixel centres, classes as the argmax of the resized class scores, normals
    /// re-normalised). Off (default): prediction and label sizes must match. Used by the ML.NET <c>MultiTask().Evaluate</c>,
    /// which reads the score columns for it.
    /// </summary>
    public bool ResizePredictionsToLabels { get; init; }

    /// <summary>Checks the options; messages say what to change.</summary>
    public void Validate()
    {
        if (DepthEvalMaxMetres is float max && !(max > 0 && float.IsFinite(max)))
            throw new ArgumentOutOfRangeException(nameof(DepthEvalMaxMetres), max,
                $"DepthEvalMaxMetres must be a positive number of metres ({MtformerDepthEvalMaxMetres} for MTFormer's NYUD range) or null for no cap.");
    }
}
