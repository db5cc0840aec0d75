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
    /// <see cref="TopKScope.Joint"/> or <see cref="TopKScope.PerTask"/>: <see cref="Weights"/> on the <see cref="KeepMask"/>,
    /// or the plain softmax where every entry is kept.
    /// </summary>
    public static Tensor Apply(Tensor scores, int k, TopKMode mode, TopKScope scope, int tasks)
    {
        if (scope == TopKScope.PerTask) CheckBlocks(scores.shape[^1], tasks);
        if (KeepsAll(scores.shape[^1], k, scope, tasks)) return scores.softmax(-1);
        return Weights(scores, KeepMask(scores, k, scope, tasks), mode);
    }

    /// <summary>
    /// True when every entry of a row is kept (k ≥ the row length, or ≥ the block length for
    /// <see cref="TopKScope.PerTask"/>): the weights are then the plain softmax and <see cref="KeepMask"/> does not apply.
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
    /// Which entries every row keeps, a boolean tensor shaped like <paramref name="scores"/>: its k largest (joint) or the
    /// k largest of every task block (per task, k·T per row). Made without gradient: the choice is not differentiated.
    /// Not for rows that <see cref="KeepsAll"/>.
    /// </summary>
    /// <param name="scores">Scores; the last axis is competed over (T blocks of n columns for the per-task scope).</param>
    /// <param name="k">Winners per row or per task block.</param>
    /// <param name="scope">Joint or per-task top-k.</param>
    /// <param name="tasks">Number of task blocks T (per-task scope).</param>
    public static Tensor KeepMask(Tensor scores, int k, TopKScope scope, int tasks)
    {
        var length = scores.shape[^1];
        if (scope == TopKScope.PerTask) CheckBlocks(length, tasks);
        if (KeepsAll(length, k, scope, tasks))
            throw new ArgumentException($"k = {k} keeps every entry of rows of length {length}: use the dense softmax.", nameof(k));
        using var noGrad = no_grad();
        // Per task: …×(T·n) → …×T×n, k per block; the mask is then flattened back (a view of the contiguous mask)
        var rows = scope == TopKScope.Joint ? scores : scores.unflatten(scores.dim() - 1, [tasks, length / tasks]);
        var indices = rows.topk(k, dim: -1, sorted: false).indexes;
        var keep = zeros(rows.shape, ScalarType.Bool, scores.device).scatter_(-1, indices, True(scores.device).expand(indices.shape));
        return scope == TopKScope.Joint ? keep : keep.flatten(-2);
    }

    /// <summary>
    /// The top-k weights for a <see cref="KeepMask"/>, dense (…×L, exactly zero outside the mask) and with gradients at
    /// the kept scores only. <see cref="TopKMode.Masked"/>: the row's softmax at the kept entries, the dropped entries
    /// counted in the denominator as constants (the softmax of the scores with the dropped ones detached, times the mask).
    /// <see cref="TopKMode.Renormalized"/>: −∞ outside the mask, then softmax.
    /// </summary>
    /// <param name="scores">Scores.</param>
    /// <param name="keep">The kept entries, boolean, shaped like <paramref name="scores"/>.</param>
    /// <param name="mode">Weighting of the kept entries.</param>
    public static Tensor Weights(Tensor scores, Tensor keep, TopKMode mode) => mode switch
    {
        TopKMode.Masked => where(keep, scores, scores.detach()).softmax(-1) * keep,
        TopKMode.Renormalized => scores.Else(keep, double.NegativeInfinity).softmax(-1),
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Masked or Renormalized."),
    };

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

    // A 0-dim true on the device, cached per device: expanded, the source of KeepMask's scatter (no kernel per call).
    private static readonly ConstantCache<(DeviceType, int)> Trues = new();

    private static Tensor True(Device device) =>
        Trues.Get((device.type, device.index), _ => ones(Array.Empty<long>(), ScalarType.Bool, device));

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
