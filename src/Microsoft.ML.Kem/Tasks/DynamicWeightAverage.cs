namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// Dynamic Weight Average (Liu et al. 2019; MODEL-SPEC §8, <see cref="LossWeighting.Dwa"/>): the task weights of epoch e,
/// λ_t(e) = T · exp(r_t(e−1)/τ) / Σ_u exp(r_u(e−1)/τ) with r_t(e−1) = L̄_t(e−1) / L̄_t(e−2), the ratio of the task's
/// epoch-mean (unweighted) training losses of the two previous epochs; λ_t = 1 for the first two epochs. Σ_t λ_t = T.
/// The λ are not learned: the training loop computes them once per epoch, from the epoch sums it already reads, and
/// hands them to <see cref="MultiTaskLoss.SetDwaWeights"/>.
/// </summary>
public static class DynamicWeightAverage
{
    /// <summary>The temperature τ of the spec (and of Liu et al.).</summary>
    public const double DefaultTemperature = 2.0;

    /// <summary>
    /// λ_t for the epoch after <paramref name="epochMeanLosses"/> (one entry per finished epoch, each holding L̄_t in the
    /// order of <paramref name="taskNames"/>): all ones while fewer than two epochs are finished, otherwise the formula on
    /// the last two entries. Throws, naming the task, when one of those means is not finite or the older one is not positive.
    /// </summary>
    public static double[] Weights(IReadOnlyList<string> taskNames, IReadOnlyList<IReadOnlyList<double>> epochMeanLosses, double temperature = DefaultTemperature)
    {
        ArgumentNullException.ThrowIfNull(taskNames);
        ArgumentNullException.ThrowIfNull(epochMeanLosses);
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The DWA temperature τ must be positive and finite (the spec's value is 2).");
        int count = taskNames.Count, finished = epochMeanLosses.Count;
        if (finished < 2) return Enumerable.Repeat(1.0, count).ToArray(); // MODEL-SPEC §8: λ_t = 1 for the first two epochs
        var (previous, beforePrevious) = (epochMeanLosses[finished - 1], epochMeanLosses[finished - 2]);
        if (previous.Count != count || beforePrevious.Count != count)
            throw new ArgumentException($"DWA expects {count} epoch-mean losses per epoch ({string.Join(", ", taskNames)}).", nameof(epochMeanLosses));

        // r_t(e−1) / τ, then a softmax scaled by T (shifted by the maximum so that large ratios do not overflow).
        var scaled = new double[count];
        for (int t = 0; t < count; t++)
        {
            double last = previous[t], before = beforePrevious[t];
            if (!double.IsFinite(last) || !double.IsFinite(before) || !(before > 0))
                throw new InvalidOperationException(
                    $"LossWeighting.Dwa needs the ratio of task '{taskNames[t]}''s epoch-mean training losses, L̄(epoch {finished}) / L̄(epoch {finished - 1}) = {last} / {before}, " +
                    "but it is undefined (a loss that is zero, negative or not finite). Check that task's labels (are all of its pixels 255?) or use LossWeighting.Fixed.");
            scaled[t] = last / before / temperature;
        }
        double max = scaled.Max();
        var exp = scaled.Select(x => Math.Exp(x - max)).ToArray();
        double sum = exp.Sum();
        return exp.Select(x => count * x / sum).ToArray();
    }
}
