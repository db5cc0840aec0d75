using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Sizes of the multi-scale image encoder (MODEL-SPEC §1 a1–a5 with `Global` blocks; §5 "Backbone with 4 scales"):
/// scale σ = 0…S−1 has stride FirstStride·2^σ, FirstWidth·2^σ channels and (WidthAt(σ) / head width) heads.
/// </summary>
public sealed record MultiScaleOptions
{
    /// <summary>Stride of the finest scale: 4 (the Swin layout, §5's four scales 4/8/16/32) or 8 (cheaper).</summary>
    public int FirstStride { get; init; } = 8;
    /// <summary>Number of scales S (at least 3).</summary>
    public int Scales { get; init; } = 3;
    /// <summary>Channels c_0 of the finest scale (a multiple of 4 for the sine-cosine positions); doubles at every scale.</summary>
    public int FirstWidth { get; init; } = 32;
    /// <summary>Global pre-norm transformer blocks at every scale (the paper's "two Swin blocks per scale").</summary>
    public int BlocksPerScale { get; init; } = 2;

    /// <summary>Stride of scale σ.</summary>
    public int StrideAt(int scale) => FirstStride << scale;
    /// <summary>Channels c_σ of scale σ.</summary>
    public int WidthAt(int scale) => FirstWidth << scale;
    /// <summary>Attention heads at scale σ for a head width d_h (the network's Width / Heads).</summary>
    public int HeadsAt(int scale, int headWidth) => Math.Max(1, WidthAt(scale) / headWidth);
    /// <summary>Stride of the coarsest scale.</summary>
    public int CoarsestStride => StrideAt(Scales - 1);

    /// <summary>Checks the sizes against the input size and head width; messages say what to change.</summary>
    public void Validate(int height, int width, int headWidth)
    {
        if (FirstStride is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(FirstStride), FirstStride, "MultiScale.FirstStride must be 4 or 8.");
        if (Scales is < 3 or > 5) throw new ArgumentOutOfRangeException(nameof(Scales), Scales, "MultiScale.Scales must be 3, 4 or 5.");
        if (FirstWidth < 4 || FirstWidth % 4 != 0) throw new ArgumentOutOfRangeException(nameof(FirstWidth), FirstWidth, "MultiScale.FirstWidth must be a positive multiple of 4.");
        if (BlocksPerScale < 0) throw new ArgumentOutOfRangeException(nameof(BlocksPerScale), BlocksPerScale, "MultiScale.BlocksPerScale must be ≥ 0.");
        if (height % CoarsestStride != 0 || width % CoarsestStride != 0)
            throw new ArgumentException($"Image size {height}×{width} must be a multiple of the coarsest stride {CoarsestStride} (FirstStride {FirstStride} · 2^{Scales - 1}): resize the images or lower MultiScale.Scales / FirstStride.");
        for (int s = 0; s < Scales; s++)
            if (WidthAt(s) % HeadsAt(s, headWidth) != 0)
                throw new ArgumentException($"Scale {s} has {WidthAt(s)} channels, not divisible into {HeadsAt(s, headWidth)} heads of width {headWidth}: make MultiScale.FirstWidth a multiple of Width / Heads = {headWidth}.");
    }
}

/// <summary>
/// The multi-scale image encoder: image B×3×H×W (normalised) → S maps F^σ, B×c_σ×(H/s_σ)×(W/s_σ), each LayerNorm-ed
/// (MODEL-SPEC §1 a1–a6, §5). Patch embedding conv p×p stride p + LN (a1); at every scale: fixed 2-D sine-cosine
/// positions, global pre-norm blocks (the self-attention in the feature extractor of §5); between scales Swin's patch
/// merging (2×2 neighbours concatenated → LN → Lin(4c→2c)).
/// </summary>
public sealed class MultiScaleBackbone : nn.Module<Tensor, Tensor[]>
{
    private readonly Conv2d patchEmbed;
    private readonly LayerNorm embedNorm;
    private readonly ModuleList<PatchMerging> merges;
    private readonly ModuleList<ScaleStage> stages;
    private readonly ModuleList<LayerNorm> outputNorms;
    private readonly (int Rows, int Cols)[] grids;

    /// <summary>Builds the encoder for <paramref name="height"/>×<paramref name="width"/> inputs; <paramref name="headWidth"/> is d_h.</summary>
    public MultiScaleBackbone(string name, MultiScaleOptions o, int height, int width, int headWidth, int mlpRatio) : base(name)
    {
        o.Validate(height, width, headWidth);
        Options = o;
        grids = Enumerable.Range(0, o.Scales).Select(s => (height / o.StrideAt(s), width / o.StrideAt(s))).ToArray();
        patchEmbed = nn.Conv2d(3, o.FirstWidth, o.FirstStride, stride: o.FirstStride);
        embedNorm = nn.LayerNorm(o.FirstWidth);
        merges = nn.ModuleList(Enumerable.Range(1, o.Scales - 1)
            .Select(s => new PatchMerging($"merge{s}", grids[s - 1].Rows, grids[s - 1].Cols, o.WidthAt(s - 1))).ToArray());
        stages = nn.ModuleList(Enumerable.Range(0, o.Scales)
            .Select(s => new ScaleStage($"stage{s}", grids[s].Rows, grids[s].Cols, o.WidthAt(s), o.HeadsAt(s, headWidth), o.BlocksPerScale, mlpRatio)).ToArray());
        outputNorms = nn.ModuleList(Enumerable.Range(0, o.Scales).Select(s => nn.LayerNorm(o.WidthAt(s))).ToArray());
        RegisterComponents();
    }

    /// <summary>The sizes this encoder was built with.</summary>
    public MultiScaleOptions Options { get; }

    /// <summary>Grid size (rows, cols) of every scale.</summary>
    public IReadOnlyList<(int Rows, int Cols)> Grids => grids;

    /// <summary>image: B×3×H×W (normalised) → S maps, finest first: B×c_σ×(H/s_σ)×(W/s_σ).</summary>
    public override Tensor[] forward(Tensor image)
    {
        var tokens = embedNorm.forward(TokenGrid.ToTokens(patchEmbed.forward(image))); // a1: B×n_0×c_0
        var maps = new Tensor[stages.Count];
        for (int s = 0; s < maps.Length; s++)
        {
            if (s > 0) tokens = merges[s - 1].forward(tokens);                                // B×n_σ×c_σ
            tokens = stages[s].forward(tokens);
            maps[s] = TokenGrid.ToMap(outputNorms[s].forward(tokens), grids[s].Rows, grids[s].Cols);   // a6: LN per stage
        }
        return maps;
    }

    /// <summary>One scale: fixed sine-cosine positions added once, then global pre-norm blocks.</summary>
    private sealed class ScaleStage : nn.Module<Tensor, Tensor>
    {
        private readonly Tensor positions;
        private readonly nn.Module<Tensor, Tensor> blocks;

        public ScaleStage(string name, int rows, int cols, int width, int heads, int depth, int mlpRatio) : base(name)
        {
            positions = PositionEmbedding.SineCosine2D(rows, cols, width);
            blocks = TransformerBlock.Stack("blocks", depth, width, heads, mlpRatio);
            RegisterComponents();
        }

        public override Tensor forward(Tensor tokens) => blocks.forward(tokens + positions);
    }
}

/// <summary>
/// Swin's patch merging (MODEL-SPEC §1 a3): tokens of a r×c grid, B×(r·c)×C → the 2×2 neighbours concatenated
/// (B×(r/2·c/2)×4C) → LN → Lin(4C→2C) → B×(r/2·c/2)×2C.
/// </summary>
public sealed class PatchMerging : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear reduction;
    private readonly int rows, cols;

    /// <summary>Merges a <paramref name="rows"/>×<paramref name="cols"/> grid (both even) of <paramref name="width"/>-wide tokens.</summary>
    public PatchMerging(string name, int rows, int cols, int width) : base(name)
    {
        if (rows % 2 != 0 || cols % 2 != 0) throw new ArgumentException($"Patch merging needs an even grid, got {rows}×{cols}.");
        (this.rows, this.cols) = (rows, cols);
        norm = nn.LayerNorm(4 * width);
        reduction = nn.Linear(4 * width, 2 * width, hasBias: false);
        RegisterComponents();
    }

    /// <summary>B×(r·c)×C → B×(r/2·c/2)×2C.</summary>
    public override Tensor forward(Tensor tokens)
    {
        var (batch, width) = (tokens.shape[0], tokens.shape[2]);
        var merged = tokens.reshape(batch, rows / 2, 2, cols / 2, 2, width) // B×r/2×2×c/2×2×C
            .permute(0, 1, 3, 2, 4, 5)                                       // B×r/2×c/2×2×2×C
            .reshape(batch, rows / 2 * (cols / 2), 4 * width);               // B×n/4×4C
        return reduction.forward(norm.forward(merged));
    }
}

/// <summary>
/// MODEL-SPEC §1 a6–a7 for <see cref="BackboneKind.MultiScale"/>: every scale of a <see cref="MultiScaleBackbone"/>
/// resized to the stride-s token grid (bilinear up, area down), concatenated on channels, 1×1 conv Σc_σ → d.
/// image B×3×H×W (normalised) → B×d×(H/s)×(W/s), the same output as the other backbones' stems.
/// </summary>
public sealed class ScaleFusionStem : nn.Module<Tensor, Tensor>
{
    private readonly MultiScaleBackbone scales;
    private readonly Conv2d fuse;
    private readonly long rows, cols;

    /// <summary>Builds the multi-scale encoder of <paramref name="o"/> and the fusion onto its stride-TokenStride grid.</summary>
    public ScaleFusionStem(string name, MultiTaskNetworkOptions o) : base(name)
    {
        scales = new MultiScaleBackbone("scales", o.MultiScale, o.ImageHeight, o.ImageWidth, o.Width / o.Heads, o.MlpRatio);
        (rows, cols) = (o.ImageHeight / o.TokenStride, o.ImageWidth / o.TokenStride);
        fuse = nn.Conv2d(Enumerable.Range(0, o.MultiScale.Scales).Sum(o.MultiScale.WidthAt), o.Width, 1);
        RegisterComponents();
    }

    /// <summary>image B×3×H×W → B×d×(H/s)×(W/s).</summary>
    public override Tensor forward(Tensor image)
    {
        var resized = scales.forward(image).Select(map => Resize(map, rows, cols)); // a6: each B×c_σ×(H/s)×(W/s)
        return fuse.forward(torch.cat(resized.ToArray(), 1));                      // a7: B×Σc_σ → B×d
    }

    /// <summary>Bilinear up, area down, identity when the map already has <paramref name="rows"/>×<paramref name="cols"/>.</summary>
    public static Tensor Resize(Tensor map, long rows, long cols)
    {
        if (map.shape[2] == rows && map.shape[3] == cols) return map;
        var mode = map.shape[2] < rows ? InterpolationMode.Bilinear : InterpolationMode.Area;
        return nn.functional.interpolate(map, size: new[] { rows, cols }, mode: mode, align_corners: mode == InterpolationMode.Bilinear ? false : (bool?)null);
    }
}
