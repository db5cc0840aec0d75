using System.Diagnostics;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>Sizes and iteration counts of one run (issue #6); <see cref="Quick"/> shrinks everything for a CPU smoke test.</summary>
internal sealed record Config
{
    public int Batch { get; init; } = 8;
    public int Width { get; init; } = 384;
    public int Heads { get; init; } = 6;
    public int Slots { get; init; } = 20;
    public int TopK { get; init; } = 3;
    public int[] TaskCounts { get; init; } = [2, 3, 5];
    public int[] TokenCounts { get; init; } = [252, 1008, 4032];
    public string[] Dtypes { get; init; } = ["bf16", "fp32"];   // bf16 first: the targets are bf16
    public int Warmup { get; init; } = 3;
    public double WarmupSeconds { get; init; } = 0.5;
    public int MinIters { get; init; } = 10;
    public int MaxIters { get; init; } = 50;
    public double MinSeconds { get; init; } = 0.4;
    public double MaxSeconds { get; init; } = 2.0;
    public int QueuedIters { get; init; } = 10;
    public double QueuedSeconds { get; init; } = 0.3;
    public int MemoryIters { get; init; } = 3;
    // Whole step (MODEL-SPEC §1, Gpu448); the image also gives the seq module rows their token grid
    public int ImageHeight { get; init; } = 448;
    public int ImageWidth { get; init; } = 576;
    public int TokenStride { get; init; } = 16;
    public int BackboneDepth { get; init; } = 4;
    public int[] StepTaskCounts { get; init; } = [2, 3];
    public int StepWarmup { get; init; } = 5;
    public double StepWarmupSeconds { get; init; } = 2.0;
    public int StepMinIters { get; init; } = 15;
    public int StepMaxIters { get; init; } = 40;
    // Soak / busy
    public int SoakImages { get; init; } = 96;
    public int SoakReportEvery { get; init; } = 50;
    // Subsets (--kinds, --tasks, --tokens, --step-tasks): a short diagnostic run; null kinds = all
    public string[]? Kinds { get; init; }
    public bool Augment { get; init; }

    public bool Runs(string kind) => Kinds is null || Kinds.Contains(kind);

    public static Config Quick => new()
    {
        // 8, 32, 128 tokens: the 32×64 image at strides 16, 8, 4, so the seq rows have a grid (and pooled keys at 8 and 4)
        Batch = 2, Width = 32, Heads = 4, Slots = 4, TopK = 3, TaskCounts = [2, 3], TokenCounts = [8, 32, 128],
        Warmup = 1, WarmupSeconds = 0, MinIters = 2, MaxIters = 3, MinSeconds = 0, MaxSeconds = 1,
        ImageHeight = 32, ImageWidth = 64, TokenStride = 16, BackboneDepth = 1, StepTaskCounts = [2, 3],
        StepWarmup = 1, StepWarmupSeconds = 0, StepMinIters = 2, StepMaxIters = 3, SoakImages = 8, SoakReportEvery = 5, QueuedIters = 3,
    };

    public Schedule ModuleSchedule => new(Warmup, WarmupSeconds, MinIters, MaxIters, MinSeconds, MaxSeconds, QueuedIters, QueuedSeconds, MemoryIters);
    public Schedule StepSchedule => new(StepWarmup, StepWarmupSeconds, StepMinIters, StepMaxIters, MinSeconds, MaxSeconds * 2, QueuedIters, QueuedSeconds, MemoryIters);
}

/// <summary>Wall-clock budget of the whole run: once spent, remaining rows are written as skipped with the reason.</summary>
internal sealed class Budget(double seconds)
{
    private readonly Stopwatch clock = Stopwatch.StartNew();
    public double Seconds { get; } = seconds;
    public bool Exceeded => clock.Elapsed.TotalSeconds > Seconds;
    public TimeSpan Remaining => double.IsPositiveInfinity(Seconds) ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(Math.Max(1, Seconds - clock.Elapsed.TotalSeconds));
}

internal static class Program
{
    private static bool gpuDevice(torch.Device d) => d.type == DeviceType.CUDA;

    private const string Usage = """
        Kem.Bench: GPU benchmark of KemMl's interaction modules and training step (issue #6).
          --modules           KEM, sKEM, cross-attention, sequential CTAM: forward+backward, T∈{2,3,5}, n∈{252,1008,4032}, fp32 and bf16
          --step              whole training step at 448×576, B=8, 2 and 3 tasks, KEM vs CA vs None
          --graphs            KEM, sKEM, CA forward+backward captured as one CUDA graph and replayed (launches removed; CUDA + graph shim)
          --phases            the KEM whole step cut after the forward pass, after the backward pass, and whole
          --segments          the KEM step's forward by stage (backbone+encoders, interaction, whole forward, losses)
          --probe             host cost per op kind on tiny tensors, and which step parts wait for the GPU (a host sync)
          --soak N            N steps through MultiTaskTrainingLoop.Fit on generated data: memory over time, GPU busy %
          --busy              same as --soak 300
          --out DIR           where csharp.jsonl goes (default: current folder)
          --quick             tiny sizes (CPU smoke test)
          --device D          auto (default), cuda or cpu
          --budget-s S        stop measuring after S seconds (remaining rows are written as skipped)
          --warmup-s S        warm-up of every module row (default 0.5) and whole-step row (default 2), seconds
          --dtypes a,b        subset of fp32,bf16 for --modules / --graphs
          --kinds a,b         subset of kem,skem,ca,seq (modules) and kem,ca,none (step)
          --tasks a,b         task counts of --modules / --graphs;  --tokens a,b: tokens per task of --modules / --graphs
          --step-tasks a,b    task counts of --step (2 and/or 3)
          --augment           --soak trains with AugmentationOptions.Nyud (flip, scale, rotate on the device)
        """;

    public static int Main(string[] args)
    {
        bool modules = false, graphs = false, step = false, quick = false, phases = false, segments = false, probe = false;
        int soak = 0;
        string output = ".", deviceName = "auto";
        double budgetSeconds = double.PositiveInfinity;
        double? warmupSeconds = null;
        string[]? dtypes = null, kinds = null;
        int[]? taskCounts = null, tokenCounts = null, stepTaskCounts = null;
        bool augment = false;
        static int[] Ints(string list) => list.Split(',').Select(int.Parse).ToArray();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--modules": modules = true; break;
                case "--graphs": graphs = true; break;
                case "--step": step = true; break;
                case "--phases": phases = true; break;
                case "--segments": segments = true; break;
                case "--probe": probe = true; break;
                case "--soak": soak = int.Parse(args[++i]); break;
                case "--busy": soak = Math.Max(soak, 300); break;
                case "--out": output = args[++i]; break;
                case "--quick": quick = true; break;
                case "--device": deviceName = args[++i]; break;
                case "--budget-s": budgetSeconds = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--warmup-s": warmupSeconds = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--dtypes": dtypes = args[++i].Split(','); break;
                case "--kinds": kinds = args[++i].Split(','); break;
                case "--tasks": taskCounts = Ints(args[++i]); break;
                case "--tokens": tokenCounts = Ints(args[++i]); break;
                case "--step-tasks": stepTaskCounts = Ints(args[++i]); break;
                case "--augment": augment = true; break;
                case "-h" or "--help": Console.WriteLine(Usage); return 0;
                default: Console.Error.WriteLine($"Unknown argument '{args[i]}'.\n{Usage}"); return 2;
            }
        }
        if (!modules && !graphs && !step && !phases && !segments && !probe && soak == 0) { Console.Error.WriteLine(Usage); return 2; }

        var device = deviceName switch
        {
            "cpu" => torch.CPU,
            "cuda" => Devices.Resolve(ComputeDevice.Cuda),
            _ => Devices.Resolve(ComputeDevice.Auto),
        };
        var config = quick ? Config.Quick : new Config();
        if (quick && !gpuDevice(device)) torch.set_num_threads(1);   // tiny CPU smoke test: OpenMP spinning only slows a shared machine
        if (dtypes is not null) config = config with { Dtypes = dtypes };
        if (warmupSeconds is { } w) config = config with { WarmupSeconds = w, StepWarmupSeconds = w };
        config = config with
        {
            Kinds = kinds, Augment = augment,
            TaskCounts = taskCounts ?? config.TaskCounts, TokenCounts = tokenCounts ?? config.TokenCounts, StepTaskCounts = stepTaskCounts ?? config.StepTaskCounts,
        };
        Directory.CreateDirectory(output);
        var results = new Results(Path.Combine(output, "csharp.jsonl"));
        var gpu = new Gpu(device);
        if (gpu.IsCuda) { using var init = torch.zeros(1, device: device); gpu.Sync(); }   // CUDA and its allocator up before any statistic is read
        var budget = new Budget(budgetSeconds);
        var build = typeof(Program).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "?";   // 1.0.0+<commit built>
        Console.WriteLine($"# Kem.Bench {build} on {gpu.Name}; torch allocator statistics: {(gpu.IsCuda ? (CudaAllocator.Available ? "yes (shim)" : "no (shim not built): NVML only") : "n/a")}; NVML: {(Nvml.Instance is null ? "no" : "yes")}" +
                          (graphs ? $"; CUDA graph shim: {(CudaGraph.Available ? "yes" : "no")}" : ""));

        if (modules) ModuleBench.Run(config, gpu, results, budget);
        if (graphs) ModuleBench.RunGraphs(config, gpu, results, budget);
        if (step) StepBench.Run(config, gpu, results, budget);
        if (phases || segments) StepBench.RunParts(config, gpu, results, budget, phases, segments);
        if (probe) HostProbe.Run(config, gpu, results, budget);
        if (soak > 0) SoakBench.Run(config, gpu, results, soak, budget);
        return 0;
    }
}
