using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
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
    public void Dwa_mode_is_the_sum_of_w_lambda_L()
    {
        using var scope = torch.NewDisposeScope();
        using var combiner = new MultiTaskLoss("loss", Tasks, LossWeighting.Dwa);
        Assert.AreEqual(6.5f, combiner.forward(Losses()).item<float>(), 1e-5f, "λ = 1 until set: the weighted sum");
        combiner.SetDwaWeights([1.5, 0.5]);
        // 1·1.5·0.5 + 30·0.5·0.2
        Assert.AreEqual(3.75f, combiner.forward(Losses()).item<float>(), 1e-5f);
        CollectionAssert.AreEqual(new[] { 1.5f, 0.5f }, combiner.DwaWeights.data<float>().ToArray());
    }

    [TestMethod]
    public void Dwa_mode_adds_no_parameter_and_no_state()
    {
        using var fixedLoss = new MultiTaskLoss("loss", Tasks, LossWeighting.Fixed);
        using var dwa = new MultiTaskLoss("loss", Tasks, LossWeighting.Dwa);
        using var mtformer = new MultiTaskLoss("loss", Tasks);
        static long Trainable(MultiTaskLoss loss)
        {
            using var net = torch.nn.Linear(3, 2);
            using var optimizer = new FlatAdamW(net, loss.parameters(), bf16: false);
            return optimizer.Count;
        }
        Assert.AreEqual(Trainable(fixedLoss), Trainable(dwa), "the optimiser sees the same parameters as with Fixed");
        Assert.AreEqual(Trainable(fixedLoss) + 2, Trainable(mtformer), "(the learned s_t would show here)");
        Assert.IsFalse(dwa.LogVariances.requires_grad);
        Assert.AreEqual(fixedLoss.parameters().Sum(p => p.numel()), dwa.parameters().Sum(p => p.numel()), "λ is not a parameter");
        CollectionAssert.AreEqual(fixedLoss.state_dict().Keys.ToArray(), dwa.state_dict().Keys.ToArray(), "the same layout as Fixed");
    }

    [TestMethod]
    public void Dwa_weights_follow_Module_to_and_are_refused_in_other_modes()
    {
        using var dwa = new MultiTaskLoss("loss", Tasks, LossWeighting.Dwa);
        dwa.to(ScalarType.Float64);
        dwa.SetDwaWeights([0.25, 1.75]);
        Assert.AreEqual(ScalarType.Float64, dwa.DwaWeights.dtype);
        using (var scope = torch.NewDisposeScope())
            Assert.AreEqual(0.25 * 0.5 + 30 * 1.75 * 0.2, dwa.forward([torch.tensor(0.5), torch.tensor(0.2)]).item<double>(), 1e-12);
        Assert.ThrowsExactly<ArgumentException>(() => dwa.SetDwaWeights([1.0]));
        using var fixedLoss = new MultiTaskLoss("loss", Tasks, LossWeighting.Fixed);
        Assert.ThrowsExactly<InvalidOperationException>(() => fixedLoss.SetDwaWeights([1.0, 1.0]));
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
