using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Pre-norm transformer block with global attention (MODEL-SPEC §1, "Transformer block", `Global`):
/// x ← x + Attn(LN(x)); x ← x + MLP(LN(x)), MLP = Lin(d→rd) → GELU → Lin(rd→d).
/// </summary>
public sealed class TransformerBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly MultiHeadAttention attn;
    private readonly LayerNorm norm2;
    private readonly Linear fc1;
    private readonly GELU act;
    private readonly Linear fc2;

    /// <summary>Creates a block of width <paramref name="width"/> with <paramref name="heads"/> heads.</summary>
    public TransformerBlock(string name, int width, int heads, int mlpRatio = 4) : base(name)
    {
        norm1 = nn.LayerNorm(width);
        attn = new MultiHeadAttention("attn", width, heads);
        norm2 = nn.LayerNorm(width);
        fc1 = nn.Linear(width, (long)width * mlpRatio);
        act = nn.GELU();
        fc2 = nn.Linear((long)width * mlpRatio, width);
        RegisterComponents();
    }

    /// <summary>x: B×n×d → B×n×d.</summary>
    public override Tensor forward(Tensor x)
    {
        var h = norm1.forward(x);
        x = x + attn.forward(h, h);
        return x + fc2.forward(act.forward(fc1.forward(norm2.forward(x))));
    }

    /// <summary>A sequence of <paramref name="depth"/> blocks (identity when 0).</summary>
    public static nn.Module<Tensor, Tensor> Stack(string name, int depth, int width, int heads, int mlpRatio)
    {
        var blocks = Enumerable.Range(0, depth)
            .Select(i => ((string, nn.Module<Tensor, Tensor>))($"{i}", new TransformerBlock($"block{i}", width, heads, mlpRatio)))
            .ToArray();
        return depth == 0 ? nn.Identity() : nn.Sequential(blocks);
    }
}
