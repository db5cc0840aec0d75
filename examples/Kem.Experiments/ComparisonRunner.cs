using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

namespace Kem.Experiments;

/// <summary>One trained and scored configuration. STL runs hold one metric per task from T single-task networks.</summary>
internal sealed record RunResult(string Method, int Seed, InteractionOptions Interaction, IReadOnlyList<TaskMetrics> Metrics,
    long TrainableParameters, int Steps, TimeSpan Elapsed, int Retries);

/// <summary>Trains and evaluates one method at one seed on the engine (DenseDataset → MultiTaskTrainingLoop → Evaluation).</summary>
/// <param name="valLabels">With --eval-original-size: the val labels at their stored size, (task, image) → label; null: <paramref name="val"/>'s own.</param>
/// <param name="checkpoints">With --checkpoints: the folder of the runs' checkpoints (one file per network trained); null: none.</param>
internal sealed class ComparisonRunner(TrainingOptions recipe, DenseDataset train, DenseDataset val, DenseMetricOptions metricOptions, Action<string> log,
    Func<int, int, Microsoft.ML.Kem.Data.DenseLabelMap>? valLabels = null, string? checkpoints = null)
{
    public RunResult Run(string method, int seed, MultiTaskNetworkOptions options)
    {
        var clock = Stopwatch.StartNew();
        var configured = Methods.Configure(method, options);
        var metrics = new List<TaskMetrics>();
        long parameters = 0;
        int steps = 0;
        // STL: one network per task (T = 1), each with the full budget; every other method: one network for all tasks.
        var groups = method == Methods.Stl
            ? configured.Tasks.Select((t, i) => (Options: configured with { Tasks = [t] }, Indices: new[] { i })).ToArray()
            : [(Options: configured, Indices: Enumerable.Range(0, configured.Tasks.Count).ToArray())];
        int retries = 0;
        foreach (var (networkOptions, indices) in groups)
        {
            var checkpoint = checkpoints is null ? null : Path.Combine(checkpoints,
                $"{method}-m{options.Interaction.MemorySlots}-k{options.Interaction.TopK}-seed{seed}-{string.Join("+", indices.Select(i => configured.Tasks[i].Name))}.safetensors");
            var trainPart = Subset(train, indices);
            var valPart = Subset(val, indices);
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    torch.manual_seed(seed);
                    using var network = new MultiTaskNetwork(networkOptions);
                    var result = MultiTaskTrainingLoop.Fit(network, trainPart, null, recipe with
                    {
                        Seed = seed, CheckpointPath = checkpoint,
                        CrossTaskContrast = indices.Length > 1 ? recipe.CrossTaskContrast : null,   // a single-task network has no pair to contrast
                    });
                    if (result.ResumedAfterEpoch > 0) log($"seed {seed} {method}: resumed after epoch {result.ResumedAfterEpoch} from {checkpoint}.");
                    metrics.AddRange(valLabels is null
                        ? Evaluation.Evaluate(network, valPart, recipe.BatchSize, metricOptions)
                        : Evaluation.EvaluateAtLabelSize(network, valPart, (t, image) => valLabels(indices[t], image), recipe.BatchSize, metricOptions));
                    parameters += network.TrainableParameterCount;
                    steps += result.Steps;
                    break;
                }
                catch (ExternalException e) when (attempt < 3)
                {
                    // TorchSharp 0.107 passes temporary Scalars (e.g. BatchNorm's num_batches_tracked.add_(1)) to native code
                    // without keeping them alive; rarely the finalizer frees one mid-call ("Unknown scalar type"). CPU runs are
                    // deterministic for a seed, so training the same network again gives the result the first attempt would have.
                    retries++;
                    log($"seed {seed} {method}: native error '{e.Message.Split('\n')[0]}'; training this network again (attempt {attempt + 1}).");
                }
            }
        }
        var run = new RunResult(method, seed, options.Interaction, metrics, parameters, steps, clock.Elapsed, retries);
        log($"seed {seed} {method,-14} m={options.Interaction.MemorySlots} k={options.Interaction.TopK}: {steps} steps, {clock.Elapsed.TotalSeconds:F0} s, " +
            string.Join(", ", metrics.Select(m => $"{m.TaskName} {m.Primary:F3}")));
        return run;
    }

    /// <summary>The same images with only the labels of <paramref name="tasks"/> (no copy when all tasks are kept).</summary>
    private static DenseDataset Subset(DenseDataset data, int[] tasks)
    {
        if (tasks.Length == data.Tasks.Count) return data;
        int pixels = 3 * data.Height * data.Width;
        var images = new float[data.Count * pixels];
        for (int i = 0; i < data.Count; i++) data.Image(i).CopyTo(images.AsSpan(i * pixels));
        var labels = tasks.Select(t =>
        {
            int per = data.Tasks[t].LabelPlanes * data.Height * data.Width;
            var values = new float[data.Count * per];
            for (int i = 0; i < data.Count; i++) data.Label(t, i).CopyTo(values.AsSpan(i * per));
            return values;
        }).ToArray();
        return new DenseDataset(tasks.Select(t => data.Tasks[t]).ToArray(), data.Height, data.Width, images, labels, "task subset");
    }
}
