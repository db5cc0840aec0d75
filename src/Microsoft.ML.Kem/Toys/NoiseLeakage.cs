using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>
/// How much of what a task reads comes from the noise task's tokens (MODEL-SPEC §14, "Measurements"). Token axes are
/// task-major: column j belongs to task j / n. All functions return one share per query task, averaged over batch,
/// heads and the task's query tokens.
/// </summary>
public static class NoiseLeakage
{
    /// <summary>
    /// Softmax attention: μ_t = mean over queries i of task t of Σ_{j ∈ noise task} A_ij.
    /// <paramref name="weights"/>: B×h×N×N (rows sum to 1). Uniform attention over T tasks gives 1/T.
    /// </summary>
    public static double[] Attention(Tensor weights, int tasks, int noiseTask)
    {
        using var scope = NewDisposeScope();
        var perTask = CheckTokens(weights.shape[^1], tasks);
        var noiseMass = weights.narrow(-1, noiseTask * perTask, perTask).sum(-1);                 // B×h×N
        return PerQueryTask(noiseMass, tasks, perTask);
    }

    /// <summary>
    /// KEM: the effective token-to-token weights are Ã = P_write · A_retrieve (B×h×N×m · B×h×m×N → B×h×N×N);
    /// μ_t = mean over queries i of task t of Σ_{j ∈ noise} Ã_ij / Σ_j Ã_ij (normalised by the mass that reaches tokens at
    /// all, since masked top-k rows sum to less than 1). Exactly 0 when no noise token is among any slot's top-k.
    /// </summary>
    public static double[] Kem(Tensor writeWeights, Tensor retrieveWeights, int tasks, int noiseTask)
    {
        using var scope = NewDisposeScope();
        var perTask = CheckTokens(retrieveWeights.shape[^1], tasks);
        var effective = writeWeights.to_type(ScalarType.Float64).matmul(retrieveWeights.to_type(ScalarType.Float64));   // B×h×N×N
        var share = effective.narrow(-1, noiseTask * perTask, perTask).sum(-1) / effective.sum(-1);                     // B×h×N
        return PerQueryTask(share, tasks, perTask);
    }

    /// <summary>
    /// KEM: share of the retrieved memory that comes from noise tokens, Σ_{slots, j ∈ noise} A / Σ_{slots, j} A over the
    /// retrieve weights <paramref name="retrieveWeights"/> (B×h×m×N), averaged over batch and heads.
    /// </summary>
    public static double Retrieved(Tensor retrieveWeights, int tasks, int noiseTask)
    {
        using var scope = NewDisposeScope();
        var perTask = CheckTokens(retrieveWeights.shape[^1], tasks);
        var weights = retrieveWeights.to_type(ScalarType.Float64);
        var share = weights.narrow(-1, noiseTask * perTask, perTask).sum([-1, -2]) / weights.sum([-1, -2]);   // B×h
        return share.mean().item<double>();
    }

    /// <summary>Fraction of (slot, head) top-k picks that are noise tokens: non-zero retrieve weights in noise columns / all non-zero.</summary>
    public static double PickedNoiseFraction(Tensor retrieveWeights, int tasks, int noiseTask)
    {
        using var scope = NewDisposeScope();
        var perTask = CheckTokens(retrieveWeights.shape[^1], tasks);
        var picked = retrieveWeights.ne(0).to_type(ScalarType.Float64);
        return (picked.narrow(-1, noiseTask * perTask, perTask).sum() / picked.sum()).item<double>();
    }

    private static long CheckTokens(long tokens, int tasks)
    {
        if (tasks < 1 || tokens % tasks != 0)
            throw new ArgumentException($"{tokens} tokens are not a whole number of {tasks} task groups.", nameof(tasks));
        return tokens / tasks;
    }

    /// <summary>values B×h×N → mean over batch, heads and the n tokens of each task, as doubles.</summary>
    private static double[] PerQueryTask(Tensor values, int tasks, long perTask)
    {
        var means = values.to_type(ScalarType.Float64).unflatten(values.dim() - 1, [tasks, perTask]).mean([0, 1, 3]);   // T
        return means.cpu().data<double>().ToArray();
    }
}
