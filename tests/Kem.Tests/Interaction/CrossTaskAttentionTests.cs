using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;
using static Kem.Tests.Interaction.InteractionFixtures;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class CrossTaskAttentionTests
{
    [TestMethod]
    [DataRow("CrossAttention", 2)]
    [DataRow("CrossAttention", 3)]
    [DataRow("CrossAttentionTaskEmbedding", 3)]
    public void Every_parameter_gets_a_gradient_and_the_shape_is_kept(string variant, int tasks)
    {
        using var module = Create(variant, tasks);
        Assert.IsInstanceOfType<CrossTaskAttention>(module);
        using var scope = NewDisposeScope();
        var x = Tokens(tasks: tasks);
        var output = module.call(x);
        CollectionAssert.AreEqual(x.shape, output.shape, "X' has the shape of X");
        (output * TensorAssert.Randn(9, output.shape)).sum().backward();
        foreach (var (name, parameter) in module.named_parameters())
        {
            Assert.IsNotNull(parameter.grad, $"{name} has no gradient");
            Assert.IsTrue(parameter.grad.abs().max().item<float>() > 0, $"{name} has an all-zero gradient");
        }
    }

    [TestMethod]
    public void A_target_task_reads_only_the_other_tasks_tokens()
    {
        // When every token of task 1 is the same vector, task 0's attention over them is uniform and returns
        // the same value for each of task 0's tokens, whatever task 0's own tokens are: X'_0 − X_0 is constant.
        using var module = Create("CrossAttention", tasks: 2);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var task0 = TensorAssert.Randn(1, Batch, 1, PerTask, Width);
        var task1 = TensorAssert.Randn(2, Batch, 1, 1, Width).expand(Batch, 1, PerTask, Width);
        var x = cat([task0, task1], 1);
        var update0 = (module.call(x) - x).select(1, 0);                      // B×n×d
        TensorAssert.Close(update0.narrow(1, 0, 1).expand_as(update0), update0, 1e-5, "update of task 0 per token");
        var varied = cat([task0, TensorAssert.Randn(3, Batch, 1, PerTask, Width)], 1);
        var variedUpdate0 = (module.call(varied) - varied).select(1, 0);
        Assert.IsTrue(TensorAssert.MaxAbsDiff(variedUpdate0.narrow(1, 0, 1).expand_as(variedUpdate0), variedUpdate0) > 1e-3, "varied task-1 tokens give varied updates");
    }

    [TestMethod]
    public void Every_target_task_has_its_own_projections()
    {
        using var module = Create("CrossAttention", tasks: 3);
        var names = module.named_parameters().Select(p => p.name).ToArray();
        foreach (var t in Enumerable.Range(0, 3))
            Assert.IsTrue(names.Contains($"targets.{t}.attention.query.weight"), $"target {t}: {string.Join(", ", names)}");
    }
}
