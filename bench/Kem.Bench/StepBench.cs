using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// The whole training step at the spec's `Gpu448` size (MODEL-SPEC §1: 448×576, TinyViT with TokenStride 16, d 384,
/// h 6, m 20, k 3; 4 backbone blocks, 2 encoder and 2 decoder blocks per task) with B = 8: the library's
/// <see cref="TrainingStep"/> (bf16 on CUDA, fp32 masters, AdamW, clipping 1.0, MTFormer uncertainty weighting) on a
/// batch already on the device. "csharp-legacy" rows time the step the loop used before (per-parameter TorchSharp
/// AdamW, per-parameter master copies, clip_grad_norm_ with its host synchronisation), for comparison.
/// </summary>
internal static class StepBench
{
    public static readonly string[] Kinds = ["kem", "ca", "none"];

    public static TaskSpec[] Tasks(int count) => count switch
    {
        2 => [TaskSpec.Segmentation(40), TaskSpec.DepthTask()],
        3 => [TaskSpec.Segmentation(40), TaskSpec.DepthTask(), TaskSpec.NormalsTask()],
        _ => throw new ArgumentOutOfRangeException(nameof(count), count, "2 or 3 tasks."),
    };

    public static MultiTaskNetworkOptions Network(Config c, string kind, int tasks) => new()
    {
        Tasks = Tasks(tasks), ImageHeight = c.ImageHeight, ImageWidth = c.ImageWidth, Backbone = BackboneKind.TinyViT,
        TokenStride = c.TokenStride, Width = c.Width, Heads = c.Heads, BackboneDepth = c.BackboneDepth, EncoderDepth = 2, DecoderDepth = 2,
        MlpRatio = 4,
        Interaction = kind switch
        {
            "kem" => new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = c.Slots, TopK = c.TopK },
            "skem" => new InteractionOptions { Kind = InteractionKind.StableKem, MemorySlots = c.Slots, TopK = c.TopK },
            "ca" => new InteractionOptions { Kind = InteractionKind.CrossAttention },
            "none" => new InteractionOptions { Kind = InteractionKind.None },
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "kem, skem, ca or none."),
        },
    };

    public static TrainingOptions Recipe => new() { MixedPrecision = true, GradientClipNorm = 1.0, WeightDecay = 1e-4, LossWeighting = LossWeighting.MtformerUncertainty };

    /// <summary>A random batch on <paramref name="device"/>: pixels 0..255, labels valid for every task kind (a few ignored pixels).</summary>
    public static (Tensor Images, Tensor[] Labels) Batch(TaskSpec[] tasks, int batch, int height, int width, Device device)
    {
        var images = rand([batch, 3, height, width], device: device).mul_(255);
        var labels = tasks.Select(t => t.Kind switch
        {
            TaskKind.SemanticSegmentation or TaskKind.Parts =>
                randint(0, t.Classes, [batch, 1, height, width], device: device).to(ScalarType.Float32)
                    .masked_fill_(rand([batch, 1, height, width], device: device).lt(0.05), TaskSpec.IgnoreLabel),
            TaskKind.Depth => rand([batch, 1, height, width], device: device).mul_(9.5).add_(0.5),
            TaskKind.Normals => nn.functional.normalize(randn([batch, 3, height, width], device: device), p: 2, dim: 1),
            _ => rand([batch, 1, height, width], device: device).gt(0.5).to(ScalarType.Float32),
        }).ToArray();
        return (images, labels);
    }

    public static void Run(Config c, Gpu gpu, Results results, Budget budget)
    {
        // The library's step for every configuration first; the legacy step (for comparison) last, at the first task count.
        var kinds = Kinds.Where(c.Runs).ToArray();
        var plan = c.StepTaskCounts.SelectMany(t => kinds.Select(k => (Tasks: t, Kind: k, Impl: "csharp")))
            .Concat(kinds.Select(k => (Tasks: c.StepTaskCounts[0], Kind: k, Impl: "csharp-legacy")));
        foreach (var (tasks, kind, impl) in plan)
        {
            var row = new Dictionary<string, object?>
            {
                ["bench"] = "step", ["impl"] = impl, ["kind"] = kind, ["tasks"] = tasks, ["tokens"] = c.ImageHeight / c.TokenStride * (c.ImageWidth / c.TokenStride),
                ["batch"] = c.Batch, ["image"] = $"{c.ImageHeight}x{c.ImageWidth}", ["dtype"] = gpu.IsCuda ? "bf16" : "fp32", ["device"] = gpu.Name,
            };
            results.Write(row, budget, () => Measure1(c, gpu, kind, tasks, impl == "csharp-legacy", row));
        }
    }

    /// <summary>One row per part (<c>bench</c> = the part's kind, the part's name under the same key): timed as every row, or skipped once the budget is spent.</summary>
    private static void TimePart(Config c, Gpu gpu, Results results, Budget budget, string bench, string name, int tasks, Action iteration)
    {
        var row = new Dictionary<string, object?>
        {
            ["bench"] = bench, [bench] = name, ["kind"] = "kem", ["tasks"] = tasks, ["batch"] = c.Batch,
            ["image"] = $"{c.ImageHeight}x{c.ImageWidth}", ["dtype"] = gpu.IsCuda ? "bf16" : "fp32", ["device"] = gpu.Name,
        };
        results.Write(row, budget, () => Measure.TimeInto(row, gpu, iteration, c.StepSchedule));
    }

    /// <summary>The bench network for <paramref name="kind"/> and <paramref name="tasks"/> (seed 1) in train mode, its loss, and a random batch, all on the device.</summary>
    private static (MultiTaskNetworkOptions Options, MultiTaskNetwork Network, MultiTaskLoss Loss, Tensor Images, Tensor[] Labels) Build(Config c, Gpu gpu, string kind, int tasks)
    {
        torch.manual_seed(1);
        var options = Network(c, kind, tasks);
        var network = new MultiTaskNetwork(options);
        network.to(gpu.Device);
        network.train();
        var loss = new MultiTaskLoss("loss", options.Tasks, Recipe.LossWeighting);
        loss.to(gpu.Device);
        var (images, labels) = Batch(options.Tasks.ToArray(), c.Batch, c.ImageHeight, c.ImageWidth, gpu.Device);
        return (options, network, loss, images, labels);
    }

    private static void Measure1(Config c, Gpu gpu, string kind, int tasks, bool legacy, Dictionary<string, object?> row)
    {
        var built = Build(c, gpu, kind, tasks);
        using var network = built.Network;
        using var loss = built.Loss;
        var (images, labels) = (built.Images, built.Labels);
        row["parameters"] = network.parameters().Sum(p => p.numel());

        using var step = legacy ? null : new TrainingStep(network, loss, Recipe, gpu.Device);
        using var legacyStep = legacy ? new LegacyStep(network, loss, Recipe, gpu.Device) : null;
        void Iteration()
        {
            using var scope = NewDisposeScope();
            if (step is not null) step.Run(images, labels, 1e-4);
            else legacyStep!.Run(images, labels, 1e-4);
        }

        Measure.TimeInto(row, gpu, Iteration, c.StepSchedule);
        images.Dispose();
        foreach (var l in labels) l.Dispose();
    }

    /// <summary>
    /// The KEM step at the first task count in parts, on one network (bf16 on CUDA), fixed inputs and gradients on.
    /// <c>--phases</c>: the step cut after the forward pass and losses ("forward"), after the backward pass
    /// ("forward+backward", gradients accumulating as in the step) and whole ("step", <see cref="TrainingStep.Run"/>);
    /// differences between rows give the backward pass and the optimiser. <c>--segments</c>: the forward by stage,
    /// backbone + task encoders (<see cref="MultiTaskNetwork.EncodeTasks"/>), the interaction, the whole forward, and the
    /// losses on fixed outputs; <c>host_ms</c> against <c>ms</c> says which stage is launch-bound, and the C#/PyTorch host
    /// ratio per stage says where C# spends more time launching. The twin times the same parts.
    /// </summary>
    public static void RunParts(Config c, Gpu gpu, Results results, Budget budget, bool phases, bool segments) =>
        ForEachPart(c, gpu, phases, segments, (bench, name, tasks, iteration) => TimePart(c, gpu, results, budget, bench, name, tasks, iteration));

    /// <summary>
    /// Builds the KEM step's network once and hands every part of <see cref="RunParts"/> to <paramref name="visit"/>
    /// (kind of part, "phase" or "segment"; its name; the task count; one iteration).
    /// </summary>
    public static void ForEachPart(Config c, Gpu gpu, bool phases, bool segments, Action<string, string, int, Action> visit)
    {
        const string kind = "kem";
        int tasks = c.StepTaskCounts[0];
        var built = Build(c, gpu, kind, tasks);
        using var network = built.Network;
        using var loss = built.Loss;
        var (options, images, labels) = (built.Options, built.Images, built.Labels);
        using var step = new TrainingStep(network, loss, Recipe, gpu.Device);   // casts the network to bf16 on CUDA
        using var input = step.Bf16 ? images.to(ScalarType.BFloat16) : images.alias();
        Tensor Losses(Tensor[] outputs) =>
            loss.forward(options.Tasks.Select((t, i) => TaskLoss.Compute(t, outputs[i].to(ScalarType.Float32), labels[i])).ToArray());

        if (phases)
        {
            visit("phase", "forward", tasks, () => { using var scope = NewDisposeScope(); Losses(network.ForwardTraining(input).Predictions); });
            visit("phase", "forward+backward", tasks, () => { using var scope = NewDisposeScope(); Losses(network.ForwardTraining(input).Predictions).backward(); });
            visit("phase", "step", tasks, () => { using var scope = NewDisposeScope(); step.Run(images, labels, 1e-4); });
        }
        if (segments)
        {
            Tensor tokens;
            Tensor[] outputs;
            using (no_grad())
            {
                tokens = network.EncodeTasks(input).DetachFromDisposeScope();
                outputs = network.forward(input).Select(o => o.to(ScalarType.Float32).requires_grad_(true).DetachFromDisposeScope()).ToArray();
            }
            visit("segment", "backbone+encoders", tasks, () => { using var scope = NewDisposeScope(); network.EncodeTasks(input); });
            visit("segment", "interaction", tasks, () => { using var scope = NewDisposeScope(); network.Interaction.forward(tokens); });
            visit("segment", "forward", tasks, () => { using var scope = NewDisposeScope(); network.forward(input); });
            visit("segment", "losses", tasks, () => { using var scope = NewDisposeScope(); Losses(outputs); });
            tokens.Dispose();
            foreach (var o in outputs) o.Dispose();
        }
        images.Dispose();
        foreach (var l in labels) l.Dispose();
    }

    /// <summary>The loop's step before FlatAdamW (commit 0193aac), kept here only to measure the difference.</summary>
    private sealed class LegacyStep : IDisposable
    {
        private readonly MultiTaskNetwork network;
        private readonly MultiTaskLoss loss;
        private readonly MixedPrecision? mixed;
        private readonly List<TorchSharp.Modules.Parameter> optimised;
        private readonly optim.Optimizer optimizer;
        private readonly bool bf16;

        public LegacyStep(MultiTaskNetwork network, MultiTaskLoss loss, TrainingOptions options, Device device)
        {
            (this.network, this.loss) = (network, loss);
            bf16 = options.MixedPrecision && device.type == DeviceType.CUDA;
            mixed = bf16 ? new MixedPrecision(network) : null;
            var networkParameters = mixed?.MasterParameters ?? network.parameters().Where(p => p.requires_grad).ToList();
            optimised = networkParameters.Concat(loss.parameters()).ToList();
            optimizer = optim.AdamW(optimised, options.LearningRate, 0.9, 0.999, 1e-8, options.WeightDecay);
        }

        public void Run(Tensor images, Tensor[] labels, double lr)
        {
            var tasks = network.Options.Tasks;
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            var outputs = network.forward(bf16 ? images.to(ScalarType.BFloat16) : images);
            var taskLosses = new Tensor[tasks.Count];
            for (int t = 0; t < tasks.Count; t++)
                taskLosses[t] = TaskLoss.Compute(tasks[t], outputs[t].to(ScalarType.Float32), labels[t]);
            var total = loss.forward(taskLosses);
            optimizer.zero_grad();
            mixed?.ZeroModuleGradients();
            total.backward();
            mixed?.GradientsToMasters();
            nn.utils.clip_grad_norm_(optimised, 1.0);
            optimizer.step();
            mixed?.MastersToModule();
        }

        public void Dispose()
        {
            optimizer.Dispose();
            mixed?.Dispose();
        }
    }
}
