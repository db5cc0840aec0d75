using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class TruncatedNormalTests
{
    [TestMethod]
    public void Draws_have_the_requested_spread_and_stay_inside_the_cut_offs()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var wide = TruncatedNormal.Fill(empty(200, 100), std: 0.02);
        Assert.AreEqual(0.02, wide.std().item<float>(), 0.001, "std with cut-offs far away");
        Assert.AreEqual(0.0, wide.mean().item<float>(), 0.001, "mean");

        var tight = TruncatedNormal.Fill(empty(200, 100), std: 1.0, a: -1.0, b: 1.0);
        Assert.IsTrue(tight.abs().max().item<float>() <= 1.0f, "inside [a, b]");
        Assert.AreEqual(0.5399, tight.std().item<float>(), 0.01, "std of N(0,1) truncated to [−1, 1]");
        Assert.IsTrue(tight.unique().output.shape[0] > 19000, "distinct values, not a constant fill");
    }
}
