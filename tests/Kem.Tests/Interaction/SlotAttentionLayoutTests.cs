using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

/// <summary>
/// KEM's token-layout attention (AttentionKernel.SlotScores, AttendSlots, ReadSlots): the tokens stay B×L×d — here a
/// strided view of a fused projection, as in KEM — and the few slots are laid out block-diagonally per head. Values and
/// gradients equal the head-split forms (Scores, Attend, weights × split values) that KEM used before; AttendSlots' output
/// projection, applied to the slot rows, equals it applied to the read.
/// </summary>
[TestClass]
public sealed class SlotAttentionLayoutTests
{
    private const int Heads = 3, Width = 12, Slots = 5, Length = 9, Batch = 2;   // d_h 4 ≠ m 5, so a swapped axis fails on shape

    // B×L×3d fused projection, sliced like KnowledgeExtraction's [K | V | Q] (row stride 3d)
    private static Tensor[] TokenViews(long seed) => TensorAssert.Randn(seed, Batch, Length, 3 * Width).requires_grad_(true).chunk(3, -1);

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
    public void SlotScores_equal_the_head_split_scores_with_their_gradients()
    {
        using var scope = NewDisposeScope();
        var keys = TokenViews(5)[0];
        var queries = TensorAssert.Randn(6, Slots, Width).requires_grad_(true);
        var slotLayout = AttentionKernel.SlotScores(queries, keys, Heads);
        var split = AttentionKernel.Scores(AttentionKernel.SplitHeads(queries.unsqueeze(0), Heads), AttentionKernel.SplitHeads(keys, Heads));
        CollectionAssert.AreEqual(new long[] { Batch, Heads, Slots, Length }, slotLayout.shape);
        TensorAssert.Close(split, slotLayout, 1e-5, "scores");
        var g = TensorAssert.Randn(7, Batch, Heads, Slots, Length);
        var a = autograd.grad([(slotLayout * g).sum()], [queries, keys]);
        var b = autograd.grad([(split * g).sum()], [queries, keys]);
        TensorAssert.Close(b[0], a[0], 1e-5, "query gradients");
        TensorAssert.Close(b[1], a[1], 1e-5, "key gradients");
    }

    [TestMethod]
    [DataRow(null)]
    [DataRow(1f)]
    public void AttendSlots_equals_fused_attention_on_split_heads(float? scale)
    {
        using var scope = NewDisposeScope();
        var queries = TokenViews(8)[2];
        var keyValue = TensorAssert.Randn(9, Batch, Slots, 2 * Width).requires_grad_(true);
        var (keys, values) = (keyValue.narrow(-1, 0, Width), keyValue.narrow(-1, Width, Width));
        var (read, weights) = AttentionKernel.AttendSlots(queries, keyValue, Heads, scale);
        var split = AttentionKernel.MergeHeads(AttentionKernel.Attend(AttentionKernel.SplitHeads(queries, Heads),
            AttentionKernel.SplitHeads(keys, Heads), AttentionKernel.SplitHeads(values, Heads), scale));
        TensorAssert.Close(split, read, 1e-5, "read");
        var splitWeights = AttentionKernel.Weights(AttentionKernel.SplitHeads(queries, Heads), AttentionKernel.SplitHeads(keys, Heads), scale);
        TensorAssert.Close(splitWeights, weights.permute(0, 2, 1, 3), 1e-6, "weights B×h×L×m");
        var g = TensorAssert.Randn(10, Batch, Length, Width);
        var inputs = new[] { queries, keyValue };
        var a = autograd.grad([(read * g).sum()], inputs);
        var b = autograd.grad([(split * g).sum()], inputs);
        for (int i = 0; i < inputs.Length; i++) TensorAssert.Close(b[i], a[i], 1e-5, $"gradient {i}");
    }

    /// <summary>The output projection applied to the h·m slot rows before the weights read them equals it applied to the read, in float64.</summary>
    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void AttendSlots_with_an_output_projection_equals_the_projected_read(bool withBias)
    {
        using var scope = NewDisposeScope();
        var queries = TokenViews(14)[2].to(ScalarType.Float64).detach().requires_grad_(true);
        var keyValue = TensorAssert.Randn(15, Batch, Slots, 2 * Width).to(ScalarType.Float64).requires_grad_(true);
        var weight = TensorAssert.Randn(16, Width + 1, Width).to(ScalarType.Float64).requires_grad_(true);    // d_out ≠ d
        var bias = TensorAssert.Randn(17, Width + 1).to(ScalarType.Float64).requires_grad_(true);
        var (folded, _) = AttentionKernel.AttendSlots(queries, keyValue, Heads, null, weight, withBias ? bias : null);
        var reference = nn.functional.linear(AttentionKernel.AttendSlots(queries, keyValue, Heads).Read, weight, withBias ? bias : null);
        CollectionAssert.AreEqual(new long[] { Batch, Length, Width + 1 }, folded.shape);
        TensorAssert.Close(reference, folded, 1e-12, "projected read");
        var g = TensorAssert.Randn(18, Batch, Length, Width + 1).to(ScalarType.Float64);
        Tensor[] inputs = withBias ? [queries, keyValue, weight, bias] : [queries, keyValue, weight];
        var a = autograd.grad([(folded * g).sum()], inputs, retain_graph: true);   // the two graphs share nodes
        var b = autograd.grad([(reference * g).sum()], inputs);
        for (int i = 0; i < inputs.Length; i++) TensorAssert.Close(b[i], a[i], 1e-12, $"gradient of input {i}");
    }

    [TestMethod]
    public void ReadSlots_equals_the_weights_times_the_split_values()
    {
        using var scope = NewDisposeScope();
        var values = TokenViews(11)[1];
        var scores = TensorAssert.Randn(12, Batch, Heads, Slots, Length).requires_grad_(true);
        var weights = TopKSoftmax.Apply(scores, 2, TopKMode.Masked);                                     // dense, 2 non-zeros per row
        var read = AttentionKernel.ReadSlots(weights, values);                                           // heads merged
        var split = AttentionKernel.MergeHeads(weights.matmul(AttentionKernel.SplitHeads(values, Heads)));
        CollectionAssert.AreEqual(new long[] { Batch, Slots, Width }, read.shape);
        TensorAssert.Close(split, read, 1e-6, "weighted sums");
        var g = TensorAssert.Randn(13, Batch, Slots, Width);
        var a = autograd.grad([(split * g).sum()], [values, scores], retain_graph: true);   // the two graphs share the weights
        var b = autograd.grad([(read * g).sum()], [values, scores]);
        TensorAssert.Close(a[0], b[0], 1e-6, "value gradients");
        TensorAssert.Close(a[1], b[1], 1e-6, "score gradients");
    }
}
