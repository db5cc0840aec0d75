using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

/// <summary>
/// KEM's token-layout attention with the token projections folded into the slots (AttentionKernel.SlotLogits, ReadSlots,
/// GatherProjectRows): the tokens stay B×L×d and are never projected, the few slots are laid out block-diagonally per
/// head and meet the projection first. Values and gradients (tokens, slots, projection weight and bias) equal the
/// project-first, head-split forms (linear, SplitHeads, Scores, GatherSum) in float64.
/// </summary>
[TestClass]
public sealed class SlotAttentionLayoutTests
{
    private const int Heads = 3, Width = 12, Slots = 5, Length = 9, Batch = 2;   // d_h 4 ≠ m 5, so a swapped axis fails on shape
    private const double Tolerance = 1e-10;

    private static Tensor Grad(long seed, params long[] shape) => TensorAssert.Randn(seed, shape).to(ScalarType.Float64).requires_grad_(true);

    // B×L×3d, sliced like a fused projection's output: a token view with row stride 3d
    private static Tensor StridedTokens(long seed) => Grad(seed, Batch, Length, 3 * Width).narrow(-1, Width, Width);

    private static (Tensor Weight, Tensor Bias) Projection(long seed) => (Grad(seed, Width, Width), Grad(seed + 1, Width));

    private static void SameGradients(Tensor folded, Tensor reference, Tensor[] inputs, long seed)
    {
        var g = TensorAssert.Randn(seed, folded.shape).to(ScalarType.Float64);
        var a = autograd.grad([(folded * g).sum()], inputs, retain_graph: true);   // the two graphs share nodes
        var b = autograd.grad([(reference * g).sum()], inputs);
        for (int i = 0; i < inputs.Length; i++) TensorAssert.Close(b[i], a[i], Tolerance, $"gradient of input {i}");
    }

    [TestMethod]
    public void Block_diagonal_slot_columns_hold_each_head_block_once()
    {
        using var scope = NewDisposeScope();
        var slots = TensorAssert.Randn(3, Slots, Width);
        var columns = AttentionKernel.SlotColumns(slots, Heads, scale: 2f);           // d×(h·m)
        CollectionAssert.AreEqual(new long[] { Width, Heads * Slots }, columns.shape);
        int headWidth = Width / Heads;
        for (int i = 0; i < Heads; i++)
        for (int j = 0; j < Heads; j++)
        {
            var block = columns.narrow(0, i * headWidth, headWidth).narrow(1, j * Slots, Slots);
            var expected = i == j ? slots.narrow(1, i * headWidth, headWidth).t() * 2 : zeros_like(block);
            TensorAssert.Close(expected, block, 0, $"block ({i}, {j})");
        }
    }

    [TestMethod]
    [DataRow(false, true, DisplayName = "shared slots m×d, projected with bias")]
    [DataRow(true, true, DisplayName = "per-sample slots B×m×d, projected with bias")]
    [DataRow(true, false, DisplayName = "per-sample slots, projected without bias")]
    public void SlotLogits_equal_the_scores_of_the_projected_head_split_tokens(bool perSample, bool withBias)
    {
        using var scope = NewDisposeScope();
        var tokens = StridedTokens(5);
        var slots = perSample ? Grad(6, Batch, Slots, Width) : Grad(6, Slots, Width);
        var (weight, bias) = Projection(7);
        var folded = AttentionKernel.SlotLogits(tokens, slots, Heads, weight: weight, bias: withBias ? bias : null);   // B×L×(h·m)
        // project first: K = x Wᵀ + b, split into heads, scored against the split slots → B×h×L×m → B×L×(h·m)
        var keys = AttentionKernel.SplitHeads(nn.functional.linear(tokens, weight, withBias ? bias : null), Heads);
        var splitSlots = AttentionKernel.SplitHeads(perSample ? slots : slots.unsqueeze(0), Heads);
        var reference = AttentionKernel.Scores(keys, splitSlots).permute(0, 2, 1, 3).reshape(Batch, Length, Heads * Slots);
        CollectionAssert.AreEqual(new long[] { Batch, Length, Heads * Slots }, folded.shape);
        TensorAssert.Close(reference, folded, Tolerance, "scores");
        SameGradients(folded, reference, withBias ? [tokens, slots, weight, bias] : [tokens, slots, weight], 8);
    }

    [TestMethod]
    public void SlotLogits_without_a_projection_score_the_tokens_as_they_are()
    {
        using var scope = NewDisposeScope();
        var tokens = StridedTokens(9);
        var slots = Grad(10, Batch, Slots, Width);
        var logits = AttentionKernel.SlotLogits(tokens, slots, Heads, scale: 1f);
        var reference = AttentionKernel.Scores(AttentionKernel.SplitHeads(tokens, Heads), AttentionKernel.SplitHeads(slots, Heads), 1f)
            .permute(0, 2, 1, 3).reshape(Batch, Length, Heads * Slots);
        TensorAssert.Close(reference, logits, Tolerance, "scores");
        SameGradients(logits, reference, [tokens, slots], 11);
    }

    [TestMethod]
    public void ReadSlots_equals_the_weighted_sum_of_split_values_then_the_output_projection()
    {
        using var scope = NewDisposeScope();
        var weights = Grad(12, Batch, Length, Heads, Slots).softmax(-1);                       // B×L×h×m
        var values = Grad(13, Batch, Slots, Width);
        var (weight, bias) = Projection(14);
        var folded = AttentionKernel.ReadSlots(weights, values, Heads, weight, bias);
        var read = AttentionKernel.MergeHeads(weights.permute(0, 2, 1, 3).matmul(AttentionKernel.SplitHeads(values, Heads)));   // B×L×d
        var reference = nn.functional.linear(read, weight, bias);
        TensorAssert.Close(reference, folded, Tolerance, "read");
        SameGradients(folded, reference, [weights, values, weight, bias], 15);
    }

    [TestMethod]
    public void GatherProjectRows_equals_GatherSum_on_the_projected_split_values()
    {
        using var scope = NewDisposeScope();
        var tokens = StridedTokens(16);
        var (weight, bias) = Projection(17);
        var scores = Grad(18, Batch, Heads, Slots, Length);
        var (kept, indices) = TopKSoftmax.Sparse(scores, 2, TopKMode.Masked, TopKScope.Joint, 1);
        var folded = AttentionKernel.GatherProjectRows(kept, indices, tokens, weight, bias);
        var reference = AttentionKernel.GatherSum(kept, indices, AttentionKernel.SplitHeads(nn.functional.linear(tokens, weight, bias), Heads));
        CollectionAssert.AreEqual(new long[] { Batch, Heads, Slots, Width / Heads }, folded.shape);
        TensorAssert.Close(reference, folded, Tolerance, "gathered sums");
        SameGradients(folded, reference, [tokens, weight, bias, scores], 19);
    }
}
