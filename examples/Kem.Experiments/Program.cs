// Kem.Experiments: the paper's Table 2 comparison on one dataset — single-task models per task, hard sharing,
// cross-attention ("KEM w/ CA"), KEM and sKEM — trained with N seeds and the same budget (epochs, batch, learning rate),
// scored on the validation split, with Δm against our own single-task runs (MODEL-SPEC §7, §9, §12).
// Optional sweeps over memory slots m and top-k k (paper Tables 5 and 7).
// Usage: dotnet run -c Release --project examples/Kem.Experiments -- [--nyud PATH | --pascal PATH] [--seeds 1,2] [--epochs 8]
//        [--size 64x64] [--sweep-m 5,10,20] [--sweep-k 1,3,5] [--threads 2] [--out out/experiments]   (--help for all options)
using System.Diagnostics;
using System.Globalization;
using Kem.Experiments;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
ExperimentSettings settings;
try { settings = ExperimentSettings.Parse(args); }
catch (ArgumentException e) { Console.Error.WriteLine(e.Message); return 2; }

if (settings.Threads > 0) torch.set_num_threads(settings.Threads);
var clock = Stopwatch.StartNew();
string outDir = Path.GetFullPath(settings.Out);
Directory.CreateDirectory(outDir);
void Log(string message) => Console.WriteLine($"[{clock.Elapsed:hh\\:mm\\:ss}] {message}");

// 1. Data, through the same IDataView readers a user would use (generated scenes are written in the NYUD layout first).
var ml = new MLContext(seed: 1);
var (train, val, tasks, dataLabel, valLabels) = ExperimentData.Load(ml, settings, outDir, Log);
Log($"Data: {dataLabel}; {train.Count} train / {val.Count} val images at {settings.Height}×{settings.Width}; tasks {string.Join(", ", tasks.Select(t => t.Name))}; training augmentation {settings.AugmentationName}.");

var shared = settings.NetworkOptions(tasks);
try { foreach (var method in settings.Methods.Append(settings.SweepMethod)) Methods.Configure(method, shared).Validate(); }   // each row's own options (e.g. --ca-form: the CrossAttention row)
catch (ArgumentException e) when (settings.Preset != NetworkPreset.Custom)
{
    Console.Error.WriteLine($"{NetworkPresets.Describe(settings.Preset)}; --size is {settings.Height}x{settings.Width}. {e.Message}");
    return 2;
}
var recipe = new TrainingOptions
{
    Epochs = settings.Epochs, BatchSize = settings.Batch, LearningRate = settings.LearningRate, WarmupSteps = settings.Warmup,
    Device = settings.Device, KeepBest = false, ReportEverySteps = 1_000_000,
    Augmentation = settings.Augmentation,
    CrossTaskContrast = settings.Contrast ? new CrossTaskContrastOptions() : null,
};
var device = recipe.ResolveDevice();
string machine = $"{Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
                 $"device {device.type.ToString().ToLowerInvariant()}{(device.type == DeviceType.CUDA ? "" : $", torch threads {torch.get_num_threads()}")}";
Log($"Machine: {machine}.");

// 2. Runs: every method × seed with the same recipe; the network's initial weights are seeded by the run's seed.
var runner = new ComparisonRunner(recipe, train, val, settings.MetricOptions, Log, valLabels,
    settings.Checkpoints ? Path.Combine(outDir, "checkpoints") : null);
var runs = new List<RunResult>();
foreach (int seed in settings.Seeds)
    foreach (string method in settings.Methods)
        runs.Add(runner.Run(method, seed, shared));

var trivial = valLabels is null
    ? TrivialBaseline.Evaluate(train, val, settings.MetricOptions)
    : TrivialBaseline.EvaluateAtLabelSize(train, val.Count, valLabels, settings.MetricOptions);
var report = new ComparisonReport(tasks, runs, trivial);
var sweeps = new List<(string Name, string Value, RunResult Run)>();
int[] sweepSeeds = settings.SweepSeeds ?? settings.Seeds;
foreach (int m in settings.SweepM)
    foreach (int seed in sweepSeeds)
        sweeps.Add(("m", m.ToString(), Reuse(settings.SweepMethod, seed, shared with { Interaction = shared.Interaction with { MemorySlots = m } })));
foreach (int k in settings.SweepK)
    foreach (int seed in sweepSeeds)
        sweeps.Add(("k", k.ToString(), Reuse(settings.SweepMethod, seed, shared with { Interaction = shared.Interaction with { TopK = k } })));

// 3. Report: console, CSV and Markdown.
string command = "dotnet run -c Release --project examples/Kem.Experiments -- " + string.Join(' ', args);
var markdown = report.Markdown(settings, shared, dataLabel, machine, command, clock.Elapsed, sweeps);
Console.WriteLine();
Console.WriteLine(markdown);
File.WriteAllText(Path.Combine(outDir, "comparison.md"), markdown);
File.WriteAllText(Path.Combine(outDir, "comparison.csv"), report.Csv(sweeps));
Log($"Wrote {Path.Combine(outDir, "comparison.md")} and comparison.csv. Total {clock.Elapsed:hh\\:mm\\:ss}.");
return 0;

// A sweep point equal to the main configuration reuses the main run of that seed.
RunResult Reuse(string method, int seed, MultiTaskNetworkOptions options) =>
    runs.FirstOrDefault(r => r.Method == method && r.Seed == seed && r.Interaction == options.Interaction)
    ?? runner.Run(method, seed, options);
