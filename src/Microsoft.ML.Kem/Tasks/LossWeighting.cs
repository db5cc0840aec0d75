namespace Microsoft.ML.Kem.Tasks;

/// <summary>How <see cref="MultiTaskLoss"/> combines the per-task losses L_t (MODEL-SPEC §8, option <c>LossWeighting</c>).</summary>
public enum LossWeighting
{
    /// <summary>Default (MTFormer's code): L = Σ_t [ w_t · 10 · exp(−s_t) · L_t + s_t ], s_t learned, initialised 0.</summary>
    MtformerUncertainty,
    /// <summary>L = Σ_t w_t · L_t with the fixed weights of the task specs.</summary>
    Fixed,
    /// <summary>Kendall et al. 2018: L = Σ_t [ exp(−s_t) · w_t · L_t + s_t ] / 2, s_t = log σ_t² learned, initialised 0.</summary>
    Uncertainty,
    /// <summary>
    /// Dynamic Weight Average (Liu et al. 2019): L = Σ_t w_t · λ_t · L_t with per-epoch weights λ_t computed from the ratio of
    /// each task's last two epoch-mean training losses (<see cref="DynamicWeightAverage"/>); nothing is learned.
    /// </summary>
    Dwa,
}
