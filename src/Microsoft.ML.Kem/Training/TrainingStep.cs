using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// One optimisation step of the training recipe (MODEL-SPEC §11), without any host synchronisation:
/// forward (bf16 on CUDA when <see cref="TrainingOptions.MixedPrecision"/>), per-task losses in fp32 (§8),
/// the weighted total, backward, global-norm clipping and AdamW on flat fp32 masters (<see cref="FlatAdamW"/>).
/// Used by <see cref="MultiTaskTrainingLoop"/>; public so that benchmarks time exactly the loop's step.
/// </summary>
public sealed class TrainingStep : IDisposable
{
    private readonly MultiTaskModel network;
    private readonly MultiTaskLoss loss;
    private readonly CrossTaskContrast? contrast;
    private readonly FlatAdamW optimizer;
    private readonly double clipNorm;
    private bool checkedAliasing;

    /// <summary>
    /// Prepares the step for <paramref name="network"/> and <paramref name="loss"/>, both already on
    /// <paramref name="device"/> in float32. With bf16 (CUDA and <see cref="TrainingOptions.MixedPrecision"/>) the
    /// network is cast to bf16 here; the optimiser keeps fp32 masters.
    /// </summary>
    /// <param name="contrast">The optional cross-task contrastive loss (on the device, float32): its projections are optimised
    /// with the loss's parameters, and <see cref="Run"/> then needs the batch's image indices.</param>
    public TrainingStep(MultiTaskModel network, MultiTaskLoss loss, TrainingOptions options, Device device, CrossTaskContrast? contrast = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(options);
        (this.network, this.loss, this.contrast) = (network, loss, contrast);
        Bf16 = options.MixedPrecision && (device.type == DeviceType.CUDA || options.MixedPrecisionOnCpu);
        clipNorm = options.GradientClipNorm;
        var extra = contrast is null ? loss.parameters() : loss.parameters().Concat(contrast.parameters());
        optimizer = new FlatAdamW(network, extra, Bf16, 0.9, 0.999, 1e-8, options.WeightDecay,
                                  options.DecayAllParameters ? null : DecaysWeights(network, loss, contrast));
    }

    /// <summary>
    /// MODEL-SPEC §11 option (<see cref="TrainingOptions.DecayAllParameters"/> = false): weight decay on every parameter except
    /// norms and biases (1-D parameters, and any parameter named <c>bias</c>), the window blocks' relative position bias tables
    /// (<c>relative_position_bias_table</c>, as Swin's own recipe), the KEM memory slots R_0 (<c>memorySlots</c>) and the loss's
    /// parameters (s_t). Asked by <see cref="FlatAdamW"/> once per parameter of <paramref name="network"/> and <paramref name="loss"/>;
    /// the optional contrastive loss's projections (<paramref name="contrast"/>) follow the network's rule.
    /// </summary>
    public static Func<Parameter, bool> DecaysWeights(nn.Module network, nn.Module loss, nn.Module? contrast = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(loss);
        var exempt = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var (name, p) in contrast is null ? network.named_parameters() : network.named_parameters().Concat(contrast.named_parameters()))
        {
            var leaf = name[(name.LastIndexOf('.') + 1)..];
            if (p.dim() <= 1 || leaf is "bias" or "memorySlots" or "relative_position_bias_table") exempt.Add(p);
        }
        foreach (var p in loss.parameters()) exempt.Add(p);
        return p => !exempt.Contains(p);
    }

    /// <summary>True when the network runs in bf16 with fp32 master weights.</summary>
    public bool Bf16 { get; }

    /// <summary>The optimiser (flat masters and moments).</summary>
    public FlatAdamW Optimizer => optimizer;

    /// <summary>
    /// One step on a batch already on the device: images B×3×H×W (raw pixels, float32), labels per task B×P×H×W.
    /// Returns the total loss (scalar) and the per-task losses, still on the device, in the caller's dispose scope.
    /// </summary>
    /// <param name="images">Raw pixels B×3×H×W.</param>
    /// <param name="labels">Labels per task.</param>
    /// <param name="learningRate">This step's learning rate.</param>
    /// <param name="indices">The batch's training-image indices (B, int64, on the device): needed with the contrastive loss only.</param>
    /// <param name="generator">Draws the contrastive loss's negatives (null: the default generator).</param>
    public (Tensor Loss, Tensor[] TaskLosses) Run(Tensor images, Tensor[] labels, double learningRate, Tensor? indices = null, Generator? generator = null)
    {
        var tasks = network.Options.Tasks;
        var outputs = network.ForwardTraining(Bf16 ? images.to(ScalarType.BFloat16) : images, taskFeatures: contrast is not null);
        var taskLosses = new Tensor[tasks.Count];   // reported: the final maps' losses
        var trainedLosses = new Tensor[tasks.Count]; // optimised: plus deep-supervision terms, weight 1 each
        for (int t = 0; t < tasks.Count; t++)
        {
            taskLosses[t] = TaskLoss.Compute(tasks[t], outputs.Predictions[t].to(ScalarType.Float32), labels[t]);
            trainedLosses[t] = outputs.AuxiliaryPredictions.Aggregate(taskLosses[t],
                (sum, auxiliary) => sum + TaskLoss.Compute(tasks[t], auxiliary[t].to(ScalarType.Float32), labels[t]));
        }
        var total = loss.forward(trainedLosses);
        if (outputs.Penalty is { } penalty) total = total + penalty.to(ScalarType.Float32);
        if (contrast is not null)
        {
            var features = outputs.TaskFeatures
                ?? throw new InvalidOperationException($"The cross-task contrastive loss reads each task's features, which {network.GetType().Name} does not expose: use the shared-encoder network (MultiTaskNetwork) or turn CrossTaskContrast off.");
            total = total.PlusScaled(contrast.Loss(features.to(ScalarType.Float32),
                indices ?? throw new ArgumentNullException(nameof(indices), "The contrastive loss needs the batch's image indices."), generator), contrast.Weight);
        }

        optimizer.ZeroGrad();
        total.backward();
        if (!checkedAliasing)
        {
            if (!optimizer.GradientsAreAliased())
                throw new InvalidOperationException("A parameter's gradient no longer points into the optimiser's flat buffer (was zero_grad() called on the network?).");
            checkedAliasing = true;
        }
        optimizer.Step(learningRate, clipNorm);
        return (total, taskLosses);
    }

    /// <summary>After bf16 training: casts the network back to fp32 and loads the fp32 masters into it. No-op in fp32.</summary>
    public void RestoreFp32()
    {
        if (Bf16) optimizer.RestoreFp32(network);
    }

    /// <inheritdoc />
    public void Dispose() => optimizer.Dispose();
}
