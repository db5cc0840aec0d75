using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// TopKSoftmax_k along the last axis (MODEL-SPEC §2): every row keeps only its k largest scores; all other
/// weights are exactly zero. Gradients flow only through the kept entries; the choice of indices is not
/// differentiated. k is clamped to the row length, so k ≥ row length gives the plain softmax.
/// </summary>
public static class TopKSoftmax
{
    /// <summary>Top-k weights of every row of <paramref name="scores"/> (joint scope: one top-k over the whole row).</summary>
    /// <param name="scores">Scores, any shape; the last axis is the one competed over.</param>
    /// <param name="k">Winners per row (≥ 1), clamped to the row length.</param>
    /// <param name="mode"><see cref="TopKMode.Masked"/>: softmax over the row, then keep the k largest (row sums ≤ 1);
    /// <see cref="TopKMode.Renormalized"/>: −∞ outside the top-k, then softmax (row sums to 1).</param>
    public static Tensor Apply(Tensor scores, int k, TopKMode mode) => Apply(scores, k, mode, TopKScope.Joint, 1);

    /// <summary>
    /// Per-task scope (ablation, MODEL-SPEC §2 <c>TopKScope.PerTask</c>): the last axis holds T blocks of n
    /// columns, one per task; each block keeps its own k largest (k·T non-zeros per row). Weights are then
    /// formed over the whole row exactly as in <see cref="Apply(Tensor, int, TopKMode)"/>.
    /// </summary>
    /// <param name="scores">Scores whose last axis has length T·n, task-major.</param>
    /// <param name="k">Winners per task block (≥ 1), clamped to n.</param>
    /// <param name="mode">Weighting of the kept entries.</param>
    /// <param name="tasks">Number of task blocks T.</param>
    public static Tensor ApplyPerTask(Tensor scores, int k, TopKMode mode, int tasks) => Apply(scores, k, mode, TopKScope.PerTask, tasks);

    /// <summary>
    /// The dense weights (…×L, zeros outside the kept entries) for the scope chosen in the options,
    /// <see cref="TopKScope.Joint"/> or <see cref="TopKScope.PerTask"/>: <see cref="Sparse"/> scattered back into rows,
    /// or the plain softmax where every entry is kept.
    /// </summary>
    public static Tensor Apply(Tensor scores, int k, TopKMode mode, TopKScope scope, int tasks)
    {
        if (scope == TopKScope.PerTask) CheckBlocks(scores.shape[^1], tasks);
        if (KeepsAll(scores.shape[^1], k, scope, tasks)) return scores.softmax(-1);
        var (weights, indices) = Sparse(scores, k, mode, scope, tasks);
        return Densify(weights, indices, scores);
    }

    /// <summary>
    /// True when every entry of a row is kept (k ≥ the row length, or ≥ the block length for
    /// <see cref="TopKScope.PerTask"/>): the weights are then the plain softmax and <see cref="Sparse"/> does not apply.
    /// </summary>
    /// <param name="rowLength">Length of the last axis (T·n for the per-task scope).</param>
    /// <param name="k">Winners per row or per task block.</param>
    /// <param name="scope">Joint or per-task top-k.</param>
    /// <param name="tasks">Number of task blocks T (per-task scope).</param>
    public static bool KeepsAll(long rowLength, int k, TopKScope scope, int tasks)
    {
        CheckK(k);
        return k >= (scope == TopKScope.Joint ? rowLength : rowLength / tasks);
    }

    /// <summary>
    /// The top-k weights, kept entries only: for every row its K = k (joint) or k·T (per task) non-zero weights and
    /// their column indices, …×K each, so that a weighted sum can gather K rows instead of multiplying by a dense row that
    /// is almost all zeros (<see cref="Apply(Tensor, int, TopKMode, TopKScope, int)"/> scatters them back). Gradients reach
    /// the kept scores only; not for rows that <see cref="KeepsAll"/>.
    /// </summary>
    /// <param name="scores">Scores; the last axis is competed over (T blocks of n columns for the per-task scope).</param>
    /// <param name="k">Winners per row or per task block.</param>
    /// <param name="mode">Weighting of the kept entries.</param>
    /// <param name="scope">Joint or per-task top-k.</param>
    /// <param name="tasks">Number of task blocks T (per-task scope).</param>
    /// <returns>Weights …×K in the scores' dtype and int64 column indices …×K, in no particular order.</returns>
    public static (Tensor Weights, Tensor Indices) Sparse(Tensor scores, int k, TopKMode mode, TopKScope scope, int tasks)
    {
        var length = scores.shape[^1];
        if (scope == TopKScope.PerTask) CheckBlocks(length, tasks);
        if (KeepsAll(length, k, scope, tasks))
            throw new ArgumentException($"k = {k} keeps every entry of rows of length {length}: use the dense softmax.", nameof(k));

        Tensor kept, indices;                                                        // the kept scores keep their gradient
        if (scope == TopKScope.Joint)
            (kept, indices) = scores.topk(k, dim: -1, sorted: false);
        else
        {
            // …×(T·n) → …×T×n: k per block, block-local indices shifted to their block, then …×(T·k)
            var perTask = length / tasks;
            var (blockKept, blockIndices) = scores.unflatten(scores.dim() - 1, [tasks, perTask]).topk(k, dim: -1, sorted: false);
            var offsets = arange(0, length, perTask, dtype: ScalarType.Int64, device: scores.device).unsqueeze(-1);
            (kept, indices) = (blockKept.flatten(-2), (blockIndices + offsets).flatten(-2));
        }

        if (mode == TopKMode.Renormalized) return (kept.softmax(-1), indices);

        // Masked: kept / (Σ kept + Σ dropped) of exp(s − max); the row maximum is always kept. The dropped entries
        // count as constants: the denominator's value is the whole row's sum, its gradient the kept part's only.
        Tensor rowMax, rowSum;                                                       // constants: no autograd nodes
        using (no_grad())
        {
            rowMax = kept.amax([-1], keepdim: true);
            rowSum = (scores - rowMax).exp_().sum(-1, keepdim: true);
        }
        var exp = (kept - rowMax).exp();
        var keptSum = exp.sum(-1, keepdim: true);
        return (exp / (keptSum + (rowSum - keptSum.detach())), indices);
    }

    /// <summary>Slot rows whose kept weights sum to less than this are scaled by 1/ε instead of normalised (<see cref="OverSlots"/>).</summary>
    public const float SlotRowEpsilon = 1e-6f;

    /// <summary>
    /// <see cref="TopKAxis.Slots"/> (MODEL-SPEC §2 "Alternative readings"): scores S …×m×N (slots × tokens) → weights A …×m×N.
    /// Every token (column) keeps its k best slots with <see cref="Apply(Tensor, int, TopKMode)"/> along the slot axis
    /// (<see cref="TopKMode.Masked"/>: the softmax over the m slots, k largest kept; <see cref="TopKMode.Renormalized"/>:
    /// softmax over the kept k), so each column has exactly k non-zeros; then every slot row is divided by its sum over
    /// the tokens, A_ij = P_ij / max(Σ_j P_ij, ε), so a slot that some token chose has weights summing to 1 and a slot
    /// no token chose stays all zero (ε = <see cref="SlotRowEpsilon"/>). Gradients reach the kept entries only. With
    /// k = m every slot is kept and this is Slot Attention's normalisation (softmax over slots, weighted mean over tokens).
    /// </summary>
    /// <param name="scores">Scores; the last two axes are slots × tokens.</param>
    /// <param name="k">Slots every token writes into (1 ≤ k, clamped to m).</param>
    /// <param name="mode">Weighting of the kept entries within each token's column.</param>
    public static Tensor OverSlots(Tensor scores, int k, TopKMode mode)
    {
        var perToken = Apply(scores.transpose(-2, -1), k, mode).transpose(-2, -1);   // …×N×m, k per token → …×m×N
        return perToken / perToken.sum(-1, keepdim: true).clamp_min(SlotRowEpsilon);
    }

    /// <summary>The dense …×L weights of <see cref="Sparse"/>'s result (zeros elsewhere), shaped like <paramref name="scores"/>.</summary>
    public static Tensor Densify(Tensor weights, Tensor indices, Tensor scores) =>
        zeros_like(scores).scatter(-1, indices, weights);

    private static void CheckK(int k)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "Top-k needs k ≥ 1.");
    }

    private static void CheckBlocks(long length, int tasks)
    {
        if (tasks < 1 || length % tasks != 0)
            throw new ArgumentException($"Row length {length} is not a whole number of {tasks} task blocks.", nameof(tasks));
    }
}
