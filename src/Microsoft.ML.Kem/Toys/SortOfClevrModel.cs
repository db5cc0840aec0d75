using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>Image front end of the Sort-of-CLEVR model (MODEL-SPEC §13).</summary>
public enum ClevrFrontEnd
{
    /// <summary>Non-overlapping p×p patches (p = 15 → 25 tokens), Lin(3p²→d) + learned position embedding.</summary>
    Patches,
    /// <summary>Relation-Network CNN: 4 × [conv 3×3 stride 2 pad 1, 24 ch, BN, ReLU] → 5×5 cells + (x, y) in [−1, 1], Lin(26→d).</summary>
    CnnCells,
}

/// <summary>Sizes of <see cref="SortOfClevrModel"/>; defaults are MODEL-SPEC §13's (d 256, h 4, MLP 512, dropout 0.1, KEM m 8, k 5).</summary>
public sealed record SortOfClevrModelOptions
{
    /// <summary>Side of the input image.</summary>
    public int ImageSize { get; init; } = 75;
    /// <summary>Patch side p of <see cref="ClevrFrontEnd.Patches"/>; must divide <see cref="ImageSize"/>.</summary>
    public int PatchSize { get; init; } = 15;
    /// <summary>Front end.</summary>
    public ClevrFrontEnd FrontEnd { get; init; } = ClevrFrontEnd.Patches;
    /// <summary>Token width d.</summary>
    public int Width { get; init; } = 256;
    /// <summary>Attention heads h of the blocks and of the interaction.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>MLP width of every block as a multiple of d (spec: 512 = 2·256).</summary>
    public int MlpRatio { get; init; } = 2;
    /// <summary>Shared image-encoder blocks.</summary>
    public int ImageDepth { get; init; } = 2;
    /// <summary>Blocks per task encoder.</summary>
    public int EncoderDepth { get; init; } = 2;
    /// <summary>Blocks per task decoder.</summary>
    public int DecoderDepth { get; init; } = 1;
    /// <summary>
    /// Dropout probability of every transformer block (MODEL-SPEC §13: "2 pre-norm transformer blocks (d 256, 4 heads, MLP 512,
    /// dropout 0.1)"; the task encoders and decoders use the same block, as they use its sizes), in training mode only
    /// (<see cref="TransformerBlock.Dropout"/>). 0 turns it off (the runs recorded in docs/results.md before it existed).
    /// </summary>
    public double Dropout { get; init; } = 0.1;
    /// <summary>Interaction over the 3·(2 + cells) tokens: KEM (m 8, k 5) by default; sKEM, CA or None for comparisons.</summary>
    public InteractionOptions Interaction { get; init; } = new() { Kind = InteractionKind.Kem, MemorySlots = 8, TopK = 5 };

    /// <summary>Image tokens (cells) per example: 25 for both front ends at the default sizes.</summary>
    public int Cells => FrontEnd == ClevrFrontEnd.Patches ? (ImageSize / PatchSize) * (ImageSize / PatchSize) : CnnGrid * CnnGrid;

    /// <summary>Side of the CNN front end's output grid (75 → 38 → 19 → 10 → 5).</summary>
    public int CnnGrid
    {
        get
        {
            int side = ImageSize;
            for (int i = 0; i < 4; i++) side = (side + 1) / 2;
            return side;
        }
    }

    /// <summary>Checks every size once; messages say what to change.</summary>
    public void Validate()
    {
        if (FrontEnd == ClevrFrontEnd.Patches && (PatchSize < 1 || ImageSize % PatchSize != 0))
            throw new ArgumentException($"PatchSize {PatchSize} must divide ImageSize {ImageSize} (75 = 5·15).");
        if (Width < 1 || Heads < 1 || Width % Heads != 0) throw new ArgumentException($"Width {Width} must be a positive multiple of Heads {Heads}.");
        if (ImageDepth < 0 || EncoderDepth < 0 || DecoderDepth < 0 || MlpRatio < 1) throw new ArgumentException("Depths must be ≥ 0 and MlpRatio ≥ 1.");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1) (spec: 0.1; 0 turns it off).");
        Interaction.Validate(Width, Heads, SortOfClevrModel.Tasks);
    }
}

/// <summary>
/// The Sort-of-CLEVR multi-task model of MODEL-SPEC §13, mirroring §1 at toy scale; T = 3 tasks = question families.
/// <code>
/// Z   = Blocks_img(FrontEnd(image) + P)                     B×c×d           shared image encoder (c = 25 cells)
///       (every Blocks here: pre-norm transformer blocks with dropout 0.1 in training mode, <see cref="SortOfClevrModelOptions.Dropout"/>)
/// X_t = Blocks_t([CLS_t; Lin(18→d)(q_t); Z])                B×(2+c)×d       one encoder per family
/// X'  = Interaction([X_1; X_2; X_3])                        B×3×(2+c)×d     KEM / sKEM / CA / None
/// ŷ_t = Lin(d→10)(LN(Blocks'_t(X'_t))[CLS])                 B×10            one decoder per family
/// </code>
/// Inputs: images B×3×S×S with values in [0, 1]; questions B×3×18 (family t's question in row t).
/// </summary>
public sealed class SortOfClevrModel : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Tasks: the three question families.</summary>
    public const int Tasks = 3;

    private readonly nn.Module<Tensor, Tensor>? cnn;       // CnnCells only
    private readonly Linear cellEmbedding;
    private readonly Parameter? positions;
    private readonly Tensor? cellCoordinates;
    private readonly nn.Module<Tensor, Tensor> imageBlocks;
    private readonly Parameter classTokens;               // CLS_t: T×d
    private readonly ModuleList<Linear> questionEmbeddings;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> encoders;
    private readonly nn.Module<Tensor, Tensor> interaction;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> decoders;
    private readonly ModuleList<LayerNorm> decoderNorms;
    private readonly ModuleList<Linear> answerHeads;

    /// <summary>Builds the model; validates <paramref name="options"/> first.</summary>
    public SortOfClevrModel(SortOfClevrModelOptions options, string name = "sort_of_clevr") : base(name)
    {
        options.Validate();
        Options = options;
        var o = options;
        const int cnnChannels = 24;
        if (o.FrontEnd == ClevrFrontEnd.Patches)
        {
            cellEmbedding = nn.Linear(3 * o.PatchSize * o.PatchSize, o.Width);
            positions = new Parameter(TruncatedNormal.Fill(empty(o.Cells, o.Width), std: 0.02));
        }
        else
        {
            var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
            for (int i = 0; i < 4; i++)
            {
                layers.Add(($"conv{i}", nn.Conv2d(i == 0 ? 3 : cnnChannels, cnnChannels, 3, stride: 2, padding: 1)));
                layers.Add(($"bn{i}", nn.BatchNorm2d(cnnChannels)));
                layers.Add(($"relu{i}", nn.ReLU()));
            }
            cnn = nn.Sequential(layers);
            cellEmbedding = nn.Linear(cnnChannels + 2, o.Width);
            cellCoordinates = CellCoordinates(o.CnnGrid);
        }
        imageBlocks = TransformerBlock.Stack("image_blocks", o.ImageDepth, o.Width, o.Heads, o.MlpRatio, o.Dropout);
        classTokens = new Parameter(TruncatedNormal.Fill(empty(Tasks, o.Width), std: 0.02));
        questionEmbeddings = nn.ModuleList(Enumerable.Range(0, Tasks).Select(_ => nn.Linear(SortOfClevr.QuestionWidth, o.Width)).ToArray());
        encoders = nn.ModuleList(Enumerable.Range(0, Tasks).Select(t => TransformerBlock.Stack($"encoder_{t}", o.EncoderDepth, o.Width, o.Heads, o.MlpRatio, o.Dropout)).ToArray());
        interaction = InteractionFactory.Create("interaction", o.Interaction, o.Width, o.Heads, Tasks);
        decoders = nn.ModuleList(Enumerable.Range(0, Tasks).Select(t => TransformerBlock.Stack($"decoder_{t}", o.DecoderDepth, o.Width, o.Heads, o.MlpRatio, o.Dropout)).ToArray());
        decoderNorms = nn.ModuleList(Enumerable.Range(0, Tasks).Select(_ => nn.LayerNorm(o.Width)).ToArray());
        answerHeads = nn.ModuleList(Enumerable.Range(0, Tasks).Select(_ => nn.Linear(o.Width, SortOfClevr.AnswerClasses)).ToArray());
        RegisterComponents();
    }

    /// <summary>The options this model was built from.</summary>
    public SortOfClevrModelOptions Options { get; }

    /// <summary>The interaction module (KEM's <see cref="KnowledgeExtraction.Trace"/> for inspection).</summary>
    public nn.Module<Tensor, Tensor> Interaction => interaction;

    /// <summary>Tokens per task entering the interaction: CLS, question, then the image cells.</summary>
    public int TokensPerTask => 2 + Options.Cells;

    /// <summary>images B×3×S×S in [0, 1], questions B×3×18 → answer logits B×3×10.</summary>
    public override Tensor forward(Tensor images, Tensor questions)
    {
        var mixed = interaction.call(EncodeTasks(images, questions));                  // (c) B×3×(2+c)×d
        var logits = Enumerable.Range(0, Tasks).Select(t =>
            answerHeads[t].call(decoderNorms[t].call(decoders[t].call(mixed.select(1, t))).select(1, 0)));  // (d) CLS → B×10
        return stack(logits, 1);                                                        // B×3×10
    }

    /// <summary>Stages (a) and (b): the task tokens X = [X_1; X_2; X_3], B×3×(2+c)×d, that the interaction reads.</summary>
    public Tensor EncodeTasks(Tensor images, Tensor questions)
    {
        if (images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != Options.ImageSize || images.shape[3] != Options.ImageSize)
            throw new ArgumentException($"Expected images B×3×{Options.ImageSize}×{Options.ImageSize}, got [{string.Join("×", images.shape)}].", nameof(images));
        if (questions.dim() != 3 || questions.shape[1] != Tasks || questions.shape[2] != SortOfClevr.QuestionWidth || questions.shape[0] != images.shape[0])
            throw new ArgumentException($"Expected questions B×{Tasks}×{SortOfClevr.QuestionWidth}, got [{string.Join("×", questions.shape)}].", nameof(questions));
        var cells = imageBlocks.call(Cells(images));                                   // (a) Z: B×c×d
        var batch = images.shape[0];
        var tasks = Enumerable.Range(0, Tasks).Select(t =>
        {
            var cls = classTokens[t].expand(batch, 1, -1);                              // B×1×d
            var question = questionEmbeddings[t].call(questions.select(1, t)).unsqueeze(1);   // B×1×d
            return encoders[t].call(cat([cls, question, cells], 1));                   // (b) B×(2+c)×d
        });
        return stack(tasks, 1);
    }

    /// <summary>images B×3×S×S → cell tokens B×c×d (before the image blocks).</summary>
    private Tensor Cells(Tensor images)
    {
        var batch = images.shape[0];
        if (Options.FrontEnd == ClevrFrontEnd.Patches)
        {
            int p = Options.PatchSize, side = Options.ImageSize / p;
            // B×3×S×S → B×3×g×p×g×p → B×g×g×3×p×p → B×g²×3p²  (row-major over the patch grid)
            var patches = images.reshape(batch, 3, side, p, side, p).permute(0, 2, 4, 1, 3, 5).reshape(batch, side * side, 3 * p * p);
            return cellEmbedding.Apply(patches) + positions!;
        }
        var grid = cnn!.call(images);                                                 // B×24×g×g
        var features = grid.flatten(2).transpose(1, 2);                                // B×g²×24
        return cellEmbedding.Apply(cat([features, cellCoordinates!.expand(batch, -1, -1)], -1));   // B×g²×26 → B×g²×d
    }

    /// <summary>(x, y) of every cell centre in [−1, 1], row-major, 1×g²×2.</summary>
    private static Tensor CellCoordinates(int grid)
    {
        var values = new float[grid * grid * 2];
        for (int r = 0; r < grid; r++)
            for (int c = 0; c < grid; c++)
            {
                values[2 * (r * grid + c)] = grid == 1 ? 0f : -1f + 2f * c / (grid - 1);
                values[2 * (r * grid + c) + 1] = grid == 1 ? 0f : -1f + 2f * r / (grid - 1);
            }
        return tensor(values, [1, grid * grid, 2]);
    }
}
