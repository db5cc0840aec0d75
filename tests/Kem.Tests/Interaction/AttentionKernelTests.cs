using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class AttentionKernelTests
{
    [TestMethod]
    public void Split_and_merge_heads_are_inverse_and_put_heads_on_axis_1()
    {
        using var scope = NewDisposeScope();
        var x = TensorAssert.Randn(1, 2, 5, 12);
        var split = AttentionKernel.SplitHeads(x, 3);
        CollectionAssert.AreEqual(new long[] { 2, 3, 5, 4 }, split.shape);
        TensorAssert.Close(x.narrow(2, 4, 4), split.select(1, 1), 0, "head 1 = features 4..7");
        TensorAssert.Close(x, AttentionKernel.MergeHeads(split), 0, "merge(split(x))");
    }

    [TestMethod]
    [DataRow(null, false)]
    [DataRow(1f, false)]
    [DataRow(0.3f, true)]
    public void Fused_attention_equals_softmax_of_the_explicit_scores_times_values(float? scale, bool withBias)
    {
        using var scope = NewDisposeScope();
        var q = TensorAssert.Randn(1, 2, 3, 6, 4);
        var k = TensorAssert.Randn(2, 2, 3, 9, 4);
        var v = TensorAssert.Randn(3, 2, 3, 9, 4);
        var bias = withBias ? TensorAssert.Randn(4, 3, 6, 9) : null;
        var explicitScores = q.matmul(k.transpose(-2, -1)) * (scale ?? 0.5f) + (bias ?? zeros(1));
        TensorAssert.Close(explicitScores, AttentionKernel.Scores(q, k, scale, bias), 1e-5, "scores");
        TensorAssert.Close(explicitScores.softmax(-1).matmul(v), AttentionKernel.Attend(q, k, v, scale, bias), 1e-5, "attention");
    }

    [TestMethod]
    public void Multi_head_attention_maps_queries_to_their_own_length()
    {
        manual_seed(1);
        using var attention = new MultiHeadAttention("mha", 8, 2);
        using var scope = NewDisposeScope();
        var query = TensorAssert.Randn(1, 2, 3, 8);
        var keyValue = TensorAssert.Randn(2, 2, 7, 8);
        CollectionAssert.AreEqual(new long[] { 2, 3, 8 }, attention.call(query, keyValue).shape);
        CollectionAssert.AreEqual(new long[] { 2, 7, 8 }, attention.call(keyValue, keyValue).shape, "self-attention");
    }

    /// <summary>TorchSharp 0.107's matmul aborts the process on mismatched shapes: without these checks this test would kill the run.</summary>
    [TestMethod]
    public void Products_of_mismatched_widths_throw_instead_of_aborting()
    {
        using var scope = NewDisposeScope();
        var tokens = TensorAssert.Randn(1, 2, 10, 8);
        var e = Assert.ThrowsExactly<ArgumentException>(() => AttentionKernel.Scores(TensorAssert.Randn(2, 2, 3, 4, 6), TensorAssert.Randn(3, 2, 3, 5, 4)));
        StringAssert.Contains(e.Message, "queries are 6 wide and the keys 4");
        Assert.ThrowsExactly<ArgumentException>(() => AttentionKernel.SlotScores(TensorAssert.Randn(4, 4, 6), tokens, heads: 2));
        e = Assert.ThrowsExactly<ArgumentException>(() => AttentionKernel.AttendSlots(tokens, TensorAssert.Randn(5, 2, 4, 14), heads: 2));
        StringAssert.Contains(e.Message, "B×m×2d");
        e = Assert.ThrowsExactly<ArgumentException>(() => AttentionKernel.ReadSlots(TensorAssert.Randn(7, 2, 2, 3, 9), tokens));
        StringAssert.Contains(e.Message, "same B and L");
        Assert.ThrowsExactly<ArgumentException>(() => AttentionKernel.ReadSlots(TensorAssert.Randn(8, 2, 3, 3, 10), tokens));   // 8 wide, 3 heads
    }
}
