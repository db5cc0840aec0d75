using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class TaskLossTests
{
    static Tensor T(float[] data, params long[] shape) => torch.tensor(data, shape);
    static Tensor Leaf(float[] data, params long[] shape) => torch.tensor(data, shape).requires_grad_(true);
    static double Softplus(double x) => Math.Log(1 + Math.Exp(x));

    [TestMethod]
    public void CrossEntropy_averages_over_non_ignored_pixels()
    {
        using var scope = torch.NewDisposeScope();
        // B=1, C=2, H=1, W=3; channel planes: c0 = [0, 2, 5], c1 = [0, 0, -5]
        var logits = Leaf([0, 2, 5, 0, 0, -5], 1, 2, 1, 3);
        var label = T([0, 1, 255], 1, 1, 1, 3);
        var loss = TaskLoss.Compute(TaskSpec.Segmentation(2), logits, label);
        // pixel 0: -log(1/2); pixel 1: -log(e^0/(e^2+e^0)) = log(1+e^2); pixel 2 ignored
        var expected = (Math.Log(2) + Softplus(2)) / 2;
        Assert.AreEqual(expected, loss.item<float>(), 1e-5);
        Assert.AreEqual(0, loss.dim());
    }

    [TestMethod]
    public void All_ignored_batch_gives_zero_loss_with_finite_zero_gradient()
    {
        using var scope = torch.NewDisposeScope();
        var cases = new (TaskSpec Spec, float Ignore)[]
        {
            (TaskSpec.Segmentation(3), 255), (TaskSpec.PartsOf(3), 255), (TaskSpec.DepthTask(), 0),
            (TaskSpec.SaliencyTask(), 255), (TaskSpec.BoundariesTask(), 255), (TaskSpec.NormalsTask(), 0),
        };
        foreach (var (spec, ignore) in cases)
        {
            var output = Leaf(Enumerable.Range(0, spec.Channels * 4).Select(i => i * 0.37f - 1).ToArray(), 1, spec.Channels, 2, 2);
            var label = torch.full(new long[] { 1, spec.LabelPlanes, 2, 2 }, ignore);
            var loss = TaskLoss.Compute(spec, output, label);
            Assert.AreEqual(0f, loss.item<float>(), $"{spec.Kind}");
            Assert.IsTrue(loss.requires_grad, $"{spec.Kind}: loss must stay connected to the output");
            loss.backward();
            Assert.IsNotNull(output.grad, $"{spec.Kind}");
            Assert.IsTrue(output.grad.isfinite().all().item<bool>(), $"{spec.Kind}: gradient must be finite");
            Assert.AreEqual(0f, output.grad.abs().sum().item<float>(), $"{spec.Kind}");
        }
    }

    [TestMethod]
    public void Depth_L1_skips_zero_and_255_labels()
    {
        using var scope = torch.NewDisposeScope();
        var prediction = Leaf([1, 2, 3, 4], 1, 1, 2, 2);
        var label = T([1.5f, 0, 255, 3], 1, 1, 2, 2);
        var loss = TaskLoss.Compute(TaskSpec.DepthTask(), prediction, label);
        Assert.AreEqual((0.5 + 1.0) / 2, loss.item<float>(), 1e-6);
        loss.backward();
        // d|x−y|/dx / #valid on valid pixels, 0 on invalid ones
        CollectionAssert.AreEqual(new[] { -0.5f, 0f, 0f, 0.5f }, prediction.grad!.data<float>().ToArray());
    }

    [TestMethod]
    public void Saliency_balanced_BCE_follows_the_HED_formula_with_batch_weight()
    {
        using var scope = torch.NewDisposeScope();
        var logits = Leaf([0, 2, -1, 3], 1, 1, 2, 2);
        var label = T([1, 0, 0, 255], 1, 1, 2, 2);
        var loss = TaskLoss.Compute(TaskSpec.SaliencyTask(), logits, label);
        // w = #neg / #valid = 2/3; bce(x, 1) = softplus(−x), bce(x, 0) = softplus(x); divisor = 4 label elements
        double w = 2.0 / 3;
        var expected = (w * Softplus(0) + (1 - w) * (Softplus(2) + Softplus(-1))) / 4;
        Assert.AreEqual(expected, loss.item<float>(), 1e-6);
    }

    [TestMethod]
    public void Saliency_weight_follows_the_batch_balance()
    {
        using var scope = torch.NewDisposeScope();
        var logits = T([0.5f, -0.5f, 1, 2], 1, 1, 2, 2);
        var label = T([1, 1, 1, 0], 1, 1, 2, 2);      // w = 1/4
        var loss = TaskLoss.Compute(TaskSpec.SaliencyTask(), logits, label);
        double w = 0.25;
        var expected = (w * (Softplus(-0.5) + Softplus(0.5) + Softplus(-1)) + (1 - w) * Softplus(2)) / 4;
        Assert.AreEqual(expected, loss.item<float>(), 1e-6);
    }

    [TestMethod]
    public void Boundary_BCE_weights_positives_095_and_ignores_255()
    {
        using var scope = torch.NewDisposeScope();
        var logits = Leaf([0, 2, -1, 3], 1, 1, 2, 2);
        var label = T([1, 0, 0, 255], 1, 1, 2, 2);
        var loss = TaskLoss.Compute(TaskSpec.BoundariesTask(), logits, label);
        var expected = (0.95 * Softplus(0) + 0.05 * (Softplus(2) + Softplus(-1))) / 4;
        Assert.AreEqual(expected, loss.item<float>(), 1e-6);
        loss.backward();
        Assert.AreEqual(0f, logits.grad!.data<float>()[3], "the ignored pixel gets no gradient");
    }

    [TestMethod]
    public void Normals_L1_normalises_prediction_and_skips_invalid_pixels()
    {
        using var scope = torch.NewDisposeScope();
        // B=1, 3 planes, H=1, W=3. Pixel 0: pred (2,0,0) → (1,0,0), gt (0,1,0): |1|+|−1|+0 = 2.
        // Pixel 1: gt zero vector (invalid). Pixel 2: gt 255 (invalid).
        var prediction = Leaf([2, 1, 1, 0, 1, 1, 0, 1, 1], 1, 3, 1, 3);
        var label = T([0, 0, 255, 1, 0, 255, 0, 0, 255], 1, 3, 1, 3);
        var loss = TaskLoss.Compute(TaskSpec.NormalsTask(), prediction, label);
        Assert.AreEqual(2.0 / 3, loss.item<float>(), 1e-6);
    }

    [TestMethod]
    public void Compute_leaves_only_its_result_in_the_callers_scope()
    {
        using var scope = torch.NewDisposeScope();
        var logits = T([0, 2, -1, 3], 1, 1, 2, 2);
        var label = T([1, 0, 0, 255], 1, 1, 2, 2);
        foreach (var spec in new[] { TaskSpec.SaliencyTask(), TaskSpec.BoundariesTask(), TaskSpec.DepthTask() })
        {
            var before = scope.DisposablesCount;
            using var loss = TaskLoss.Compute(spec, logits, label);
            Assert.AreEqual(before + 1, scope.DisposablesCount, $"{spec.Kind}");
        }
    }

    [TestMethod]
    public void Mismatched_label_shape_names_the_task()
    {
        using var scope = torch.NewDisposeScope();
        var output = torch.zeros(1, 3, 2, 2);
        var label = torch.zeros(1, 1, 2, 2);
        var error = Assert.ThrowsExactly<ArgumentException>(() => TaskLoss.Compute(TaskSpec.NormalsTask("N"), output, label));
        Assert.Contains("'N'", error.Message);
        Assert.Contains("[1, 3, 2, 2]", error.Message);
    }
}
