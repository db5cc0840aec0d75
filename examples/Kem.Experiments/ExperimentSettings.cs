using System.Globalization;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
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
    public int MemorySlots { get; init; } = 20;
    public int TopK { get; init; } = 3;
    public EtfMode Etf { get; init; } = EtfMode.TaskVertices;
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
                   --m SLOTS --k TOPK --etf TaskVertices|SlotVertices
          sweeps   --sweep-m 5,10,20 --sweep-k 1,3,5 [--sweep-method StableKem|Kem] [--sweep-seeds 1]
          machine  --device auto|cpu|cuda --threads N (torch intra-op threads; 0 = libtorch default) --out DIR
        """;

    public static ExperimentSettings Parse(string[] args)
    {
        var s = new ExperimentSettings();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] is "-h" or "--help") throw new ArgumentException(Usage);
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
                "--augment" => s with { Augment = Preset(value) },
                "--width" => s with { ModelWidth = Int(value) },
                "--heads" => s with { Heads = Int(value) },
                "--backbone-depth" => s with { BackboneDepth = Int(value) },
                "--task-depth" => s with { TaskDepth = Int(value) },
                "--stride" => s with { TokenStride = Int(value) },
                "--backbone" => s with { Backbone = Enum.Parse<BackboneKind>(value, ignoreCase: true) },
                "--task-blocks" => s with { TaskBlocks = Enum.Parse<BlockAttention>(value, ignoreCase: true) },
                "--m" => s with { MemorySlots = Int(value) },
                "--k" => s with { TopK = Int(value) },
                "--etf" => s with { Etf = Enum.Parse<EtfMode>(value, ignoreCase: true) },
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
        return s;
    }

    private static string Preset(string v)
    {
        AugmentationOptions.Preset(v); // throws for an unknown name, listing the presets
        return v.Trim().ToLowerInvariant();
    }

    private static int Int(string v) => int.Parse(v, CultureInfo.InvariantCulture);
    private static int[] Ints(string v) => v.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Int).ToArray();
}
