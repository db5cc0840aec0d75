using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class SwinBlockTests
{
    [TestMethod]
    public void Swin_block_keeps_the_token_shape_with_padding_and_shift()
    {
        torch.manual_seed(1);
        using var block = new SwinBlock("b", rows: 3, cols: 5, width: 8, heads: 2, window: 2, shift: 1);   // padded to 4×6
        using var scope = torch.NewDisposeScope();
        var y = block.forward(torch.randn(2, 15, 8));
        CollectionAssert.AreEqual(new long[] { 2, 15, 8 }, y.shape);
        Assert.AreEqual(1, block.Shift);
        Assert.IsTrue(y.isfinite().all().item<bool>());
    }

    [TestMethod]
    public void One_window_covering_the_grid_is_global_attention_plus_the_relative_bias()
    {
        torch.manual_seed(2);
        using var block = new SwinBlock("b", rows: 3, cols: 3, width: 8, heads: 2, window: 3, shift: 1);
        Assert.AreEqual(0, block.Shift);                                   // one window: never shifted
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(2, 9, 8);
        var expected = Reference(block, x, RelativeBias(Table(block), 3, 3, 3, sameGroup: (_, _) => true));
        AssertClose(expected, block.forward(x));

        // With a zero table the block is exactly the global TransformerBlock with the same weights.
        using var global = new TransformerBlock("g", 8, 2);
        using (torch.no_grad())
        {
            Table(block).zero_();
            var ours = block.state_dict();
            foreach (var (name, p) in global.named_parameters()) p.copy_(ours[name]);
        }
        AssertClose(global.forward(x), block.forward(x));
    }

    [TestMethod]
    public void Only_a_shifted_block_lets_a_token_see_across_the_window_border()
    {
        torch.manual_seed(3);
        using var plain = new SwinBlock("p", 4, 4, 8, 2, window: 2, shift: 0);
        using var shifted = new SwinBlock("s", 4, 4, 8, 2, window: 2, shift: 1);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(1, 16, 8);
        var changed = x.clone();
        changed[0, 1 * 4 + 2] += torch.randn(8);                                // token (1, 2): window (0, 1)
        float Effect(SwinBlock b) => (b.forward(changed) - b.forward(x))[0, 1 * 4 + 1].abs().sum().item<float>(); // token (1, 1): window (0, 0)
        Assert.AreEqual(0f, Effect(plain), 1e-6f);
        Assert.IsGreaterThan(1e-3f, Effect(shifted));
    }

    [TestMethod]
    public void Shift_mask_equals_attention_restricted_to_the_unwrapped_shifted_windows()
    {
        // Direct implementation: with shift s, token (r, c) attends exactly to the tokens of its window on the grid cut at
        // s, s + w, … (no wrap-around): group ⌊(r + w − s)/w⌋ per axis; the bias is the table at the true offsets.
        torch.manual_seed(4);
        const int size = 4, window = 2, shift = 1;
        using var block = new SwinBlock("b", size, size, 8, 2, window, shift);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(2, size * size, 8);
        int Group(int p) => (p + window - shift) / window;
        var bias = RelativeBias(Table(block), size, size, window,
            (i, j) => Group(i / size) == Group(j / size) && Group(i % size) == Group(j % size));
        AssertClose(Reference(block, x, bias), block.forward(x));
        // …and the shift mask really cuts: tokens (0, 0) and (3, 3) share the rolled corner window but come from opposite corners.
        var changed = x.clone();
        changed[0, 3 * size + 3] += torch.randn(8);   // not a constant: LN would cancel it
        var diff = (block.forward(changed) - block.forward(x))[0, 0].abs().sum().item<float>();
        Assert.AreEqual(0f, diff, 1e-5f);
    }

    [TestMethod]
    public void Gradients_reach_the_relative_position_bias_table()
    {
        torch.manual_seed(5);
        using var block = new SwinBlock("b", 4, 4, 8, 2, window: 2, shift: 1);
        using var scope = torch.NewDisposeScope();
        block.forward(torch.randn(2, 16, 8)).square().mean().backward();
        var grad = Table(block).grad;
        Assert.IsNotNull(grad);
        Assert.IsGreaterThan(0f, grad.abs().sum().item<float>());
        CollectionAssert.AreEqual(new long[] { 9, 2 }, Table(block).shape);   // (2·2−1)² × heads
    }

    private static Tensor Table(SwinBlock block) =>
        block.named_parameters().Single(p => p.name == "relative_position_bias_table").parameter;

    /// <summary>Full-grid additive bias h×n×n: the table at the true offsets for allowed pairs, −∞ elsewhere.</summary>
    private static Tensor RelativeBias(Tensor table, int rows, int cols, int window, Func<int, int, bool> sameGroup)
    {
        int n = rows * cols, heads = (int)table.shape[1];
        var values = table.detach().data<float>().ToArray();
        var bias = new float[heads * n * n];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    int row = (i / cols - j / cols + window - 1) * (2 * window - 1) + (i % cols - j % cols + window - 1);
                    bias[(h * n + i) * n + j] = sameGroup(i, j) ? values[row * heads + h] : float.NegativeInfinity;
                }
        return torch.tensor(bias, [1, heads, n, n]);
    }

    /// <summary>x + Attn(LN x; bias) then x + MLP(LN x), with the block's own weights, attention over the whole grid.</summary>
    private static Tensor Reference(SwinBlock block, Tensor x, Tensor bias)
    {
        var p = block.state_dict();
        Tensor Linear(Tensor t, string name) => nn.functional.linear(t, p[name + ".weight"], p[name + ".bias"]);
        Tensor Norm(Tensor t, string name) => nn.functional.layer_norm(t, [t.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
        var h = Norm(x, "norm1");
        var kv = Linear(h, "attn.keyValue").chunk(2, -1);
        var q = AttentionKernel.SplitHeads(Linear(h, "attn.query"), 2);
        var scores = AttentionKernel.Scores(q, AttentionKernel.SplitHeads(kv[0], 2), bias: bias).softmax(-1);
        x = x + Linear(AttentionKernel.MergeHeads(scores.matmul(AttentionKernel.SplitHeads(kv[1], 2))), "attn.output");
        return x + Linear(nn.functional.gelu(Linear(Norm(x, "norm2"), "fc1")), "fc2");
    }

    private static void AssertClose(Tensor expected, Tensor actual) =>
        Assert.IsTrue(expected.allclose(actual, rtol: 1e-4, atol: 1e-5), $"max |Δ| = {(expected - actual).abs().max().item<float>()}");
}
