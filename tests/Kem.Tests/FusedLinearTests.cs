using Kem.Tests.Interaction;
using Microsoft.ML.Kem;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests;

/// <summary>
/// FusedLinear: linear layers on inputs of more than two axes run on the flattened rows (one fused product instead of
/// TorchSharp's product and in-place bias add) and give what the layer itself gives, gradients included; the layer is
/// still called, so its hooks run.
/// </summary>
[TestClass]
public sealed class FusedLinearTests
{
    [TestMethod]
    public void Apply_equals_the_layer_with_its_gradients()
    {
        using var scope = NewDisposeScope();
        using var layer = nn.Linear(6, 5, dtype: ScalarType.Float64);
        var x = TensorAssert.Randn(1, 2, 3, 4, 6).to(ScalarType.Float64).requires_grad_(true);
        var g = TensorAssert.Randn(2, 2, 3, 4, 5).to(ScalarType.Float64);
        var fused = layer.Apply(x);
        var plain = layer.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 3, 4, 5 }, fused.shape);
        TensorAssert.Close(plain, fused, 1e-12, "output");
        Tensor[] inputs = [x, layer.weight!, layer.bias!];
        var a = autograd.grad([(fused * g).sum()], inputs);
        var b = autograd.grad([(plain * g).sum()], inputs);
        for (int i = 0; i < inputs.Length; i++) TensorAssert.Close(b[i], a[i], 1e-12, $"gradient {i}");
    }

    [TestMethod]
    public void Apply_calls_the_layer_so_its_hooks_run_on_the_rows()
    {
        using var scope = NewDisposeScope();
        using var layer = nn.Linear(6, 5);
        var seen = new List<long[]>();
        layer.register_forward_hook((_, input, output) => { seen.Add(input.shape); return output; });
        layer.Apply(TensorAssert.Randn(3, 2, 7, 6));
        layer.Apply(TensorAssert.Randn(4, 7, 6));
        Assert.HasCount(2, seen);
        CollectionAssert.AreEqual(new long[] { 14, 6 }, seen[0], "B×L×d runs as (B·L)×d");
        CollectionAssert.AreEqual(new long[] { 7, 6 }, seen[1], "a 2-D input as it is");
    }

    [TestMethod]
    public void Linear_takes_strided_inputs_and_no_bias()
    {
        using var scope = NewDisposeScope();
        var weight = TensorAssert.Randn(5, 4, 6);
        var bias = TensorAssert.Randn(6, 4);
        var strided = TensorAssert.Randn(7, 3, 6, 2).transpose(1, 2);                      // 3×2×6, not contiguous
        TensorAssert.Close(nn.functional.linear(strided, weight, bias), FusedLinear.Linear(strided, weight, bias), 1e-6, "strided rows");
        var rows = TensorAssert.Randn(8, 2, 9, 6).narrow(-1, 0, 6);
        TensorAssert.Close(nn.functional.linear(rows, weight), FusedLinear.Linear(rows, weight), 1e-6, "no bias");
        CollectionAssert.AreEqual(new long[] { 3, 2, 4 }, FusedLinear.Linear(strided, weight, bias).shape);
    }

    [TestMethod]
    public void An_empty_batch_keeps_its_shape()
    {
        using var scope = NewDisposeScope();
        using var layer = nn.Linear(6, 5);
        CollectionAssert.AreEqual(new long[] { 0, 7, 5 }, layer.Apply(zeros(0, 7, 6)).shape);
        CollectionAssert.AreEqual(new long[] { 0, 7, 5 }, FusedLinear.Linear(zeros(0, 7, 6), layer.weight!, layer.bias).shape);
    }
}
