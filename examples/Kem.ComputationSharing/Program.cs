// Computation sharing between single-task models (MODEL-SPEC §6): train one ComputationSharingNetwork (a dense base task,
// sub-tasks as sparse weight and activation deltas) and, for comparison, one separate single-task model per task with the
// same architecture and recipe; print the parameters stored, the multiply-adds per image actually needed, and the metrics.
// Usage: dotnet run -c Release --project examples/Kem.ComputationSharing -- [--train 160] [--val 48] [--size 64x64]
//        [--epochs 8] [--batch 8] [--width 64] [--base Segmentation] [--density 0.1] [--threshold 0.1] [--penalty 0.1]
//        [--device auto|cpu|cuda] [--seed 1] [--no-stl]
using System.Diagnostics;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

var s = Settings.Parse(args);
var clock = Stopwatch.StartNew();
var tasks = new[] { TaskSpec.Segmentation(SceneGenerator.ClassCount), TaskSpec.DepthTask(), TaskSpec.NormalsTask() };
var generator = new SceneGenerator(new SceneOptions { Width = s.Width, Height = s.Height, Seed = s.Seed });
var train = Scenes.ToDataset(generator.GenerateMany(s.Train, 0), tasks, "generated training scenes");
var val = Scenes.ToDataset(generator.GenerateMany(s.Val, s.Train), tasks, "generated validation scenes");
Console.WriteLine($"{s.Train} + {s.Val} generated scenes at {s.Width}×{s.Height} in {clock.Elapsed.TotalSeconds:F0} s.");

var sharingOptions = new ComputationSharingOptions { BaseTask = s.BaseTask, DeltaDensity = s.Density, ActivationThreshold = s.Threshold, ActivationPenalty = s.Penalty };
MultiTaskNetworkOptions Network(params TaskSpec[] t) => new()
{
    Tasks = t, Architecture = NetworkArchitecture.ComputationSharing, ImageHeight = s.Height, ImageWidth = s.Width,
    Backbone = BackboneKind.TinyViT, TokenStride = 8, Width = s.ModelWidth, Heads = 4, BackboneDepth = 2, EncoderDepth = 2, DecoderDepth = 2,
    ComputationSharing = sharingOptions,
};
var recipe = new TrainingOptions
{
    Epochs = s.Epochs, BatchSize = s.Batch, LearningRate = 2e-3, WarmupSteps = 20, Device = s.Device, Seed = s.Seed, ReportEverySteps = 1000,
};

torch.manual_seed(s.Seed);
var shared = (ComputationSharingNetwork)MultiTaskModel.Create(Network(tasks));
var fit = MultiTaskTrainingLoop.Fit(shared, train, null, recipe);
Console.WriteLine($"Computation sharing: base {shared.BaseTask.Name}, sub-tasks {string.Join(", ", shared.SubTasks.Select(t => t.Name))}; " +
                  $"{fit.Steps} steps on {fit.Device} in {fit.Elapsed.TotalSeconds:F0} s.");
var sharedMetrics = Evaluation.Evaluate(shared, val);

IReadOnlyList<TaskMetrics>? separateMetrics = null;
if (!s.SkipSingleTask)
{
    var perTask = new List<TaskMetrics>();
    foreach (var (task, t) in tasks.Select((task, t) => (task, t)))
    {
        torch.manual_seed(s.Seed);
        using var single = MultiTaskModel.Create(Network(task) with { ComputationSharing = sharingOptions with { BaseTask = null } });
        var one = MultiTaskTrainingLoop.Fit(single, Scenes.Select(train, t), null, recipe);
        Console.WriteLine($"Single-task {task.Name}: {one.Steps} steps in {one.Elapsed.TotalSeconds:F0} s.");
        perTask.Add(Evaluation.Evaluate(single, Scenes.Select(val, t))[0]);
    }
    separateMetrics = perTask;
}
var baseline = TrivialBaseline.Evaluate(train, val);

// Costs, measured on the first validation images (activation sparsity depends on the data).
var device = shared.parameters().First().device;
int measured = Math.Min(16, s.Val);
using var scope = torch.NewDisposeScope();
var images = torch.tensor(Enumerable.Range(0, measured).SelectMany(i => val.Image(i).ToArray()).ToArray(), new long[] { measured, 3, s.Height, s.Width }).to(device);
var cost = shared.MeasureCost(images);

Console.WriteLine();
Console.WriteLine($"| {tasks.Length} tasks, {s.Width}×{s.Height}, d {s.ModelWidth} | separate single-task models | computation sharing | saving |");
Console.WriteLine("|---|---:|---:|---:|");
Console.WriteLine($"| parameters stored | {cost.SeparateParameters:N0} | {cost.StoredParameters:N0} | {cost.ParameterSaving:P1} |");
Console.WriteLine($"| multiply-adds per image | {cost.SeparateMacs:N0} | {cost.SharedMacs:N0} | {cost.MacSaving:P1} |");
Console.WriteLine();
foreach (var sub in cost.SubTasks)
    Console.WriteLine($"  sub-task {sub.Task}: {sub.DeltaNonZeros:N0} of {sub.DeltaEntries:N0} weight-delta entries stored ({(double)sub.DeltaNonZeros / sub.DeltaEntries:P1}), " +
                      $"{sub.ActivationDensity:P1} of activation deltas above τ = {s.Threshold}, +{sub.Macs:N0} multiply-adds (linear {sub.LinearMacs:N0}, attention {sub.AttentionMacs:N0}, head {sub.HeadMacs:N0})");
Console.WriteLine();
Console.WriteLine($"| task | metric | trivial baseline | {(separateMetrics is null ? "" : "separate single-task | ")}computation sharing |");
Console.WriteLine($"|---|---|---:|{(separateMetrics is null ? "" : "---:|")}---:|");
for (int t = 0; t < tasks.Length; t++)
{
    string role = tasks[t].Name == shared.BaseTask.Name ? " (base)" : "";
    Console.WriteLine($"| {tasks[t].Name}{role} | {Settings.MetricName(sharedMetrics[t])} | {baseline[t].Primary:F3} | " +
                      $"{(separateMetrics is null ? "" : $"{separateMetrics[t].Primary:F3} | ")}{sharedMetrics[t].Primary:F3} |");
}
Console.WriteLine();
Console.WriteLine($"Multiply-adds count convolutions, linear layers and attention products (FLOPs ≈ 2×); sparse index storage not counted. Total {clock.Elapsed.TotalSeconds:F0} s.");

/// <summary>Generated scenes → in-memory datasets.</summary>
internal static class Scenes
{
    public static DenseDataset ToDataset(IReadOnlyList<SceneSample> samples, IReadOnlyList<TaskSpec> tasks, string source)
    {
        int h = samples[0].Height, w = samples[0].Width, n = h * w;
        var images = new float[samples.Count * 3 * n];
        for (int i = 0; i < samples.Count; i++)
            for (int p = 0; p < n; p++)
                for (int c = 0; c < 3; c++)
                    images[(i * 3 + c) * n + p] = samples[i].Rgb[p * 3 + c];   // HWC bytes → CHW 0..255
        var labels = tasks.Select(t => samples.SelectMany(x => t.Kind switch
        {
            TaskKind.SemanticSegmentation => x.Segmentation,
            TaskKind.Depth => x.Depth,
            TaskKind.Normals => x.Normals,
            _ => throw new NotSupportedException(t.Kind.ToString()),
        }).ToArray()).ToArray();
        return new DenseDataset(tasks, h, w, images, labels, source);
    }

    /// <summary>The same images with only task <paramref name="t"/>'s labels.</summary>
    public static DenseDataset Select(DenseDataset d, int t)
    {
        var images = Enumerable.Range(0, d.Count).SelectMany(i => d.Image(i).ToArray()).ToArray();
        var labels = Enumerable.Range(0, d.Count).SelectMany(i => d.Label(t, i).ToArray()).ToArray();
        return new DenseDataset(new[] { d.Tasks[t] }, d.Height, d.Width, images, new[] { labels }, $"task {d.Tasks[t].Name}");
    }
}

/// <summary>Command-line settings (CPU defaults: a few minutes on 2 cores).</summary>
internal sealed record Settings
{
    public int Train { get; init; } = 160;
    public int Val { get; init; } = 48;
    public int Height { get; init; } = 64;
    public int Width { get; init; } = 64;
    public int Epochs { get; init; } = 8;
    public int Batch { get; init; } = 8;
    public int ModelWidth { get; init; } = 64;
    public string? BaseTask { get; init; }
    public double Density { get; init; } = new ComputationSharingOptions().DeltaDensity;
    public float Threshold { get; init; } = new ComputationSharingOptions().ActivationThreshold;
    public float Penalty { get; init; } = new ComputationSharingOptions().ActivationPenalty;
    public ComputeDevice Device { get; init; } = ComputeDevice.Auto;
    public int Seed { get; init; } = 1;
    public bool SkipSingleTask { get; init; }

    public static string MetricName(TaskMetrics m) => m switch
    {
        SegmentationMetrics => "mIoU %",
        DepthMetrics => "RMSE m",
        NormalsMetrics => "mean angle °",
        _ => "primary",
    };

    public static Settings Parse(string[] args)
    {
        var s = new Settings();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--no-stl") { s = s with { SkipSingleTask = true }; continue; }
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--train" => s with { Train = int.Parse(value) },
                "--val" => s with { Val = int.Parse(value) },
                "--size" => value.Split('x') is [var hh, var ww] ? s with { Height = int.Parse(hh), Width = int.Parse(ww) } : throw new ArgumentException("--size takes HxW, e.g. 64x64."),
                "--epochs" => s with { Epochs = int.Parse(value) },
                "--batch" => s with { Batch = int.Parse(value) },
                "--width" => s with { ModelWidth = int.Parse(value) },
                "--base" => s with { BaseTask = value },
                "--density" => s with { Density = double.Parse(value, System.Globalization.CultureInfo.InvariantCulture) },
                "--threshold" => s with { Threshold = float.Parse(value, System.Globalization.CultureInfo.InvariantCulture) },
                "--penalty" => s with { Penalty = float.Parse(value, System.Globalization.CultureInfo.InvariantCulture) },
                "--device" => s with { Device = Enum.Parse<ComputeDevice>(value, ignoreCase: true) },
                "--seed" => s with { Seed = int.Parse(value) },
                _ => throw new ArgumentException($"Unknown option {args[i]}. Options: --train --val --size HxW --epochs --batch --width --base --density --threshold --penalty --device --seed --no-stl."),
            };
            i++;
        }
        return s;
    }
}
