using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Stage (a): normalised image B×3×H×W → shared tokens Z, B×n×d on the stride-s grid, row-major (MODEL-SPEC §1).
/// `ConvStem`: 3× [conv 3×3 stride 2, BN, ReLU] with 32/64/d channels; `TinyViT`: conv p×p stride p;
/// `MultiScale`, `TinySwin`, `SwinT`: a <see cref="MultiScaleBackbone"/> fused onto the stride-s grid (<see cref="ScaleFusionStem"/>, a1–a7).
/// All then add the fixed 2-D sine-cosine position embedding (which the global task blocks need), run the BackboneDepth
/// blocks (the neck a8: `Window` blocks with the second shifted for the Swin kinds, global ones otherwise) and a final LN.
/// </summary>
public sealed class Backbone : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> stem;
    private readonly Tensor positions;
    private readonly nn.Module<Tensor, Tensor> blocks;
    private readonly LayerNorm norm;

    /// <summary>Builds the backbone described by <paramref name="o"/>.</summary>
    public Backbone(string name, MultiTaskNetworkOptions o) : base(name)
    {
        stem = o.Backbone switch
        {
            BackboneKind.ConvStem => nn.Sequential(
                ("conv1", nn.Conv2d(3, 32, 3, stride: 2, padding: 1, bias: false)), ("bn1", nn.BatchNorm2d(32)), ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(32, 64, 3, stride: 2, padding: 1, bias: false)), ("bn2", nn.BatchNorm2d(64)), ("relu2", nn.ReLU()),
                ("conv3", nn.Conv2d(64, o.Width, 3, stride: 2, padding: 1))),
            BackboneKind.TinyViT => nn.Conv2d(3, o.Width, o.TokenStride, stride: o.TokenStride),
            BackboneKind.MultiScale or BackboneKind.TinySwin or BackboneKind.SwinT => new ScaleFusionStem("stem", o),
            _ => throw new ArgumentOutOfRangeException(nameof(o), o.Backbone, "Unknown backbone."),
        };
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        positions = PositionEmbedding.SineCosine2D(rows, cols, o.Width);
        blocks = SwinBlock.Stack("blocks", o.NeckAttention, o.BackboneDepth, rows, cols, o.Width, o.Heads, o.TokenWindow, o.MlpRatio);
        norm = nn.LayerNorm(o.Width);
        RegisterComponents();
    }

    /// <summary>
    /// True for the parameters that pre-trained weights fill and <see cref="MultiTaskNetworkOptions.FreezeBackbone"/> freezes,
    /// by backbone state name (without <c>backbone.</c>). Swin kinds: a1–a5 only (patch embedding, stages, merging); the a6
    /// norms, the a7 fusion, the neck a8 and the final LN always train (MODEL-SPEC §1). Other kinds: the whole backbone.
    /// </summary>
    public static bool IsPretrained(BackboneKind kind, string name) => kind is not (BackboneKind.TinySwin or BackboneKind.SwinT)
        || (name.StartsWith("stem.scales.", StringComparison.Ordinal) && !name.StartsWith("stem.scales.outputNorms.", StringComparison.Ordinal));

    /// <summary>image: B×3×H×W (normalised) → B×n×d.</summary>
    public override Tensor forward(Tensor image)
    {
        var grid = stem.forward(image);                  // B×d×(H/s)×(W/s)
        var tokens = grid.flatten(2).transpose(1, 2);    // B×n×d, row-major over the grid
        tokens = tokens + positions;
        return norm.forward(blocks.forward(tokens));
    }
}
