using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Kem.Tests.Interaction;

/// <summary>CrossAttentionForm.MtformerWindow (MODEL-SPEC §4): MTFormer's windowed cross-task attention.</summary>
[TestClass]
public sealed class MtformerWindowAttentionTests
{
    private const int Width = 8, Heads = 2, Batch = 2;
    private static readonly InteractionOptions Options = new() { Kind = InteractionKind.CrossAttention, CrossAttentionForm = CrossAttentionForm.MtformerWindow, CrossAttentionWindow = 4 };

    private static nn.Module<Tensor, Tensor> Create(int tasks, int rows, int cols, InteractionOptions? options = null)
    {
        manual_seed(3);
        return InteractionFactory.Create("interaction", options ?? Options, Width, Heads, tasks, (rows, cols));
    }

    [TestMethod]
    [DataRow(2, 5, 6)]   // padded to 8×8, second block shifted
    [DataRow(3, 4, 4)]   // one window: neither block shifted
    public void Every_parameter_gets_a_gradient_and_the_shape_is_kept(int tasks, int rows, int cols)
    {
        using var module = Create(tasks, rows, cols);
        Assert.IsInstanceOfType<MtformerWindowAttention>(module);
        using var scope = NewDisposeScope();
        var x = TensorAssert.Randn(1, Batch, tasks, rows * cols, Width);
        var output = module.call(x);
        CollectionAssert.AreEqual(x.shape, output.shape);
        (output * TensorAssert.Randn(2, output.shape)).sum().backward();
        foreach (var (name, parameter) in module.named_parameters())
            Assert.IsTrue(parameter.grad is { } g && g.abs().max().item<float>() > 0, $"{name} has no gradient");
    }

    [TestMethod]
    public void The_cross_MLPs_share_d_as_MTFormer_does_for_two_and_three_tasks()
    {
        CollectionAssert.AreEqual(new[] { 8 }, MtformerWindowAttention.CrossWidths(8, 2), "T = 2: d");
        CollectionAssert.AreEqual(new[] { 4, 4 }, MtformerWindowAttention.CrossWidths(8, 3), "T = 3: d/2 each");
        CollectionAssert.AreEqual(new[] { 3, 3, 2 }, MtformerWindowAttention.CrossWidths(8, 4), "shares of d add up to d");
    }

    [TestMethod]
    public void A_token_reaches_only_the_windows_of_the_two_blocks()
    {
        // 12×12 grid, windows 4×4, second block shifted by 2: what task 1 holds at (0, 0) can reach task 0's tokens in its
        // window (rows and columns 0–3) and, through the shifted block, at most 2 further; never (11, 11).
        const int rows = 12, cols = 12;
        using var module = Create(2, rows, cols);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = TensorAssert.Randn(4, 1, 2, rows * cols, Width);
        var changed = x.clone();
        changed[0, 1, 0] = TensorAssert.Randn(5, Width);
        var difference = (module.call(changed) - module.call(x)).abs().sum(-1)[0, 0];   // task 0, per token
        Assert.IsTrue(difference[0].item<float>() > 1e-4, "the same window");
        Assert.AreEqual(0f, difference[11 * cols + 11].item<float>(), "a far corner");
        Assert.AreEqual(0f, difference.view(rows, cols)[6.., ..].abs().max().item<float>(), "rows 6 and below are out of reach");
    }

    /// <summary>The layer written out with the module's own weights, for a grid that is one window (no padding, no shift).</summary>
    private static Tensor Reference(IReadOnlyDictionary<string, Tensor> w, Tensor x, int target, int tasks, int window)
    {
        Tensor Lin(Tensor v, string p) => F.linear(v, w[p + ".weight"], w[p + ".bias"]);
        Tensor Ln(Tensor v, string p) => F.layer_norm(v, [Width], w[p + ".weight"], w[p + ".bias"]);
        Tensor Mlp(Tensor v, string p) => Lin(F.gelu(Lin(v, p + ".fc1")), p + ".fc2");
        Tensor Heads_(Tensor v) => v.view(v.shape[0], v.shape[1], Heads, Width / Heads).transpose(1, 2);
        var others = Enumerable.Range(0, tasks).Where(u => u != target).ToArray();
        var own = x.select(1, target);
        for (int b = 0; b < 2; b++)
        {
            string p = $"targets.{target}.blocks.{b}";
            var normed = new[] { own }.Concat(others.Select(u => x.select(1, u))).Select(v => Ln(v, p + ".norm1")).ToArray();
            var index = SwinBlock.RelativePositionIndex(window).flatten();
            var bias = w[p + ".relative_position_bias_table"].index_select(0, index).view(window * window, window * window, Heads).permute(2, 0, 1);
            var v = Heads_(Lin(normed[0], p + ".value"));
            var reads = normed.Select(n =>
            {
                var qk = Lin(n, p + ".queryKey").chunk(2, -1);
                var scores = Heads_(qk[0]).matmul(Heads_(qk[1]).transpose(-2, -1)) / Math.Sqrt(Width / Heads) + bias;
                return Lin(scores.softmax(-1).matmul(v).transpose(1, 2).reshape(own.shape), p + ".output");
            }).ToArray();
            var parts = new[] { Mlp(reads[0], p + ".self_mlp") }.Concat(reads.Skip(1).Select((r, j) => Mlp(r, $"{p}.cross_mlps.{j}"))).ToArray();
            var updated = own + Mlp(cat(parts, -1), p + ".fuse") + reads[0];
            own = updated + Mlp(Ln(updated, p + ".norm2"), p + ".mlp");
        }
        return Ln(own, $"targets.{target}.norm");
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    public void One_window_matches_the_layer_written_out(int tasks)
    {
        using var module = Create(tasks, 4, 4);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = TensorAssert.Randn(6, Batch, tasks, 16, Width);
        var weights = module.state_dict();
        var output = module.call(x);
        for (int t = 0; t < tasks; t++)
            TensorAssert.Close(Reference(weights, x, t, tasks, 4), output.select(1, t), 1e-5, $"target {t}");
    }

    [TestMethod]
    public void The_form_is_refused_where_it_does_not_apply()
    {
        var kem = Assert.ThrowsExactly<ArgumentException>(() => (Options with { Kind = InteractionKind.Kem }).Validate(Width, Heads, 2));
        StringAssert.Contains(kem.Message, "Kind CrossAttention");
        Assert.ThrowsExactly<ArgumentException>(() => (Options with { Lambda = 0.5f }).Validate(Width, Heads, 2));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (Options with { CrossAttentionWindow = 0 }).Validate(Width, Heads, 2));
        var noGrid = Assert.ThrowsExactly<ArgumentException>(() => InteractionFactory.Create("interaction", Options, Width, Heads, 2));
        StringAssert.Contains(noGrid.Message, "token grid");
        using var module = Create(2, 4, 4);
        Assert.ThrowsExactly<ArgumentException>(() => module.call(zeros(1, 2, 15, Width)), "n must be r·c");
    }
}
