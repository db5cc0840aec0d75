using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// The loop's bf16 scheme before <c>Microsoft.ML.Kem.Training.FlatAdamW</c> (per-parameter masters and copies), kept only
/// for the step benchmark's "legacy" rows. bf16 training by hand (TorchSharp 0.107 has no autocast): the module runs forward and backward in bfloat16,
/// the optimizer owns fp32 master copies of the trainable parameters. Each step: bf16 grads → fp32 master grads,
/// optimizer step on the masters, masters → bf16 module weights. bf16 needs no loss scaling (fp32 exponent range).
/// </summary>
internal sealed class MixedPrecision : IDisposable
{
    private readonly Parameter[] working;
    private readonly Parameter[] masters;
    private readonly string[] names;

    /// <summary>Takes fp32 master copies of <paramref name="module"/>'s trainable parameters, then casts the module to bf16.</summary>
    public MixedPrecision(nn.Module module)
    {
        var trainable = module.named_parameters().Where(p => p.parameter.requires_grad).ToArray();
        names = trainable.Select(p => p.name).ToArray();
        working = trainable.Select(p => p.parameter).ToArray();
        masters = working.Select(p => new Parameter(p.detach().to(ScalarType.Float32).clone(), requires_grad: true)).ToArray();
        module.to(ScalarType.BFloat16);
        working = module.parameters().Where(p => p.requires_grad).ToArray();
    }

    /// <summary>The fp32 parameters to give to the optimizer.</summary>
    public IReadOnlyList<Parameter> MasterParameters => masters;

    /// <summary>Copies the bf16 gradients into fp32 master gradients.</summary>
    public void GradientsToMasters()
    {
        using var _ = torch.no_grad();
        for (int i = 0; i < working.Length; i++)
        {
            var g = working[i].grad;
            if (g is null) { masters[i].grad = null; continue; }
            if (masters[i].grad is null) masters[i].grad = g.to(ScalarType.Float32).DetachFromDisposeScope();
            else masters[i].grad!.copy_(g);
        }
    }

    /// <summary>Writes the updated fp32 masters back into the bf16 module.</summary>
    public void MastersToModule()
    {
        using var _ = torch.no_grad();
        for (int i = 0; i < working.Length; i++) working[i].copy_(masters[i]);
    }

    /// <summary>The fp32 masters by parameter name (state-dict keys), for snapshots that keep full precision.</summary>
    public IEnumerable<(string Name, Tensor Master)> NamedMasters => names.Zip(masters, (n, m) => (n, (Tensor)m));

    /// <summary>Casts <paramref name="module"/> back to fp32 and loads the fp32 masters into it (not the bf16-rounded weights).</summary>
    public void RestoreFp32(nn.Module module)
    {
        module.to(ScalarType.Float32);
        using var _ = torch.no_grad();
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, master) in NamedMasters) parameters[name].copy_(master);
    }

    /// <summary>Zeroes the bf16 gradients.</summary>
    public void ZeroModuleGradients()
    {
        foreach (var p in working) p.grad?.zero_();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var m in masters) m.Dispose();
    }
}
