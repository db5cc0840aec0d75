using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class MultiTaskLossTests
{
    static readonly TaskSpec[] Tasks = [TaskSpec.Segmentation(2, weight: 1f), TaskSpec.SaliencyTask(weight: 30f)];

    static Tensor[] Losses() => [torch.tensor(0.5f), torch.tensor(0.2f)];

    [TestMethod]
    public void Mtformer_mode_at_init_is_ten_times_the_weighted_sum()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks);
        Assert.AreEqual(LossWeighting.MtformerUncertainty, combiner.Mode);
        // s = 0: Σ w·10·L = 10·(1·0.5 + 30·0.2)
        Assert.AreEqual(65f, combiner.forward(Losses()).item<float>(), 1e-4f);
    }

    [TestMethod]
    public void Mtformer_mode_follows_the_formula_for_nonzero_s()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks);
        using (torch.no_grad())
            combiner.LogVariances.copy_(torch.tensor(new float[] { 1f, -0.5f }));
        var expected = 1 * 10 * Math.Exp(-1) * 0.5 + 1 + 30 * 10 * Math.Exp(0.5) * 0.2 - 0.5;
        Assert.AreEqual(expected, combiner.forward(Losses()).item<float>(), 1e-3);
    }

    [TestMethod]
    public void Uncertainty_mode_halves_the_weighted_uncertainty_terms()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks, LossWeighting.Uncertainty);
        using (torch.no_grad())
            combiner.LogVariances.copy_(torch.tensor(new float[] { 1f, -0.5f }));
        var expected = (Math.Exp(-1) * 1 * 0.5 + 1) / 2 + (Math.Exp(0.5) * 30 * 0.2 - 0.5) / 2;
        Assert.AreEqual(expected, combiner.forward(Losses()).item<float>(), 1e-4);
    }

    [TestMethod]
    public void Fixed_mode_is_the_weighted_sum_and_freezes_s()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks, LossWeighting.Fixed);
        Assert.AreEqual(6.5f, combiner.forward(Losses()).item<float>(), 1e-5f);
        Assert.IsFalse(combiner.LogVariances.requires_grad);
    }

    [TestMethod]
    public void Gradient_reaches_every_s_t()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks);
        var parameters = combiner.parameters().ToArray();
        Assert.HasCount(1, parameters);
        CollectionAssert.AreEqual(new long[] { 2 }, parameters[0].shape);
        combiner.forward(Losses()).backward();
        // ∂/∂s_t [w·10·e^{−s}·L + s] at s = 0 = 1 − 10·w·L
        var grad = combiner.LogVariances.grad!.data<float>().ToArray();
        Assert.AreEqual(1 - 10 * 0.5, grad[0], 1e-4);
        Assert.AreEqual(1 - 10 * 30 * 0.2, grad[1], 1e-3);
    }

    [TestMethod]
    public void Wrong_number_of_losses_lists_the_tasks()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks);
        var error = Assert.ThrowsExactly<ArgumentException>(() => combiner.forward([torch.tensor(1f)]));
        Assert.Contains("Segmentation, Saliency", error.Message);
    }
}
