namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// The multi-task gain Δm in percent (MODEL-SPEC §9):
/// Δm = (1/T) Σ_i (−1)^{l_i} · (M_{m,i} − M_{s,i}) / M_{s,i} × 100, with l_i = 1 when lower is better.
/// </summary>
public static class DeltaM
{
    /// <summary>
    /// Δm of a multi-task model's metrics against single-task references, matched by <see cref="TaskMetrics.TaskName"/>
    /// and using each task's <see cref="TaskMetrics.Primary"/>. Every task of <paramref name="multi"/> needs a reference.
    /// </summary>
    public static double Compute(IReadOnlyList<TaskMetrics> multi, IReadOnlyList<TaskMetrics> single)
    {
        ArgumentNullException.ThrowIfNull(multi);
        ArgumentNullException.ThrowIfNull(single);
        var references = new Dictionary<string, TaskMetrics>(StringComparer.Ordinal);
        foreach (var reference in single)
            if (!references.TryAdd(reference.TaskName, reference))
                throw new ArgumentException($"Single-task references list task '{reference.TaskName}' twice.", nameof(single));
        var scores = new List<(double Multi, double Single, bool LowerIsBetter)>(multi.Count);
        foreach (var m in multi)
        {
            if (!references.TryGetValue(m.TaskName, out var s))
                throw new ArgumentException(
                    $"No single-task reference for task '{m.TaskName}'; references cover: {string.Join(", ", references.Keys)}.", nameof(single));
            if (s.Kind != m.Kind)
                throw new ArgumentException(
                    $"Task '{m.TaskName}' is {m.Kind} in the multi-task metrics but {s.Kind} in the single-task reference.", nameof(single));
            scores.Add((m.Primary, s.Primary, m.LowerIsBetter));
        }
        return Compute(scores);
    }

    /// <summary>Δm from (multi-task metric, single-task metric, lower is better) per task.</summary>
    public static double Compute(IReadOnlyList<(double Multi, double Single, bool LowerIsBetter)> scores)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.Count == 0)
            throw new ArgumentException("Δm needs at least one task.", nameof(scores));
        double sum = 0;
        foreach (var (m, s, lowerIsBetter) in scores)
        {
            if (!double.IsFinite(m) || !double.IsFinite(s) || s == 0)
                throw new ArgumentOutOfRangeException(nameof(scores), (m, s),
                    "Δm needs finite metrics and a non-zero single-task metric.");
            sum += (lowerIsBetter ? -1 : 1) * (m - s) / s * 100;
        }
        return sum / scores.Count;
    }
}
