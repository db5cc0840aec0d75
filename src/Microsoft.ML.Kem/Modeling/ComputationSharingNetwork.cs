using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Computation sharing between single-task models (MODEL-SPEC §6, seed 2303.09663). Every task's model is the §7 STL
/// network without interaction: backbone (a), EncoderDepth + DecoderDepth blocks, its own dense head. The base task's
/// model is stored densely and trained on the base task alone. A sub-task shares the base's backbone activations as they
/// are (computed once) and runs the base's blocks with sparse weight deltas W_base + z ⊙ ΔW and thresholded activation
/// deltas (<see cref="DeltaTransformerBlock"/>), so each of its linear layers reuses the base output; heads are task-specific.
/// All tasks train together through the ordinary loop: the base from its own loss, every sub-task's deltas and head from
/// its own loss (no gradient crosses into the base), which is the paper's "train base, then fine-tune deltas" run side by side.
/// Input raw pixels B×3×H×W; output one raw map B×C_t×H×W per task.
/// </summary>
public sealed class ComputationSharingNetwork : MultiTaskModel
{
    private readonly Tensor pixelMean;
    private readonly Tensor pixelStd;
    private readonly Backbone backbone;
    private readonly ModuleList<DeltaTransformerBlock> blocks;
    private readonly ModuleList<DenseHead> heads;
    private readonly int baseTask;
    private readonly int[] subTasks;
    private SharingTally? tally;

    /// <summary>Builds the network; validates <paramref name="options"/> first (its Architecture must be ComputationSharing).</summary>
    public ComputationSharingNetwork(MultiTaskNetworkOptions options, string name = "sharing") : base(name, options)
    {
        if (options.Architecture != NetworkArchitecture.ComputationSharing)
            throw new ArgumentException($"ComputationSharingNetwork builds NetworkArchitecture.ComputationSharing, not {options.Architecture}: use MultiTaskModel.Create(options).", nameof(options));
        var o = options;
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        var names = o.Tasks.Select(t => t.Name).ToList();
        baseTask = o.ComputationSharing.BaseTask is { } b ? names.IndexOf(b) : 0;
        subTasks = Enumerable.Range(0, o.Tasks.Count).Where(t => t != baseTask).ToArray();

        (pixelMean, pixelStd) = PixelStatistics(o);
        backbone = new Backbone("backbone", o);
        blocks = nn.ModuleList(Enumerable.Range(0, o.EncoderDepth + o.DecoderDepth)
            .Select(i => new DeltaTransformerBlock($"block{i}", o.Width, o.Heads, o.MlpRatio, subTasks.Length)).ToArray());
        heads = nn.ModuleList(o.Tasks.Select(t => new DenseHead($"head_{t.Name}", t, o.Width, rows, cols, o.ImageHeight, o.ImageWidth)).ToArray());
        RegisterComponents();
        if (o.FreezeBackbone)                                                  // MODEL-SPEC §1: a1–a5 for the Swin kinds
            foreach (var (key, p) in backbone.named_parameters())
                if (Backbone.IsPretrained(o.Backbone, key)) p.requires_grad = false;
    }

    /// <summary>The base task (the dense single-task model).</summary>
    public TaskSpec BaseTask => Options.Tasks[baseTask];

    /// <summary>The sub-tasks, in task order.</summary>
    public IReadOnlyList<TaskSpec> SubTasks => subTasks.Select(t => Options.Tasks[t]).ToArray();

    /// <summary>The delta blocks (base weights plus every sub-task's deltas).</summary>
    public IReadOnlyList<DeltaTransformerBlock> Blocks => blocks.ToArray();

    /// <summary>images: B×3×H×W raw pixels → per task B×C_t×H×W.</summary>
    public override Tensor[] forward(Tensor images) => Run(images, null);

    /// <summary>The maps plus, with ActivationPenalty λ &gt; 0, λ·mean |δ| over every sub-task's linear inputs.</summary>
    public override TrainingOutputs ForwardTraining(Tensor images)
    {
        float lambda = Options.ComputationSharing.ActivationPenalty;
        var magnitudes = lambda > 0 && subTasks.Length > 0 ? new List<Tensor>() : null;
        var outputs = Run(images, magnitudes);
        var penalty = magnitudes is { Count: > 0 } ? torch.stack(magnitudes).mean() * lambda : null;
        return new TrainingOutputs(outputs, Array.Empty<Tensor[]>(), penalty);
    }

    private Tensor[] Run(Tensor images, List<Tensor>? deltaMagnitudes)
    {
        var sharing = Options.ComputationSharing;
        var normalised = (images - pixelMean) / pixelStd;                    // MODEL-SPEC §1, input
        var baseTokens = backbone.forward(normalised);                        // (a) B×n×d, computed once for all tasks
        var subTokens = subTasks.Select(_ => baseTokens.detach()).ToArray(); // sub-tasks start from the base's activations
        foreach (var block in blocks)
        {
            var next = block.ForwardBase(baseTokens, out var trace);
            for (int k = 0; k < subTokens.Length; k++)
                subTokens[k] = block.ForwardSubTask(k, subTokens[k], trace, sharing.DeltaDensity, sharing.ActivationThreshold, tally, deltaMagnitudes);
            baseTokens = next;
        }
        var outputs = new Tensor[heads.Count];
        outputs[baseTask] = heads[baseTask].forward(baseTokens);
        for (int k = 0; k < subTasks.Length; k++) outputs[subTasks[k]] = heads[subTasks[k]].forward(subTokens[k]);
        return outputs;
    }

    /// <summary>
    /// Parameters stored and multiply-adds per image needed by this network on <paramref name="images"/> (raw pixels,
    /// B×3×H×W, on the network's device), against separate single-task models of the same architecture (MODEL-SPEC §6).
    /// Runs in eval mode without gradients.
    /// </summary>
    public ComputationSharingCost MeasureCost(Tensor images)
    {
        var o = Options;
        var sharing = o.ComputationSharing;
        long batch = images.shape[0];
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        eval();
        tally = new SharingTally(subTasks.Length);
        try
        {
            using (torch.no_grad())
            using (torch.NewDisposeScope())
                forward(images);

            long Count(nn.Module m) => m.parameters().Sum(p => p.numel());
            long backboneParameters = Count(backbone), blockParameters = blocks.Sum(b => Count(b.Base));
            var headParameters = heads.Select(Count).ToArray();
            long backboneMacs = ModelCost.Backbone(o);
            long blockMacs = blocks.Count * ModelCost.TransformerBlock(o.TokensPerTask, o.Width, o.MlpRatio);
            var headMacs = o.Tasks.Select(t => ModelCost.DenseHead(t, o.Width, rows, cols)).ToArray();

            var subTaskCosts = subTasks.Select((t, k) => new SubTaskCost(
                o.Tasks[t].Name,
                DeltaNonZeros: blocks.Sum(b => b.Delta(k).NonZeros(sharing.DeltaDensity)),
                DeltaEntries: blocks.Sum(b => Count(b.Delta(k))),
                ActivationDensity: tally.DeltaEntries[k] == 0 ? 0 : (double)tally.DeltaNonZeros[k] / tally.DeltaEntries[k],
                LinearMacs: tally.LinearMacs[k] / batch,
                AttentionMacs: tally.AttentionMacs[k] / batch,
                HeadMacs: headMacs[t])).ToArray();

            return new ComputationSharingCost(
                BaseTask.Name,
                SeparateParameters: o.Tasks.Count * (backboneParameters + blockParameters) + headParameters.Sum(),
                StoredParameters: backboneParameters + blockParameters + headParameters.Sum() + subTaskCosts.Sum(s => s.DeltaNonZeros),
                SeparateMacs: o.Tasks.Count * (backboneMacs + blockMacs) + headMacs.Sum(),
                SharedMacs: backboneMacs + blockMacs + headMacs[baseTask] + subTaskCosts.Sum(s => s.Macs),
                subTaskCosts);
        }
        finally { tally = null; }
    }
}

/// <summary>
/// What computation sharing saves against T separate single-task models of the same architecture (MODEL-SPEC §6).
/// Parameters: separate = Σ_t (backbone + blocks + head_t); stored = one dense backbone and blocks (the base) + all heads +
/// the non-zero weight-delta entries of every sub-task (sparse index storage not counted).
/// Multiply-adds per image (<see cref="ModelCost"/>): separate = Σ_t (backbone + blocks + head_t); shared = the base model +
/// per sub-task its measured linear-layer work (nnz-based), its dense attention products and its head.
/// </summary>
/// <param name="BaseTask">Name of the base task.</param>
/// <param name="SeparateParameters">Parameters of T separate single-task models.</param>
/// <param name="StoredParameters">Parameters this network stores.</param>
/// <param name="SeparateMacs">Multiply-adds per image of T separate single-task models.</param>
/// <param name="SharedMacs">Multiply-adds per image this network needs.</param>
/// <param name="SubTasks">Per sub-task detail.</param>
public sealed record ComputationSharingCost(string BaseTask, long SeparateParameters, long StoredParameters, long SeparateMacs, long SharedMacs,
    IReadOnlyList<SubTaskCost> SubTasks)
{
    /// <summary>1 − stored / separate parameters.</summary>
    public double ParameterSaving => 1 - (double)StoredParameters / SeparateParameters;
    /// <summary>1 − shared / separate multiply-adds.</summary>
    public double MacSaving => 1 - (double)SharedMacs / SeparateMacs;

    /// <summary>A short table of the counts.</summary>
    public override string ToString() =>
        $"base task {BaseTask}; parameters: separate {SeparateParameters:N0}, stored {StoredParameters:N0} (saving {ParameterSaving:P1}); " +
        $"multiply-adds per image: separate {SeparateMacs:N0}, shared {SharedMacs:N0} (saving {MacSaving:P1})" +
        string.Concat(SubTasks.Select(s => $"; {s}"));
}

/// <summary>One sub-task's share of <see cref="ComputationSharingCost"/>.</summary>
/// <param name="Task">Sub-task name.</param>
/// <param name="DeltaNonZeros">Stored (non-zero) weight-delta entries.</param>
/// <param name="DeltaEntries">All weight-delta entries (= the base blocks' parameters).</param>
/// <param name="ActivationDensity">Fraction of non-zero thresholded activation deltas at the linear inputs.</param>
/// <param name="LinearMacs">Multiply-adds per image of its linear layers, min(dense, nnz(δ)·d_out + nnz(ΔW)·n) per layer.</param>
/// <param name="AttentionMacs">Multiply-adds per image of its attention products (dense).</param>
/// <param name="HeadMacs">Multiply-adds per image of its dense head.</param>
public sealed record SubTaskCost(string Task, long DeltaNonZeros, long DeltaEntries, double ActivationDensity, long LinearMacs, long AttentionMacs, long HeadMacs)
{
    /// <summary>All multiply-adds per image this sub-task adds to the base model.</summary>
    public long Macs => LinearMacs + AttentionMacs + HeadMacs;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Task}: weight deltas {DeltaNonZeros:N0}/{DeltaEntries:N0}, activation-delta density {ActivationDensity:P1}, +{Macs:N0} multiply-adds";
}
