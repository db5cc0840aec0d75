using System.Globalization;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;

namespace Kem.Experiments;

/// <summary>Which data the comparison runs on.</summary>
internal enum DatasetKind { Generated, Nyud, Pascal }

/// <summary>Command-line settings; defaults are the CPU size (generated NYUD-like scenes, 64×64, `Small`-like network at d 64).</summary>
internal sealed record ExperimentSettings
{
    public DatasetKind Dataset { get; init; } = DatasetKind.Generated;
    public string? DatasetPath { get; init; }
    /// <summary>Generated: images to generate (default 320 / 80). Real data: the first N ids of the split (default: all).</summary>
    public int? Train { get; init; }
    public int? Val { get; init; }
    public int Height { get; init; } = 64;
    public int Width { get; init; } = 64;
    public string[] Tasks { get; init; } = [];
    public int[] Seeds { get; init; } = [1, 2];
    public string[] Methods { get; init; } = [.. Kem.Experiments.Methods.Default];
    public int Epochs { get; init; } = 8;
    public int Batch { get; init; } = 8;
    public double LearningRate { get; init; } = 1e-3;
    public int Warmup { get; init; } = 40;
    public int ModelWidth { get; init; } = 64;
    public int Heads { get; init; } = 4;
    public int BackboneDepth { get; init; } = 2;
    public int TaskDepth { get; init; } = 1;
    public int TokenStride { get; init; } = 8;
    public BackboneKind Backbone { get; init; } = BackboneKind.TinyViT;
    public BlockAttention TaskBlocks { get; init; } = BlockAttention.Global;
    /// <summary>A named configuration (MODEL-SPEC §1); the model flags given on the command line override its values.</summary>
    public NetworkPreset Preset { get; init; } = NetworkPreset.Custom;
    /// <summary>
    /// The interaction flags (--m, --k, --etf and the ablations of MODEL-SPEC §15 items 1, 2, 3, 6, 18, 23 and §1's task
    /// embedding), in command-line order, as edits of the preset's <see cref="InteractionOptions"/> or the library defaults;
    /// the KEM-only ones apply to the Kem and StableKem rows.
    /// </summary>
    public IReadOnlyList<Func<InteractionOptions, InteractionOptions>> InteractionEdits { get; init; } = [];
    /// <summary>The interaction options the flags give on top of the library defaults (the network applies them to its preset's).</summary>
    public InteractionOptions Interaction => Edit(new InteractionOptions());
    /// <summary>Depth metrics drop gt ≥ this many metres (MODEL-SPEC §9 DepthEvalMaxMetres; null: no cap).</summary>
    public float? DepthEvalMaxMetres { get; init; }
    /// <summary>--contrast: MTFormer's cross-task contrastive loss (MODEL-SPEC §7, weight 0.01) in every multi-task row's training.</summary>
    public bool Contrast { get; init; }
    /// <summary>--checkpoints: every training run writes a checkpoint under OUT/checkpoints, so a rerun after a crash resumes (finished runs return at once).</summary>
    public bool Checkpoints { get; init; }
    /// <summary>--eval-original-size: score the val split against its labels at their stored (original) size, predictions resized to them (MODEL-SPEC §9 option).</summary>
    public bool EvalOriginalSize { get; init; }
    /// <summary>The options given on the command line (e.g. "--width"), so that a preset keeps the values not given.</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();
    public int[] SweepM { get; init; } = [];
    public int[] SweepK { get; init; } = [];
    public string SweepMethod { get; init; } = Kem.Experiments.Methods.StableKem;
    public int[]? SweepSeeds { get; init; }
    public ComputeDevice Device { get; init; } = ComputeDevice.Auto;
    public int Threads { get; init; }
    /// <summary>--augment: none, nyud or pascal; null = the dataset's recipe (nyud for --nyud, pascal for --pascal, none for generated scenes).</summary>
    public string? Augment { get; init; }
    /// <summary>The augmentation preset in use (MODEL-SPEC §11).</summary>
    public string AugmentationName => Augment ?? Dataset switch { DatasetKind.Nyud => "nyud", DatasetKind.Pascal => "pascal", _ => "none" };
    /// <summary>The training-time augmentation (training batches only).</summary>
    public AugmentationOptions Augmentation => AugmentationOptions.Preset(AugmentationName);
    public string Out { get; init; } = Path.Combine("out", "experiments");

    public const string Usage = """
        Kem.Experiments — the paper's Table 2 comparison (STL, hard sharing, cross-attention, KEM, sKEM) with N seeds.
          data     --nyud PATH | --pascal PATH (default: generated NYUD-like scenes)
                   --train N --val N (generated: how many, default 320/80; real data: first N ids, default all)
                   --size HxW (network input)   --tasks a,b (generated/NYUD: Segmentation,Depth,Normals,Edges;
                   PASCAL: Segmentation,HumanParts,Saliency,Normals,Edges)
          runs     --seeds 1,2,3   --methods STL,HardSharing,CrossAttention,Kem,StableKem[,NoInteraction]
          budget   --epochs E --batch B --lr LR --warmup STEPS   (identical for every method)
                   --augment none|nyud|pascal (training batches only; default: nyud for --nyud, pascal for --pascal,
                   none for generated scenes)
          model    --width d --heads h --backbone-depth N --task-depth N (encoder = decoder blocks) --stride s
                   --backbone TinyViT|ConvStem|MultiScale|TinySwin|SwinT --task-blocks Global|Window
                   --preset Tiny|Small|Dev|Gpu448|Paper (MODEL-SPEC §1 sizes; the model flags given override it;
                   without --size: the preset's NYUD or PASCAL input size)
                   --m SLOTS --k TOPK --etf TaskVertices|SlotVertices|Span
          ablation --topk-mode Masked|Renormalized --memory-update Residual|Replace|Gated --memory-mlp
                   --memory-init TruncatedNormal|Identity --per-task-write-query --topk-axis Tokens|Slots --kem-blocks N --score-scale InvSqrtHeadDim|None
                   --no-etf-input-projection --task-embedding   (KEM options: Kem and StableKem rows only)
                   --ca-form Global|MtformerWindow --ca-window W   (the CrossAttention row: MTFormer's windowed form, windows W×W, default 7)
                   --contrast   (MTFormer's cross-task contrastive loss, weight 0.01, in every multi-task row's training)
          eval     --depth-eval-max METRES (drop depth gt ≥ METRES; 6.5535 = MTFormer's NYUD range; default no cap)
                   --eval-original-size (score val labels at their stored size, predictions resized to it; default: the network's size)
          sweeps   --sweep-m 5,10,20 --sweep-k 1,3,5 [--sweep-method StableKem|Kem] [--sweep-seeds 1]
          machine  --device auto|cpu|cuda --threads N (torch intra-op threads; 0 = libtorch default) --out DIR
                   --checkpoints (each run checkpoints under OUT/checkpoints after every epoch; rerun the same command to resume)
        """;

    public static ExperimentSettings Parse(string[] args)
    {
        var s = new ExperimentSettings();
        var given = new HashSet<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] is "-h" or "--help") throw new ArgumentException(Usage);
            given.Add(args[i]);
            // switches: no value
            if (args[i] is "--eval-original-size" or "--checkpoints" or "--contrast")
            {
                s = args[i] switch
                {
                    "--checkpoints" => s with { Checkpoints = true },
                    "--contrast" => s with { Contrast = true },
                    _ => s with { EvalOriginalSize = true },
                };
                continue;
            }
            if (args[i] is "--memory-mlp" or "--no-etf-input-projection" or "--task-embedding" or "--per-task-write-query")
            {
                s = s.Edit(args[i] switch
                {
                    "--memory-mlp" => o => o with { MemoryMlp = true },
                    "--per-task-write-query" => o => o with { PerTaskWriteQuery = true },
                    "--no-etf-input-projection" => o => o with { EtfInputProjection = false },
                    _ => o => o with { TaskEmbedding = true },
                });
                continue;
            }
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"Option {args[i]} needs a value.\n{Usage}");
            s = args[i] switch
            {
                "--nyud" => s with { Dataset = DatasetKind.Nyud, DatasetPath = value },
                "--pascal" => s with { Dataset = DatasetKind.Pascal, DatasetPath = value },
                "--train" => s with { Train = Int(value) },
                "--val" => s with { Val = Int(value) },
                "--size" => value.Split('x') is [var h, var w] ? s with { Height = Int(h), Width = Int(w) } : throw new ArgumentException("--size takes HxW, e.g. 64x64."),
                "--tasks" => s with { Tasks = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--seeds" => s with { Seeds = Ints(value) },
                "--methods" => s with { Methods = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--epochs" => s with { Epochs = Int(value) },
                "--batch" => s with { Batch = Int(value) },
                "--lr" => s with { LearningRate = double.Parse(value, CultureInfo.InvariantCulture) },
                "--warmup" => s with { Warmup = Int(value) },
                "--augment" => s with { Augment = AugmentPreset(value) },
                "--width" => s with { ModelWidth = Int(value) },
                "--heads" => s with { Heads = Int(value) },
                "--backbone-depth" => s with { BackboneDepth = Int(value) },
                "--task-depth" => s with { TaskDepth = Int(value) },
                "--stride" => s with { TokenStride = Int(value) },
                "--backbone" => s with { Backbone = Enum.Parse<BackboneKind>(value, ignoreCase: true) },
                "--task-blocks" => s with { TaskBlocks = Enum.Parse<BlockAttention>(value, ignoreCase: true) },
                "--m" => s.Edit(Int(value), (o, v) => o with { MemorySlots = v }),
                "--k" => s.Edit(Int(value), (o, v) => o with { TopK = v }),
                "--etf" => s.Edit(Choice<EtfMode>(args[i], value), (o, v) => o with { EtfMode = v }),
                "--preset" => s with { Preset = Choice<NetworkPreset>(args[i], value) },
                "--topk-mode" => s.Edit(Choice<TopKMode>(args[i], value), (o, v) => o with { TopKMode = v }),
                "--memory-update" => s.Edit(Choice<MemoryUpdate>(args[i], value), (o, v) => o with { MemoryUpdate = v }),
                "--memory-init" => s.Edit(Choice<MemoryInit>(args[i], value), (o, v) => o with { MemoryInit = v }),
                "--topk-axis" => s.Edit(Choice<TopKAxis>(args[i], value), (o, v) => o with { TopKAxis = v }),
                "--kem-blocks" => s.Edit(Int(value, args[i]), (o, v) => o with { KemBlocks = v }),
                "--score-scale" => s.Edit(Choice<ScoreScale>(args[i], value), (o, v) => o with { ScoreScale = v }),
                "--ca-form" => s.Edit(Choice<CrossAttentionForm>(args[i], value), (o, v) => o with { CrossAttentionForm = v }),
                "--ca-window" => s.Edit(Int(value, args[i]), (o, v) => o with { CrossAttentionWindow = v }),
                "--depth-eval-max" => s with { DepthEvalMaxMetres = Metres(args[i], value) },
                "--sweep-m" => s with { SweepM = Ints(value) },
                "--sweep-k" => s with { SweepK = Ints(value) },
                "--sweep-method" => s with { SweepMethod = value },
                "--sweep-seeds" => s with { SweepSeeds = Ints(value) },
                "--device" => s with { Device = Enum.Parse<ComputeDevice>(value, ignoreCase: true) },
                "--threads" => s with { Threads = Int(value) },
                "--out" => s with { Out = value },
                _ => throw new ArgumentException($"Unknown option {args[i]}.\n{Usage}"),
            };
            i++;
        }
        foreach (string m in s.Methods.Append(s.SweepMethod))
            if (!Kem.Experiments.Methods.All.Contains(m))
                throw new ArgumentException($"Unknown method '{m}'; methods: {string.Join(", ", Kem.Experiments.Methods.All)}.");
        if (s.Seeds.Length == 0) throw new ArgumentException("--seeds needs at least one seed.");
        s = s with { Given = given };
        if (s.Preset != NetworkPreset.Custom && !given.Contains("--size"))
        {
            var (_, h, w) = NetworkPresets.IntendedSizes(s.Preset)[s.Dataset == DatasetKind.Pascal ? ^1 : 0];
            s = s with { Height = h, Width = w };
        }
        return s;
    }

    /// <summary>
    /// The shared network of every method: <see cref="Preset"/>'s options at the input size with the model flags given on the command
    /// line overriding them, or (Custom) the flags and their defaults; the ablation flags set the interaction.
    /// </summary>
    public MultiTaskNetworkOptions NetworkOptions(IReadOnlyList<TaskSpec> tasks)
    {
        var preset = Preset == NetworkPreset.Custom ? null : NetworkPresets.Create(Preset, Height, Width, [.. tasks]);
        var mine = new MultiTaskNetworkOptions
        {
            Tasks = [.. tasks], ImageHeight = Height, ImageWidth = Width, Backbone = Backbone, TokenStride = TokenStride,
            TaskBlocks = TaskBlocks, Width = ModelWidth, Heads = Heads, BackboneDepth = BackboneDepth, EncoderDepth = TaskDepth, DecoderDepth = TaskDepth,
            Interaction = Edit(preset?.Interaction ?? new InteractionOptions()),   // already the preset's, with the flags' edits
        };
        return NetworkPresets.Overlay(preset, mine, field => field == nameof(mine.Interaction) || Given.Contains(FlagOf[field]));
    }

    // The flag that sets each preset-held network field (NetworkPresets.Overlay asks by property name).
    private static readonly Dictionary<string, string> FlagOf = new()
    {
        [nameof(MultiTaskNetworkOptions.Backbone)] = "--backbone", [nameof(MultiTaskNetworkOptions.TokenStride)] = "--stride",
        [nameof(MultiTaskNetworkOptions.Width)] = "--width", [nameof(MultiTaskNetworkOptions.Heads)] = "--heads",
        [nameof(MultiTaskNetworkOptions.BackboneDepth)] = "--backbone-depth", [nameof(MultiTaskNetworkOptions.EncoderDepth)] = "--task-depth",
        [nameof(MultiTaskNetworkOptions.DecoderDepth)] = "--task-depth", [nameof(MultiTaskNetworkOptions.TaskBlocks)] = "--task-blocks",
    };

    private InteractionOptions Edit(InteractionOptions start) => InteractionEdits.Aggregate(start, (o, edit) => edit(o));

    private ExperimentSettings Edit(Func<InteractionOptions, InteractionOptions> edit) => this with { InteractionEdits = [.. InteractionEdits, edit] };

    // The value is parsed (and checked) now; the edit only sets it.
    private ExperimentSettings Edit<T>(T value, Func<InteractionOptions, T, InteractionOptions> set) => Edit(o => set(o, value));

    /// <summary>The evaluation settings (MODEL-SPEC §9) used for every method and the constant predictor.</summary>
    public DenseMetricOptions MetricOptions => new() { DepthEvalMaxMetres = DepthEvalMaxMetres, ResizePredictionsToLabels = EvalOriginalSize };

    private static string AugmentPreset(string v)
    {
        AugmentationOptions.Preset(v); // throws for an unknown name, listing the presets
        return v.Trim().ToLowerInvariant();
    }

    private static int Int(string v) => int.Parse(v, CultureInfo.InvariantCulture);

    private static int Int(string v, string flag) => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
        ? n : throw new ArgumentException($"{flag} takes a whole number, got '{v}'.");

    private static float Metres(string flag, string v) =>
        float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out float m) && m > 0 && float.IsFinite(m)
            ? m : throw new ArgumentException($"{flag} takes a positive number of metres (e.g. 6.5535, MTFormer's NYUD range), got '{v}'.");

    /// <summary>An enum value by name (case-insensitive); the error names the flag and the allowed values.</summary>
    public static T Choice<T>(string flag, string v) where T : struct, Enum =>
        Enum.GetNames<T>().FirstOrDefault(n => string.Equals(n, v, StringComparison.OrdinalIgnoreCase)) is { } name
            ? Enum.Parse<T>(name)
            : throw new ArgumentException($"{flag} takes {string.Join("|", Enum.GetNames<T>())}, got '{v}'.");
    private static int[] Ints(string v) => v.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Int).ToArray();
}
