using System.Text.Json.Serialization;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>The image encoder at stage (a) (MODEL-SPEC §1, backbone options).</summary>
public enum BackboneKind
{
    /// <summary>Three 3×3 stride-2 convolutions to stride 8 (32/64/d channels), then global blocks. The `Tiny` configuration.</summary>
    ConvStem,
    /// <summary>Patch embedding p×p stride p, fixed 2-D sine-cosine positions, global pre-norm blocks, final LN.</summary>
    TinyViT,
    /// <summary>
    /// A <see cref="MultiScaleBackbone"/> (patch embedding, global blocks per scale, patch merging; ≥ 3 scales, see
    /// <see cref="MultiTaskNetworkOptions.MultiScale"/>) whose scales are resized to the stride-s grid, concatenated and
    /// mapped to d by a 1×1 conv (MODEL-SPEC §1 a1–a7), then the global blocks as the neck (a8).
    /// </summary>
    MultiScale,
    /// <summary>
    /// MODEL-SPEC §1 `TinySwin` (the spec's default at paper size, trained from scratch): Swin with embed 64, depths 2,2,2,2,
    /// heads 2,4,8,16, window 7 (<see cref="MultiScaleOptions.TinySwin"/>); a6 fuses stages 2–4 (896 channels), a7 maps them to d,
    /// the neck a8 is BackboneDepth `Window` blocks (2 in the spec, the second shifted).
    /// </summary>
    TinySwin,
    /// <summary>MODEL-SPEC §1 `SwinT` (the paper's Swin-T: embed 96, depths 2,2,6,2, heads 3,6,12,24), for official weights (<see cref="BackboneWeights"/>).</summary>
    SwinT,
}

/// <summary>
/// Sizes of a multi-task network: configuration is data (STYLE.md). Defaults are the spec's `Tiny` row
/// (MODEL-SPEC §1, "Configurations to ship"); <see cref="Small"/> is the CPU training configuration; <see cref="Dev"/>,
/// <see cref="Gpu448"/> and <see cref="Paper"/> are the TinySwin ones.
/// </summary>
public sealed record MultiTaskNetworkOptions
{
    /// <summary>The tasks, in output order. At least one.</summary>
    public required IReadOnlyList<TaskSpec> Tasks { get; init; }
    /// <summary>Which model family <see cref="MultiTaskModel.Create"/> builds (default: the §1 shared-encoder network).</summary>
    public NetworkArchitecture Architecture { get; init; } = NetworkArchitecture.SharedEncoder;
    /// <summary>Network input height H (a multiple of <see cref="TokenStride"/>).</summary>
    public int ImageHeight { get; init; } = 64;
    /// <summary>Network input width W (a multiple of <see cref="TokenStride"/>).</summary>
    public int ImageWidth { get; init; } = 64;
    /// <summary>Image encoder kind.</summary>
    public BackboneKind Backbone { get; init; } = BackboneKind.ConvStem;
    /// <summary>Stride s of the token grid: 8 (ConvStem is fixed at 8; TinyViT uses it as patch size; MultiScale fuses its scales onto it; TinySwin / SwinT: 8 or 16).</summary>
    public int TokenStride { get; init; } = 8;
    /// <summary>Token width d.</summary>
    public int Width { get; init; } = 64;
    /// <summary>Attention heads h (d must be divisible by h).</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Global transformer blocks in the backbone after the stem / patch embedding.</summary>
    public int BackboneDepth { get; init; } = 1;
    /// <summary>Blocks of each task encoder E_t (paper 2; 0 with <see cref="InteractionKind.None"/> = hard sharing).</summary>
    public int EncoderDepth { get; init; } = 2;
    /// <summary>Blocks of each task decoder D_t before the dense head (paper 2).</summary>
    public int DecoderDepth { get; init; } = 2;
    /// <summary>MLP width as a multiple of d in every transformer block (4).</summary>
    public int MlpRatio { get; init; } = 4;
    /// <summary>
    /// Block kind of the task encoders E_t (b) and decoders D_t (d1), MODEL-SPEC §1 "Transformer block": `Global` (default; the
    /// paper's literal 2-layer ViT) or `Window` (the spec's default at paper size, "same block type as a8"): <see cref="SwinBlock"/>s
    /// on the (H/s)×(W/s) token grid with window <see cref="TokenWindow"/>, odd blocks shifted. SharedEncoder architecture only.
    /// </summary>
    public BlockAttention TaskBlocks { get; init; } = BlockAttention.Global;
    /// <summary>
    /// The multi-scale encoder of <see cref="BackboneKind.MultiScale"/> and of <see cref="NetworkArchitecture.SequentialCrossAttention"/>
    /// (unless Backbone is TinySwin / SwinT, see <see cref="SequentialEncoder"/>). The default is small (3 scales from stride 8,
    /// 32/64/128 channels, global blocks) so CPU runs stay fast; MODEL-SPEC §5's backbone is <see cref="MultiScaleOptions.SequentialTinySwin"/>.
    /// </summary>
    public MultiScaleOptions MultiScale { get; init; } = new();
    /// <summary>Stage sizes of <see cref="BackboneKind.TinySwin"/> / <see cref="BackboneKind.SwinT"/> when they differ from the spec's (e.g. a smaller Window for tiny inputs); null means the kind's preset.</summary>
    public MultiScaleOptions? Swin { get; init; }
    /// <summary>CTAM/CSAM settings of <see cref="NetworkArchitecture.SequentialCrossAttention"/> (MODEL-SPEC §5).</summary>
    public SequentialAttentionOptions Sequential { get; init; } = new();
    /// <summary>Base task and delta sparsity of <see cref="NetworkArchitecture.ComputationSharing"/> (MODEL-SPEC §6).</summary>
    public ComputationSharingOptions ComputationSharing { get; init; } = new();
    /// <summary>The interaction stage (c).</summary>
    public InteractionOptions Interaction { get; init; } = new() { MemorySlots = 8, TopK = 3 };
    /// <summary>Freeze the backbone's stem/patch embedding and blocks (paper: true with pre-trained weights).</summary>
    public bool FreezeBackbone { get; init; }
    /// <summary>Multiplier from the input pixel values to [0,1] before ImageNet normalisation (1/255 for ExtractPixels' default).</summary>
    public float PixelScale { get; init; } = 1f / 255f;

    /// <summary>True for the Swin backbones (<see cref="BackboneKind.TinySwin"/>, <see cref="BackboneKind.SwinT"/>): their stages come from <see cref="Swin"/> or the kind's preset.</summary>
    [JsonIgnore]
    public bool HasSwinBackbone => Backbone is BackboneKind.TinySwin or BackboneKind.SwinT;

    /// <summary>The multi-scale encoder that <see cref="BackboneKind.MultiScale"/>, TinySwin and SwinT fuse (a1–a6).</summary>
    [JsonIgnore]
    public MultiScaleOptions ScaleEncoder => Backbone switch
    {
        BackboneKind.TinySwin => Swin ?? MultiScaleOptions.TinySwin,
        BackboneKind.SwinT => Swin ?? MultiScaleOptions.SwinT,
        _ => MultiScale,
    };

    /// <summary>
    /// The multi-scale encoder of <see cref="NetworkArchitecture.SequentialCrossAttention"/> (MODEL-SPEC §5): with Backbone
    /// TinySwin or SwinT, that backbone's §1 stages (<see cref="Swin"/> or the kind's preset) with every scale refined
    /// (FirstFusedScale 0) — TinySwin gives the spec's 4 scales at strides 4/8/16/32 with 64/128/256/512 channels
    /// (<see cref="MultiScaleOptions.SequentialTinySwin"/>); with any other Backbone, <see cref="MultiScale"/>.
    /// </summary>
    [JsonIgnore]
    public MultiScaleOptions SequentialEncoder =>
        HasSwinBackbone ? ScaleEncoder with { FirstFusedScale = 0 } : MultiScale;

    /// <summary>Block kind of the backbone's neck (a8): the scale encoder's for the multi-scale kinds, `Global` otherwise.</summary>
    [JsonIgnore]
    public BlockAttention NeckAttention =>
        Backbone is BackboneKind.MultiScale or BackboneKind.TinySwin or BackboneKind.SwinT ? ScaleEncoder.Attention : BlockAttention.Global;

    /// <summary>
    /// Window w of the `Window` blocks on the token grid, the neck a8 and (<see cref="TaskBlocks"/>) the task encoders and
    /// decoders: the scale encoder's <see cref="MultiScaleOptions.Window"/> (Swin.Window for TinySwin / SwinT, the preset's 7
    /// when Swin is null; MultiScale.Window, default 7, for the other backbones).
    /// </summary>
    [JsonIgnore]
    public int TokenWindow => ScaleEncoder.Window;

    /// <summary>Tokens per task n = (H/s)(W/s).</summary>
    public int TokensPerTask => (ImageHeight / TokenStride) * (ImageWidth / TokenStride);

    /// <summary>The spec's `Tiny` configuration: 64×64, conv stem, d 64, h 4, m 8, k 3 (unit tests).</summary>
    public static MultiTaskNetworkOptions Tiny(params TaskSpec[] tasks) => new() { Tasks = tasks };

    /// <summary>The spec's `Small` configuration at <paramref name="height"/>×<paramref name="width"/>: TinyViT p 8, d 128, h 4, m 20, k 3.</summary>
    public static MultiTaskNetworkOptions Small(int height, int width, params TaskSpec[] tasks) => new()
    {
        Tasks = tasks, ImageHeight = height, ImageWidth = width, Backbone = BackboneKind.TinyViT,
        Width = 128, Heads = 4, BackboneDepth = 4, Interaction = new InteractionOptions { MemorySlots = 20, TopK = 3 },
    };

    /// <summary>
    /// The spec's `Dev` configuration for quick GPU runs (NYUD 240×320, PASCAL 256×256): TinySwin with TokenStride 8 (30×40 or
    /// 32×32 tokens), a neck of 2 window blocks, global task blocks (MODEL-SPEC §15.9: `Global` at ≤ 1200 tokens), d 128, h 4,
    /// m 20, k 3. At 240×320 the Swin stages are
    /// 60×80 → 30×40 → 15×20 → 8×10 (patch merging pads the odd 15×20 grid, as the official Swin).
    /// </summary>
    public static MultiTaskNetworkOptions Dev(int height, int width, params TaskSpec[] tasks) => SwinPreset(height, width, 8, 128, 4, BlockAttention.Global, tasks);

    /// <summary>
    /// The spec's recommended GPU model `Gpu448` (NYUD 448×576, PASCAL 512×512): TinySwin with TokenStride 16 (28×36 or
    /// 32×32 tokens), a neck of 2 window blocks, global task blocks (MODEL-SPEC §15.9: `Global` at ≤ 1200 tokens; the §1 table's
    /// "same block type as a8" is for the paper size), d 384, h 6, m 20, k 3.
    /// </summary>
    public static MultiTaskNetworkOptions Gpu448(int height, int width, params TaskSpec[] tasks) => SwinPreset(height, width, 16, 384, 6, BlockAttention.Global, tasks);

    /// <summary>
    /// The spec's `Paper` configuration (480×640 or 512×512, MTFormer's grid): TinySwin with TokenStride 8 (60×80 or
    /// 64×64 tokens), a neck of 2 window blocks, window task blocks (the a8 block type: 4800 tokens per task), d 256, h 4, m 20, k 3.
    /// </summary>
    public static MultiTaskNetworkOptions Paper(int height, int width, params TaskSpec[] tasks) => SwinPreset(height, width, 8, 256, 4, BlockAttention.Window, tasks);

    private static MultiTaskNetworkOptions SwinPreset(int height, int width, int stride, int d, int heads, BlockAttention taskBlocks, TaskSpec[] tasks) => new()
    {
        Tasks = tasks, ImageHeight = height, ImageWidth = width, Backbone = BackboneKind.TinySwin, TokenStride = stride,
        Width = d, Heads = heads, BackboneDepth = 2, TaskBlocks = taskBlocks,
        Interaction = new InteractionOptions { MemorySlots = 20, TopK = 3 },
    };

    /// <summary>Checks every size once, at the edge; messages say what to change.</summary>
    public void Validate()
    {
        if (Tasks is null || Tasks.Count == 0) throw new ArgumentException("Give at least one task (Tasks is empty).");
        foreach (var t in Tasks) t.Validate();
        var dup = Tasks.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"Task name '{dup.Key}' is used twice: task names must be unique (they name the output columns).");
        if (Backbone == BackboneKind.ConvStem && TokenStride != 8)
            throw new ArgumentException($"The ConvStem backbone has stride 8; TokenStride is {TokenStride}. Set TokenStride = 8 or use BackboneKind.TinyViT.");
        if (TokenStride < 1) throw new ArgumentOutOfRangeException(nameof(TokenStride), TokenStride, "TokenStride must be ≥ 1 (8 or 16).");
        if (ImageHeight < TokenStride || ImageWidth < TokenStride || ImageHeight % TokenStride != 0 || ImageWidth % TokenStride != 0)
            throw new ArgumentException($"Image size {ImageHeight}×{ImageWidth} must be positive multiples of TokenStride {TokenStride}: resize the images (ResizeImages) to such a size.");
        if (Width < 1 || Heads < 1 || Width % Heads != 0)
            throw new ArgumentException($"Width {Width} must be a positive multiple of Heads {Heads}.");
        if (BackboneDepth < 0 || EncoderDepth < 0 || DecoderDepth < 0 || MlpRatio < 1)
            throw new ArgumentException("BackboneDepth, EncoderDepth and DecoderDepth must be ≥ 0 and MlpRatio ≥ 1.");
        if (!(PixelScale > 0) || float.IsInfinity(PixelScale)) throw new ArgumentOutOfRangeException(nameof(PixelScale), PixelScale, "PixelScale must be positive (1/255 for 0..255 pixels, 1 for 0..1 pixels).");
        if (Architecture == NetworkArchitecture.SequentialCrossAttention)
        {
            if (Tasks.Count < 2) throw new ArgumentException("Architecture SequentialCrossAttention needs at least 2 tasks (CTAM attends from every task to the others).");
            ArgumentNullException.ThrowIfNull(MultiScale, nameof(MultiScale));
            ArgumentNullException.ThrowIfNull(Sequential, nameof(Sequential));
            var encoderName = HasSwinBackbone ? nameof(Swin) : nameof(MultiScale);
            SequentialEncoder.Validate(ImageHeight, ImageWidth, Width / Heads, encoderName);
            if (SequentialEncoder.FirstFusedScale != 0)
                throw new ArgumentException("Architecture SequentialCrossAttention refines every scale: set MultiScale.FirstFusedScale = 0 (MultiScaleOptions.SequentialTinySwin is the spec's §5 backbone).");
            Sequential.Validate(ImageHeight, ImageWidth);
        }
        if (Architecture == NetworkArchitecture.ComputationSharing)
        {
            ArgumentNullException.ThrowIfNull(ComputationSharing, nameof(ComputationSharing));
            ComputationSharing.Validate(Tasks.Select(t => t.Name).ToArray());
        }
        if (Backbone == BackboneKind.MultiScale)
        {
            ArgumentNullException.ThrowIfNull(MultiScale, nameof(MultiScale));
            MultiScale.Validate(ImageHeight, ImageWidth, Width / Heads);
        }
        if (HasSwinBackbone)
        {
            if (TokenStride is not (8 or 16))
                throw new ArgumentException($"The {Backbone} backbone fuses its stages onto a stride-8 or stride-16 token grid; TokenStride is {TokenStride}. Set TokenStride = 8 or 16 (16 for the Gpu448 configuration).");
            ScaleEncoder.Validate(ImageHeight, ImageWidth, Width / Heads, nameof(Swin));   // the preset when Swin is null
        }
        if (TaskBlocks == BlockAttention.Window)
        {
            if (Architecture != NetworkArchitecture.SharedEncoder)
                throw new ArgumentException($"TaskBlocks = Window applies to the SharedEncoder architecture only; {Architecture} builds its own blocks. Leave TaskBlocks = Global or set Architecture = SharedEncoder.");
            var windowOption = HasSwinBackbone ? "Swin.Window" : "MultiScale.Window";
            if (TokenWindow < 1)
                throw new ArgumentException($"TaskBlocks = Window needs a window ≥ 1 on the token grid; {windowOption} is {TokenWindow}. Set {windowOption} (7 in Swin) or TaskBlocks = Global.");
        }
        if (Architecture == NetworkArchitecture.SharedEncoder) Interaction.Validate(Width, Heads, Tasks.Count); // the other families have no stage (c)
    }
}
