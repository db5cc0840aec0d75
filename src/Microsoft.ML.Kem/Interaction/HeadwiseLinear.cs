using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// h independent Lin(d_h→d_h), one per head, applied to B×h×L×d_h in one batched matmul
/// (sKEM's <c>EtfInputProjection</c>, MODEL-SPEC §3). The group axis may be any: KEM's <c>PerTaskWriteQuery</c> uses
/// T groups of width d on B×T×n×d. Initialised like <c>nn.Linear</c>: U(−1/√d_h, 1/√d_h).
/// </summary>
public sealed class HeadwiseLinear : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;   // h×d_h(out)×d_h(in)
    private readonly Parameter bias;     // h×1×d_h

    /// <summary>Creates <paramref name="heads"/> projections of width <paramref name="headWidth"/>.</summary>
    public HeadwiseLinear(string name, int heads, int headWidth) : base(name)
    {
        var bound = 1.0 / Math.Sqrt(headWidth);
        weight = new Parameter(empty(heads, headWidth, headWidth).uniform_(-bound, bound));
        bias = new Parameter(empty(heads, 1, headWidth).uniform_(-bound, bound));
        RegisterComponents();
    }

    /// <summary>x B×h×L×d_h → B×h×L×d_h, head i through its own Lin(d_h→d_h).</summary>
    public override Tensor forward(Tensor x) => x.matmul(weight.transpose(-2, -1)) + bias;
}
