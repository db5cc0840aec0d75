using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class TransformerBlockTests
{
    [TestMethod]
    public void Dropout_zeroes_a_share_p_of_the_branch_and_scales_the_rest_by_1_over_1_minus_p_in_training_only()
    {
        manual_seed(3);
        using var block = new TransformerBlock("b", 32, 4, mlpRatio: 2, dropout: 0.1);
        Assert.AreEqual(0.1, block.Dropout);
        using (no_grad())
            foreach (var (name, p) in block.named_parameters())
                if (name.StartsWith("attn.") || name.StartsWith("fc1.") || name == "fc2.weight") p.zero_();
                else if (name == "fc2.bias") p.fill_(1f);
        // Attention adds 0, the MLP's hidden units are GELU(0) = 0, so the block adds dropout(1) to every entry of x.
        using var scope = NewDisposeScope();
        var x = randn(1, 1000, 32);
        block.train();
        var added = block.forward(x) - x;
        var kept = added.ne(0);
        double dropped = 1 - kept.to_type(ScalarType.Float64).mean().item<double>();
        Assert.AreEqual(0.1, dropped, 0.01, "share of the 32,000 entries dropped");
        Assert.AreEqual(1 / 0.9, added.masked_select(kept).mean().item<float>(), 1e-5, "kept entries are scaled by 1/(1 − p)");
        Assert.AreEqual(0f, (added.masked_select(kept) - 1 / 0.9f).abs().max().item<float>(), 1e-5f);

        block.eval();
        Assert.AreEqual(0f, (block.forward(x) - x - 1f).abs().max().item<float>(), 1e-5f, "eval mode: no dropout");
        using var plain = new TransformerBlock("p", 32, 4, mlpRatio: 2);
        Assert.AreEqual(0.0, plain.Dropout, "no dropout unless asked for");
    }
}
