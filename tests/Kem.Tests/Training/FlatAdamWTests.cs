using Kem.Tests.Interaction;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Tests.Training;

[TestClass]
public sealed class FlatAdamWTests
{
    private static (nn.Module<Tensor, Tensor> Module, Parameter Extra) Make()
    {
        manual_seed(3);
        var module = nn.Sequential(("fc", nn.Linear(5, 4)), ("norm", nn.LayerNorm(4)), ("out", nn.Linear(4, 3)));
        return (module, new Parameter(tensor(new float[] { 0.1f, -0.2f })));
    }

    private static Tensor Loss(nn.Module<Tensor, Tensor> module, Parameter extra, int step)
    {
        var x = TensorAssert.Randn(100 + step, 6, 5);
        return (module.call(x).pow(2).sum() * 3).mul(extra.exp().sum());
    }

    [TestMethod]
    public void Steps_match_torch_AdamW_after_clip_grad_norm()
    {
        var (reference, referenceExtra) = Make();
        var (flat, flatExtra) = Make();
        var referenceParameters = reference.parameters().Append(referenceExtra).ToList();
        using var adamW = optim.AdamW(referenceParameters, 1e-2, 0.9, 0.999, 1e-8, 0.05);
        using var fused = new FlatAdamW(flat, [flatExtra], bf16: false, 0.9, 0.999, 1e-8, 0.05);
        for (int step = 0; step < 4; step++)
        {
            using var scope = NewDisposeScope();
            double lr = 1e-2 * (step + 1);
            foreach (var g in adamW.ParamGroups) g.LearningRate = lr;
            adamW.zero_grad();
            Loss(reference, referenceExtra, step).backward();
            nn.utils.clip_grad_norm_(referenceParameters, 0.5);   // clipping on, as in the loop
            adamW.step();

            fused.ZeroGrad();
            Loss(flat, flatExtra, step).backward();
            fused.Step(lr, 0.5);
        }
        foreach (var (a, b) in reference.parameters().Append(referenceExtra).Zip(flat.parameters().Append(flatExtra)))
            TensorAssert.Close(a, b, 1e-5, "parameter after four steps");
    }

    [TestMethod]
    public void Parameters_and_gradients_are_views_into_the_flat_buffers()
    {
        var (module, extra) = Make();
        using var fused = new FlatAdamW(module, [extra], bf16: false);
        Assert.AreEqual(module.parameters().Sum(p => p.numel()) + extra.numel(), fused.Count);
        using (var scope = NewDisposeScope())
        {
            fused.ZeroGrad();
            Loss(module, extra, 0).backward();
        }
        Assert.IsTrue(fused.GradientsAreAliased(), "backward wrote into the flat gradient buffer");
        module.zero_grad();                    // set_to_none: autograd will make fresh gradients
        using (var scope = NewDisposeScope()) Loss(module, extra, 1).backward();
        Assert.IsFalse(fused.GradientsAreAliased(), "a gradient set to none is detected");
    }

    [TestMethod]
    public void Bf16_mode_casts_the_module_and_follows_the_fp32_reference()
    {
        var (reference, referenceExtra) = Make();
        var (module, extra) = Make();
        using var fp32 = new FlatAdamW(reference, [referenceExtra], bf16: false, weightDecay: 0.01);
        using var bf16 = new FlatAdamW(module, [extra], bf16: true, weightDecay: 0.01);
        Assert.IsTrue(module.parameters().All(p => p.dtype == ScalarType.BFloat16), "module weights are bf16");
        Assert.AreEqual(ScalarType.Float32, extra.dtype, "extra parameters stay fp32");
        var before = module.parameters().Select(p => p.detach().clone()).ToArray();
        for (int step = 0; step < 3; step++)
        {
            using var scope = NewDisposeScope();
            var x = TensorAssert.Randn(100 + step, 6, 5);
            fp32.ZeroGrad();
            (reference.call(x).pow(2).sum() * referenceExtra.exp().sum()).backward();
            fp32.Step(1e-2, 1.0);
            bf16.ZeroGrad();
            (module.call(x.to(ScalarType.BFloat16)).to(ScalarType.Float32).pow(2).sum() * extra.exp().sum()).backward();
            bf16.Step(1e-2, 1.0);
        }
        Assert.IsTrue(bf16.GradientsAreAliased(), "bf16 gradients are views into the flat bf16 buffer");
        Assert.IsTrue(module.parameters().Zip(before).All(pair => !pair.First.eq(pair.Second).all().item<bool>()), "every bf16 weight moved");
        foreach (var (a, b) in reference.parameters().Zip(module.parameters()))
            TensorAssert.Close(a, b.to(ScalarType.Float32), 0.03, "bf16 weights track the fp32 run");
        TensorAssert.Close(referenceExtra, extra, 1e-2, "fp32 extra parameter");
    }
}
