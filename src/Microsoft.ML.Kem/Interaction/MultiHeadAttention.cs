using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Multi-head attention with its own projections: queries Lin(d→d), keys and values one fused Lin(d_kv→2d)
/// (d_kv = d unless given), output Lin(d→d). forward(query B×Lq×d, keyValue B×Lk×d_kv) → B×Lq×d; self-attention is
/// forward(x, x). Used by cross-task attention (MODEL-SPEC §4), the transformer blocks and the sequential design (§5).
/// </summary>
public sealed class MultiHeadAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear query;
    private readonly Linear keyValue;
    private readonly Linear output;
    private readonly int heads;
    private readonly float? scale;

    /// <summary>Creates the projections for width <paramref name="width"/> split into <paramref name="heads"/> heads.</summary>
    /// <param name="name">Module name.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h; must divide d.</param>
    /// <param name="scale">Score scale; null means 1/√d_h.</param>
    /// <param name="keyValueWidth">Width d_kv of the key/value tokens when it differs from d (cross-scale attention); null means d.</param>
    public MultiHeadAttention(string name, int width, int heads, float? scale = null, int? keyValueWidth = null) : base(name)
    {
        if (heads < 1 || width % heads != 0)
            throw new ArgumentException($"Width {width} must be a positive multiple of heads {heads}.", nameof(heads));
        this.heads = heads;
        this.scale = scale;
        query = nn.Linear(width, width);
        keyValue = nn.Linear(keyValueWidth ?? width, 2 * width);
        output = nn.Linear(width, width);
        RegisterComponents();
    }

    /// <summary>Attends from <paramref name="query"/> (B×Lq×d) to <paramref name="keyValue"/> (B×Lk×d_kv); returns B×Lq×d.</summary>
    public override Tensor forward(Tensor query, Tensor keyValue) => Attend(query, keyValue, null);

    /// <summary>
    /// <see cref="forward"/> with an additive score <paramref name="bias"/> broadcastable to B×h×Lq×Lk (relative position bias
    /// plus shift mask of the `Window` blocks, MODEL-SPEC §1); null means none.
    /// </summary>
    public Tensor Attend(Tensor query, Tensor keyValue, Tensor? bias)
    {
        Tensor[] qkv;
        if (ReferenceEquals(query, keyValue))
        {
            // Self-attention: one GEMM with [Wq | Wk | Wv] (the parameters stay the two Linear layers), B×L×3d → 3 × B×L×d
            qkv = FusedLinear.Linear(query,
                cat([this.query.weight!, this.keyValue.weight!], 0), cat([this.query.bias!, this.keyValue.bias!], 0)).chunk(3, -1);
        }
        else
        {
            var kv = this.keyValue.Apply(keyValue).chunk(2, -1);               // 2 × B×Lk×d
            qkv = [this.query.Apply(query), kv[0], kv[1]];
        }
        var q = AttentionKernel.SplitHeads(qkv[0], heads);                    // B×h×Lq×d_h
        var k = AttentionKernel.SplitHeads(qkv[1], heads);                    // B×h×Lk×d_h
        var v = AttentionKernel.SplitHeads(qkv[2], heads);
        return output.Apply(AttentionKernel.MergeHeads(AttentionKernel.Attend(q, k, v, scale, bias)));
    }
}
