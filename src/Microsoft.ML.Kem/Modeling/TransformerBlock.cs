using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Pre-norm transformer block with global attention (MODEL-SPEC §1, "Transformer block", `Global`):
/// x ← x + Attn(LN(x)); x ← x + MLP(LN(x)), MLP = Lin(d→rd) → GELU → Lin(rd→d).
/// With <see cref="Dropout"/> p &gt; 0 (the Sort-of-CLEVR model, MODEL-SPEC §13), in training mode only: dropout on the
/// attention output and, inside the MLP, after GELU and after the second linear (as PyTorch's TransformerEncoderLayer,
/// without its dropout on the attention weights); eval mode and p = 0 compute exactly the block above.
/// </summary>
public sealed class TransformerBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly MultiHeadAttention attn;
    private readonly LayerNorm norm2;
    private readonly Linear fc1;
    private readonly GELU act;
    private readonly Linear fc2;

    /// <summary>Creates a block of width <paramref name="width"/> with <paramref name="heads"/> heads and dropout probability <paramref name="dropout"/> (0: none).</summary>
    public TransformerBlock(string name, int width, int heads, int mlpRatio = 4, double dropout = 0) : base(name)
    {
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "The dropout probability must be in [0, 1) (0.1 in MODEL-SPEC §13).");
        Dropout = dropout;
        norm1 = nn.LayerNorm(width);
        attn = new MultiHeadAttention("attn", width, heads);
        norm2 = nn.LayerNorm(width);
        fc1 = nn.Linear(width, (long)width * mlpRatio);
        act = nn.GELU();
        fc2 = nn.Linear((long)width * mlpRatio, width);
        RegisterComponents();
    }

    /// <summary>Dropout probability p, applied in training mode only (0: none).</summary>
    public double Dropout { get; }

    /// <summary>x: B×n×d → B×n×d.</summary>
    public override Tensor forward(Tensor x)
    {
        var h = norm1.forward(x);
        x = x + Drop(attn.forward(h, h));
        return x + Drop(fc2.Apply(Drop(act.forward(fc1.Apply(norm2.forward(x))))));
    }

    private Tensor Drop(Tensor x) => Dropout > 0 && training ? nn.functional.dropout(x, Dropout, training: true) : x;

    /// <summary>A sequence of <paramref name="depth"/> blocks (identity when 0), each with dropout probability <paramref name="dropout"/>.</summary>
    public static nn.Module<Tensor, Tensor> Stack(string name, int depth, int width, int heads, int mlpRatio, double dropout = 0)
    {
        var blocks = Enumerable.Range(0, depth)
            .Select(i => ((string, nn.Module<Tensor, Tensor>))($"{i}", new TransformerBlock($"block{i}", width, heads, mlpRatio, dropout)))
            .ToArray();
        return depth == 0 ? nn.Identity() : nn.Sequential(blocks);
    }
}
