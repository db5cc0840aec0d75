using System.Text.Json.Serialization;
using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Sizes of the multi-scale image encoder (MODEL-SPEC §1 a1–a6; §5 "Backbone with 4 scales"): scale σ = 0…S−1 has stride
/// FirstStride·2^σ, FirstWidth·2^σ channels, <see cref="DepthAt"/> blocks of kind <see cref="Attention"/> and
/// <see cref="HeadsAt"/> heads. Configuration is data: `MultiScale` (global blocks, sine-cosine positions per scale) and the
/// Swin backbones <see cref="TinySwin"/> / <see cref="SwinT"/> (window blocks, relative position bias) are values of this record.
/// </summary>
public sealed record MultiScaleOptions
{
    /// <summary>Stride of the finest scale: 4 (the Swin layout, §5's four scales 4/8/16/32) or 8 (cheaper).</summary>
    public int FirstStride { get; init; } = 8;
    /// <summary>Number of scales S (at least 3).</summary>
    public int Scales { get; init; } = 3;
    /// <summary>Channels c_0 of the finest scale (a multiple of 4 for the sine-cosine positions); doubles at every scale.</summary>
    public int FirstWidth { get; init; } = 32;
    /// <summary>Pre-norm blocks at every scale (the paper's "two Swin blocks per scale") unless <see cref="Depths"/> is given.</summary>
    public int BlocksPerScale { get; init; } = 2;
    /// <summary>Blocks per scale, one entry per scale (Swin-T: 2, 2, 6, 2); null means <see cref="BlocksPerScale"/> everywhere.</summary>
    public IReadOnlyList<int>? Depths { get; init; }
    /// <summary>Heads per scale, one entry per scale (Swin-T: 3, 6, 12, 24); null means c_σ / head width (the network's Width / Heads).</summary>
    public IReadOnlyList<int>? Heads { get; init; }
    /// <summary>Block kind at every scale: `Global` (with fixed sine-cosine positions per scale) or `Window` (Swin, relative position bias).</summary>
    public BlockAttention Attention { get; init; } = BlockAttention.Global;
    /// <summary>Window w of the `Window` blocks (7 in Swin); also the window of the `Window` blocks on the token grid (<see cref="MultiTaskNetworkOptions.TokenWindow"/>: the Swin backbones' neck a8 and Window task blocks).</summary>
    public int Window { get; init; } = 7;
    /// <summary>First scale that step a6 fuses onto the token grid (0: all; Swin: 1, i.e. stages 2–4).</summary>
    public int FirstFusedScale { get; init; }

    /// <summary>MODEL-SPEC §1 `TinySwin` (trained from scratch): embed 64, depths 2,2,2,2, heads 2,4,8,16, window 7; a6 fuses 128+256+512.</summary>
    public static MultiScaleOptions TinySwin { get; } = new()
    {
        FirstStride = 4, Scales = 4, FirstWidth = 64, Depths = [2, 2, 2, 2], Heads = [2, 4, 8, 16],
        Attention = BlockAttention.Window, Window = 7, FirstFusedScale = 1,
    };

    /// <summary>MODEL-SPEC §1 `SwinT` (the paper's Swin-T): embed 96, depths 2,2,6,2, heads 3,6,12,24, window 7; a6 fuses 192+384+768.</summary>
    public static MultiScaleOptions SwinT { get; } = TinySwin with { FirstWidth = 96, Depths = [2, 2, 6, 2], Heads = [3, 6, 12, 24] };

    /// <summary>
    /// MODEL-SPEC §5's backbone for the sequential design: the §1 <see cref="TinySwin"/> stages with every scale kept
    /// (FirstFusedScale 0): 4 scales at strides 4/8/16/32 with 64/128/256/512 channels, 2 window blocks each (heads 2/4/8/16).
    /// Set it as <see cref="MultiTaskNetworkOptions.MultiScale"/>, or equivalently use Backbone = TinySwin
    /// (<see cref="MultiTaskNetworkOptions.SequentialEncoder"/>). Not the default: the small `new MultiScaleOptions()` keeps
    /// CPU runs of the sequential design fast.
    /// </summary>
    public static MultiScaleOptions SequentialTinySwin { get; } = TinySwin with { FirstFusedScale = 0 };

    /// <summary>Stride of scale σ.</summary>
    public int StrideAt(int scale) => FirstStride << scale;
    /// <summary>Channels c_σ of scale σ.</summary>
    public int WidthAt(int scale) => FirstWidth << scale;
    /// <summary>Blocks at scale σ.</summary>
    public int DepthAt(int scale) => Depths?[scale] ?? BlocksPerScale;
    /// <summary>Attention heads at scale σ: <see cref="Heads"/>[σ], else c_σ / d_h for a head width d_h (the network's Width / Heads).</summary>
    public int HeadsAt(int scale, int headWidth) => Heads?[scale] ?? Math.Max(1, WidthAt(scale) / headWidth);
    /// <summary>
    /// Token grid (rows, cols) of scale σ for <paramref name="height"/>×<paramref name="width"/> inputs: the patch-embedding grid
    /// (H, W) / FirstStride, then <see cref="MergedGrid"/> (⌈r/2⌉, ⌈c/2⌉) at every patch merging — (H, W) / stride_σ when the
    /// stride divides the size, e.g. 240×320 with TinySwin: 60×80 → 30×40 → 15×20 → 8×10.
    /// </summary>
    public (int Rows, int Cols) GridAt(int height, int width, int scale)
    {
        var grid = (height / FirstStride, width / FirstStride);
        for (int s = 0; s < scale; s++) grid = MergedGrid(grid);
        return grid;
    }

    /// <summary>
    /// The grid after one patch merging: (⌈r/2⌉, ⌈c/2⌉). An odd grid is zero-padded by one row / column at the bottom / right
    /// first, as the official Swin's PatchMerging does (<see cref="PatchMerging"/>).
    /// </summary>
    public static (int Rows, int Cols) MergedGrid((int Rows, int Cols) grid) => ((grid.Rows + 1) / 2, (grid.Cols + 1) / 2);
    /// <summary>Stride of the coarsest scale.</summary>
    public int CoarsestStride => StrideAt(Scales - 1);
    /// <summary>The scales step a6 fuses, finest first.</summary>
    [JsonIgnore]
    public IEnumerable<int> FusedScales => Enumerable.Range(FirstFusedScale, Scales - FirstFusedScale);

    /// <summary>
    /// Checks the sizes against the input size and head width; messages say what to change. <paramref name="name"/> is the
    /// option that holds this record (in messages).
    /// </summary>
    public void Validate(int height, int width, int headWidth, string name = "MultiScale")
    {
        if (FirstStride is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(FirstStride), FirstStride, $"{name}.FirstStride must be 4 or 8.");
        if (Scales is < 3 or > 5) throw new ArgumentOutOfRangeException(nameof(Scales), Scales, $"{name}.Scales must be 3, 4 or 5.");
        if (FirstWidth < 4 || FirstWidth % 4 != 0) throw new ArgumentOutOfRangeException(nameof(FirstWidth), FirstWidth, $"{name}.FirstWidth must be a positive multiple of 4.");
        if (BlocksPerScale < 0) throw new ArgumentOutOfRangeException(nameof(BlocksPerScale), BlocksPerScale, $"{name}.BlocksPerScale must be ≥ 0.");
        if (Depths is not null && (Depths.Count != Scales || Depths.Any(d => d < 0)))
            throw new ArgumentException($"{name}.Depths must have one entry ≥ 0 per scale ({Scales}), got [{string.Join(", ", Depths)}].");
        if (Heads is not null && (Heads.Count != Scales || Heads.Any(h => h < 1)))
            throw new ArgumentException($"{name}.Heads must have one entry ≥ 1 per scale ({Scales}), got [{string.Join(", ", Heads)}].");
        if (Window < 1) throw new ArgumentOutOfRangeException(nameof(Window), Window, $"{name}.Window must be ≥ 1 (7 in Swin).");
        if (FirstFusedScale < 0 || FirstFusedScale >= Scales)
            throw new ArgumentOutOfRangeException(nameof(FirstFusedScale), FirstFusedScale, $"{name}.FirstFusedScale must be in [0, {Scales}).");
        // Patch merging pads odd grids (official Swin), so only the patch embedding (a1, conv p×p stride p) needs whole patches.
        if (height < FirstStride || width < FirstStride || height % FirstStride != 0 || width % FirstStride != 0)
            throw new ArgumentException($"Image size {height}×{width} must be a positive multiple of the patch size {name}.FirstStride = {FirstStride} (the patch embedding cuts the image into {FirstStride}×{FirstStride} patches): resize the images (e.g. to {RoundUp(height)}×{RoundUp(width)}).");
        for (int s = 0; s < Scales; s++)
            if (WidthAt(s) % HeadsAt(s, headWidth) != 0)
                throw new ArgumentException(Heads is null
                    ? $"Scale {s} has {WidthAt(s)} channels, not divisible into {HeadsAt(s, headWidth)} heads of width {headWidth}: make {name}.FirstWidth a multiple of Width / Heads = {headWidth}."
                    : $"Scale {s} has {WidthAt(s)} channels, not divisible into {name}.Heads[{s}] = {Heads[s]} heads: change {name}.Heads or FirstWidth.");
    }

    private int RoundUp(int size) => Math.Max(1, (size + FirstStride - 1) / FirstStride) * FirstStride;

    /// <summary>Value equality, with <see cref="Depths"/> and <see cref="Heads"/> compared element by element (not by reference).</summary>
    public bool Equals(MultiScaleOptions? other) => other is not null
        && (FirstStride, Scales, FirstWidth, BlocksPerScale, Attention, Window, FirstFusedScale)
            == (other.FirstStride, other.Scales, other.FirstWidth, other.BlocksPerScale, other.Attention, other.Window, other.FirstFusedScale)
        && SameList(Depths, other.Depths) && SameList(Heads, other.Heads);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(FirstStride, Scales, FirstWidth, BlocksPerScale, Attention, Window, FirstFusedScale);

    private static bool SameList(IReadOnlyList<int>? a, IReadOnlyList<int>? b) => a is null ? b is null : b is not null && a.SequenceEqual(b);
}

/// <summary>
/// The multi-scale image encoder: image B×3×H×W (normalised) → the fused scales' maps F^σ (σ ≥ FirstFusedScale),
/// B×c_σ×h_σ×w_σ on the grids of <see cref="MultiScaleOptions.GridAt"/> ((H/s_σ)×(W/s_σ) when s_σ divides the size), each
/// LayerNorm-ed (MODEL-SPEC §1 a1–a6, §5). Patch embedding conv p×p stride p + LN (a1); at every scale pre-norm blocks:
/// `Global` ones after fixed 2-D sine-cosine positions (the self-attention in the feature extractor of §5), or Swin's
/// `Window` ones (<see cref="SwinBlock"/>, odd blocks shifted; a2–a5); between scales Swin's patch merging (2×2 neighbours
/// concatenated → LN → Lin(4c→2c); an odd grid zero-padded bottom / right first, as the official Swin).
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
        grids = Enumerable.Range(0, o.Scales).Select(s => o.GridAt(height, width, s)).ToArray();
        patchEmbed = nn.Conv2d(3, o.FirstWidth, o.FirstStride, stride: o.FirstStride);
        embedNorm = nn.LayerNorm(o.FirstWidth);
        merges = nn.ModuleList(Enumerable.Range(1, o.Scales - 1)
            .Select(s => new PatchMerging($"merge{s}", grids[s - 1].Rows, grids[s - 1].Cols, o.WidthAt(s - 1))).ToArray());
        stages = nn.ModuleList(Enumerable.Range(0, o.Scales)
            .Select(s => new ScaleStage($"stage{s}", o, s, grids[s].Rows, grids[s].Cols, headWidth, mlpRatio)).ToArray());
        outputNorms = nn.ModuleList(o.FusedScales.Select(s => nn.LayerNorm(o.WidthAt(s))).ToArray());
        RegisterComponents();
    }

    /// <summary>The sizes this encoder was built with.</summary>
    public MultiScaleOptions Options { get; }

    /// <summary>Grid size (rows, cols) of every scale.</summary>
    public IReadOnlyList<(int Rows, int Cols)> Grids => grids;

    /// <summary>image: B×3×H×W (normalised) → the fused scales' maps, finest first: B×c_σ×h_σ×w_σ (<see cref="Grids"/>), σ ≥ FirstFusedScale.</summary>
    public override Tensor[] forward(Tensor image)
    {
        var tokens = embedNorm.forward(TokenGrid.ToTokens(patchEmbed.forward(image))); // a1: B×n_0×c_0
        var maps = new List<Tensor>(outputNorms.Count);
        for (int s = 0; s < stages.Count; s++)
        {
            if (s > 0) tokens = merges[s - 1].forward(tokens);                                // a3–a5: B×n_σ×c_σ
            tokens = stages[s].forward(tokens);
            if (s >= Options.FirstFusedScale)                                                  // a6: LN per stage
                maps.Add(TokenGrid.ToMap(outputNorms[s - Options.FirstFusedScale].forward(tokens), grids[s].Rows, grids[s].Cols));
        }
        return maps.ToArray();
    }

    /// <summary>One scale: `Global` blocks after fixed sine-cosine positions, or `Window` blocks (relative position bias, no positions).</summary>
    private sealed class ScaleStage : nn.Module<Tensor, Tensor>
    {
        private readonly Tensor? positions;
        private readonly nn.Module<Tensor, Tensor> blocks;

        public ScaleStage(string name, MultiScaleOptions o, int scale, int rows, int cols, int headWidth, int mlpRatio) : base(name)
        {
            if (o.Attention == BlockAttention.Global) positions = PositionEmbedding.SineCosine2D(rows, cols, o.WidthAt(scale));
            blocks = SwinBlock.Stack("blocks", o.Attention, o.DepthAt(scale), rows, cols, o.WidthAt(scale), o.HeadsAt(scale, headWidth), o.Window, mlpRatio);
            RegisterComponents();
        }

        public override Tensor forward(Tensor tokens) => blocks.forward(positions is null ? tokens : tokens + positions);
    }
}

/// <summary>
/// Swin's patch merging (MODEL-SPEC §1 a3): tokens of a r×c grid, B×(r·c)×C → an odd grid zero-padded by one row / column at
/// the bottom / right (official Swin: <c>F.pad(x, (0, 0, 0, W % 2, 0, H % 2))</c>) → the 2×2 neighbours concatenated
/// (B×(r'·c')×4C, r' = ⌈r/2⌉, c' = ⌈c/2⌉, <see cref="MultiScaleOptions.MergedGrid"/>) → LN → Lin(4C→2C) → B×(r'·c')×2C.
/// </summary>
public sealed class PatchMerging : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear reduction;
    private readonly int rows, cols;

    /// <summary>Merges a <paramref name="rows"/>×<paramref name="cols"/> grid of <paramref name="width"/>-wide tokens (odd sides padded).</summary>
    public PatchMerging(string name, int rows, int cols, int width) : base(name)
    {
        if (rows < 1 || cols < 1) throw new ArgumentException($"Patch merging needs a grid of at least 1×1 tokens, got {rows}×{cols}.");
        (this.rows, this.cols) = (rows, cols);
        Grid = MultiScaleOptions.MergedGrid((rows, cols));
        norm = nn.LayerNorm(4 * width);
        reduction = nn.Linear(4 * width, 2 * width, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The merged grid (⌈r/2⌉, ⌈c/2⌉).</summary>
    public (int Rows, int Cols) Grid { get; }

    /// <summary>B×(r·c)×C → B×(r'·c')×2C.</summary>
    public override Tensor forward(Tensor tokens)
    {
        var (batch, width) = (tokens.shape[0], tokens.shape[2]);
        var grid = tokens.reshape(batch, rows, cols, width);                                  // B×r×c×C
        if (rows % 2 != 0 || cols % 2 != 0)
            grid = nn.functional.pad(grid, [0, 0, 0, cols % 2, 0, rows % 2]);               // B×2r'×2c'×C, zeros bottom / right
        var merged = grid.reshape(batch, Grid.Rows, 2, Grid.Cols, 2, width)                   // B×r'×2×c'×2×C
            .permute(0, 1, 3, 2, 4, 5)                                                        // B×r'×c'×2×2×C
            .reshape(batch, (long)Grid.Rows * Grid.Cols, 4 * width);                          // B×(r'·c')×4C
        return reduction.Apply(norm.forward(merged));
    }
}

/// <summary>
/// MODEL-SPEC §1 a6–a7 for <see cref="BackboneKind.MultiScale"/>, <see cref="BackboneKind.TinySwin"/> and <see cref="BackboneKind.SwinT"/>:
/// the fused scales of a <see cref="MultiScaleBackbone"/> (<see cref="MultiTaskNetworkOptions.ScaleEncoder"/>) resized to the
/// stride-s token grid (bilinear up, area down), concatenated on channels, 1×1 conv Σc_σ → d.
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
        var encoder = o.ScaleEncoder;
        scales = new MultiScaleBackbone("scales", encoder, o.ImageHeight, o.ImageWidth, o.Width / o.Heads, o.MlpRatio);
        (rows, cols) = (o.ImageHeight / o.TokenStride, o.ImageWidth / o.TokenStride);
        fuse = nn.Conv2d(encoder.FusedScales.Sum(encoder.WidthAt), o.Width, 1);
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
