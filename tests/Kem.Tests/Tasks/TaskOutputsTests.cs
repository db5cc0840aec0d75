using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class TaskOutputsTests
{
    [TestMethod]
    public void Postprocess_applies_sigmoid_to_saliency_and_boundaries()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(new float[] { 0, 2 }, new long[] { 1, 1, 1, 2 });
        foreach (var spec in new[] { TaskSpec.SaliencyTask(), TaskSpec.BoundariesTask() })
        {
            var p = TaskOutputs.Postprocess(spec, logits).data<float>().ToArray();
            Assert.AreEqual(0.5f, p[0], 1e-6f);
            Assert.AreEqual(1 / (1 + Math.Exp(-2)), p[1], 1e-6);
        }
    }

    [TestMethod]
    public void Postprocess_normalises_normals_over_channels()
    {
        using var scope = torch.NewDisposeScope();
        // planes x = [3, 0], y = [4, 0], z = [0, 0]: pixel 0 = (3, 4, 0) → (0.6, 0.8, 0); pixel 1 = 0 stays 0 (eps, no NaN)
        var output = torch.tensor(new float[] { 3, 0, 4, 0, 0, 0 }, new long[] { 1, 3, 1, 2 });
        var n = TaskOutputs.Postprocess(TaskSpec.NormalsTask(), output).data<float>().ToArray();
        CollectionAssert.AreEqual(new[] { 0.6f, 0f, 0.8f, 0f, 0f, 0f }, n);
    }

    [TestMethod]
    public void Postprocess_keeps_logits_and_depth_values()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(new float[] { 1, -2, 3, 4 }, new long[] { 1, 2, 1, 2 });
        var scores = TaskOutputs.Postprocess(TaskSpec.Segmentation(2), logits);
        CollectionAssert.AreEqual(logits.data<float>().ToArray(), scores.data<float>().ToArray());
        var depth = torch.tensor(new float[] { 1.5f, 0.25f }, new long[] { 1, 1, 1, 2 });
        CollectionAssert.AreEqual(new[] { 1.5f, 0.25f }, TaskOutputs.Postprocess(TaskSpec.DepthTask(), depth).data<float>().ToArray());
    }

    [TestMethod]
    public void PredictedLabel_is_int32_argmax_over_channels()
    {
        using var scope = torch.NewDisposeScope();
        // c0 = [1, 3], c1 = [-2, 4] → argmax [0, 1]
        var logits = torch.tensor(new float[] { 1, 3, -2, 4 }, new long[] { 1, 2, 1, 2 });
        var labels = TaskOutputs.PredictedLabel(TaskSpec.Segmentation(2), logits);
        Assert.AreEqual(ScalarType.Int32, labels.dtype);
        CollectionAssert.AreEqual(new long[] { 1, 1, 2 }, labels.shape);
        CollectionAssert.AreEqual(new[] { 0, 1 }, labels.data<int>().ToArray());
    }

    [TestMethod]
    public void PredictedLabel_refuses_regression_tasks()
    {
        using var scope = torch.NewDisposeScope();
        var error = Assert.ThrowsExactly<ArgumentException>(() => TaskOutputs.PredictedLabel(TaskSpec.DepthTask("D"), torch.zeros(1, 1, 2, 2)));
        Assert.Contains("'D'", error.Message);
    }
}
