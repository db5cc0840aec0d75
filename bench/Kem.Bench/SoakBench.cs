using System.Diagnostics;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// Trains through the library's own loop (<see cref="MultiTaskTrainingLoop.Fit"/>) on generated data held in host
/// memory, as a user would: batches are gathered and copied by the loop's prefetcher while the GPU works. Reports GPU
/// memory every <see cref="Config.SoakReportEvery"/> steps (allocator and NVML: flat or not over the run) and the GPU
/// busy share: NVML utilisation averaged after the first tenth of the steps, and the wall time of those steps.
/// </summary>
internal static class SoakBench
{
    public static void Run(Config c, Gpu gpu, Results results, int steps, Budget budget)
    {
        const string kind = "kem";
        const int tasks = 2;
        var row = new Dictionary<string, object?>
        {
            ["bench"] = "soak", ["kind"] = kind, ["tasks"] = tasks, ["tokens"] = c.ImageHeight / c.TokenStride * (c.ImageWidth / c.TokenStride),
            ["batch"] = c.Batch, ["image"] = $"{c.ImageHeight}x{c.ImageWidth}", ["dtype"] = gpu.IsCuda ? "bf16" : "fp32", ["device"] = gpu.Name, ["steps"] = steps,
        };
        results.Write(row, budget, () => Measure1(c, gpu, kind, tasks, steps, row, budget.Remaining));
    }

    /// <summary>A data set of random images (0..255) and labels in host memory, like one read from disk.</summary>
    public static DenseDataset Generate(TaskSpec[] tasks, int count, int height, int width, int seed)
    {
        var random = new Random(seed);
        int pixels = height * width;
        var images = new float[count * 3 * pixels];
        for (int i = 0; i < images.Length; i++) images[i] = random.Next(256);
        var labels = tasks.Select(t =>
        {
            var values = new float[count * t.LabelPlanes * pixels];
            for (int i = 0; i < values.Length; i++)
                values[i] = t.Kind switch
                {
                    TaskKind.SemanticSegmentation or TaskKind.Parts => random.NextDouble() < 0.05 ? TaskSpec.IgnoreLabel : random.Next(t.Classes),
                    TaskKind.Depth => 0.5f + 9.5f * random.NextSingle(),
                    TaskKind.Normals => 2 * random.NextSingle() - 1,
                    _ => random.Next(2),
                };
            return values;
        }).ToArray();
        return new DenseDataset(tasks, height, width, images, labels, "generated data");
    }

    private static void Measure1(Config c, Gpu gpu, string kind, int tasks, int steps, Dictionary<string, object?> row, TimeSpan timeLeft)
    {
        var options = StepBench.Network(c, kind, tasks);
        var data = Generate(options.Tasks.ToArray(), c.SoakImages, c.ImageHeight, c.ImageWidth, seed: 3);
        int stepsPerEpoch = c.SoakImages / c.Batch;
        int epochs = Math.Max(1, (steps + stepsPerEpoch - 1) / stepsPerEpoch);
        var recipe = StepBench.Recipe with
        {
            Epochs = epochs, BatchSize = c.Batch, WarmupSteps = 50, ReportEverySteps = c.SoakReportEvery, KeepBest = false,
            Device = gpu.IsCuda ? ComputeDevice.Cuda : ComputeDevice.Cpu,
            Augmentation = c.Augment ? AugmentationOptions.Nyud : AugmentationOptions.None,
        };
        row["augment"] = c.Augment ? "nyud" : "none";
        torch.manual_seed(1);
        using var network = new MultiTaskNetwork(options);
        gpu.Sync();
        CudaAllocator.EmptyCache();
        using var monitor = new GpuMonitor(GpuMonitor.SoakPeriod);
        var samples = new List<Dictionary<string, object?>>();
        var progress = new InlineProgress(p =>
        {
            if (p.Phase != "train") return;
            var stats = CudaAllocator.Stats();
            samples.Add(new()
            {
                ["step"] = p.Step, ["t"] = monitor.Now,
                ["alloc_mib"] = stats is { } s ? s.Allocated / 1048576.0 : double.NaN,
                ["reserved_mib"] = stats is { } r ? r.Reserved / 1048576.0 : double.NaN,
                ["nvml_mib"] = monitor.LastUsed >= 0 ? (monitor.LastUsed - monitor.BaselineUsed) / 1048576.0 : double.NaN,
            });
        });
        var (pauseBefore, gen2Before, collectionsBefore) = (GC.GetTotalPauseDuration(), GC.CollectionCount(2), GC.CollectionCount(0));
        var wall = Stopwatch.StartNew();
        using var cancel = new CancellationTokenSource(timeLeft);   // out of time: stop and report the steps done
        TrainingResult? result = null;
        try { result = MultiTaskTrainingLoop.Fit(network, data, null, recipe, progress, cancellation: cancel.Token); }
        catch (OperationCanceledException) { }
        gpu.Sync();
        var total = wall.Elapsed.TotalSeconds;
        var gcPause = GC.GetTotalPauseDuration() - pauseBefore;   // every thread stops for these, the launching one too
        var end = monitor.Now;
        int done = result?.Steps ?? (samples.Count > 0 ? (int)samples[^1]["step"]! : 0);
        if (samples.Count < 2) throw new InvalidOperationException($"Only {samples.Count} memory readings in the time left ({timeLeft.TotalSeconds:F0} s).");

        // Busy window: from the first report at or after a tenth of the steps to the end of training.
        var first = samples.FirstOrDefault(s => (int)s["step"]! >= done / 10) ?? samples[0];
        var (fromStep, fromTime) = ((int)first["step"]!, (double)first["t"]!);
        var last = samples[^1];
        row["status"] = result is null ? "partial" : "ok";
        if (result is null) row["reason"] = $"stopped by the time budget after {done} of {steps} steps";
        row["steps"] = done;
        row["wall_s"] = total;
        row["window_steps"] = (int)last["step"]! - fromStep;
        row["window_ms_per_step"] = ((double)last["t"]! - fromTime) * 1000 / Math.Max(1, (int)last["step"]! - fromStep);
        row["gpu_util_mean"] = monitor.MeanUtilization(fromTime, end);
        row["final_loss"] = result?.History[^1].TrainLoss;
        row["data_wait_ms_per_step"] = result is null ? double.NaN : result.DataWait.TotalMilliseconds / Math.Max(1, done);
        row["gc_pause_ms_per_step"] = gcPause.TotalMilliseconds / Math.Max(1, done);
        row["gc_gen2"] = GC.CollectionCount(2) - gen2Before;
        row["gc_collections"] = GC.CollectionCount(0) - collectionsBefore;
        var mem = samples.Where(s => (int)s["step"]! >= fromStep).ToList();
        row["alloc_first_mib"] = (double)mem[0]["alloc_mib"]!;
        row["alloc_last_mib"] = (double)mem[^1]["alloc_mib"]!;
        row["alloc_max_mib"] = mem.Max(s => (double)s["alloc_mib"]!);
        row["reserved_first_mib"] = (double)mem[0]["reserved_mib"]!;
        row["reserved_last_mib"] = (double)mem[^1]["reserved_mib"]!;
        row["nvml_first_mib"] = (double)mem[0]["nvml_mib"]!;
        row["nvml_last_mib"] = (double)mem[^1]["nvml_mib"]!;
        row["nvml_max_mib"] = mem.Max(s => (double)s["nvml_mib"]!);
        row["memory_series"] = samples;
    }

    /// <summary>IProgress that runs on the reporting (training) thread, so readings are taken at the step they name.</summary>
    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
