using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>Which model family <see cref="MultiTaskModel.Create"/> builds (MODEL-SPEC §1, §5, §6).</summary>
public enum NetworkArchitecture
{
    /// <summary>MODEL-SPEC §1: shared backbone, one encoder per task, the interaction (KEM, sKEM, CA, none), one decoder per task. <see cref="MultiTaskNetwork"/>.</summary>
    SharedEncoder,
    /// <summary>MODEL-SPEC §5: multi-scale backbone, per-task heads at every scale, cross-task then cross-scale attention. <see cref="SequentialCrossAttentionNetwork"/>.</summary>
    SequentialCrossAttention,
    /// <summary>MODEL-SPEC §6: a base single-task model; sub-tasks share its backbone activations and run its blocks with sparse weight and activation deltas. <see cref="ComputationSharingNetwork"/>.</summary>
    ComputationSharing,
}

/// <summary>
/// What a model returns for one training step: the final maps (one B×C_t×H×W per task, the same as forward),
/// extra predictions that get the same task loss (deep supervision; each entry holds one map per task, at input
/// resolution), and an optional scalar penalty added to the combined loss.
/// </summary>
/// <param name="Predictions">One B×C_t×H×W map per task, in task order.</param>
/// <param name="AuxiliaryPredictions">Zero or more sets of one map per task; each set's task losses are added to the task's loss with weight 1.</param>
/// <param name="Penalty">A scalar added to the total loss, or null.</param>
public sealed record TrainingOutputs(Tensor[] Predictions, IReadOnlyList<Tensor[]> AuxiliaryPredictions, Tensor? Penalty)
{
    /// <summary>
    /// Each task's features before its head, averaged over the tokens, B×T×d, where the model exposes them (the shared-encoder
    /// network); read by the optional cross-task contrastive loss (<see cref="Training.TrainingOptions.CrossTaskContrast"/>).
    /// </summary>
    public Tensor? TaskFeatures { get; init; }
}

/// <summary>
/// Any multi-task dense-prediction network the training loop, inference and evaluation accept:
/// forward(raw pixels B×3×H×W) → one raw map B×C_t×H×W per task, in <see cref="MultiTaskNetworkOptions.Tasks"/> order.
/// The pixels are scaled by PixelScale and ImageNet-normalised inside the network.
/// </summary>
public abstract class MultiTaskModel : nn.Module<Tensor, Tensor[]>
{
    internal static readonly float[] ImageNetMean = { 0.485f, 0.456f, 0.406f };
    private static readonly float[] ImageNetStd = { 0.229f, 0.224f, 0.225f };

    /// <summary>Validates <paramref name="options"/> and keeps them.</summary>
    protected MultiTaskModel(string name, MultiTaskNetworkOptions options) : base(name)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options this network was built from (validated).</summary>
    public MultiTaskNetworkOptions Options { get; }

    /// <summary>Number of trainable parameters.</summary>
    public long TrainableParameterCount => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>
    /// The forward pass used for a training step. Default: <see cref="nn.Module{T, TResult}.forward"/> with no auxiliary
    /// predictions and no penalty. Models with deep supervision or a sparsity penalty override it.
    /// </summary>
    public virtual TrainingOutputs ForwardTraining(Tensor images) => new(forward(images), Array.Empty<Tensor[]>(), null);

    /// <summary>
    /// <see cref="ForwardTraining(Tensor)"/>, with <see cref="TrainingOutputs.TaskFeatures"/> filled when
    /// <paramref name="taskFeatures"/> is set and the model has them (the shared-encoder network); asked only by the optional
    /// contrastive loss, so that the usual step computes nothing extra.
    /// </summary>
    public virtual TrainingOutputs ForwardTraining(Tensor images, bool taskFeatures) => ForwardTraining(images);

    /// <summary>Builds the network of <see cref="MultiTaskNetworkOptions.Architecture"/>; validates the options first.</summary>
    public static MultiTaskModel Create(MultiTaskNetworkOptions options, string name = "kem")
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Architecture switch
        {
            NetworkArchitecture.SharedEncoder => new MultiTaskNetwork(options, name),
            NetworkArchitecture.SequentialCrossAttention => new SequentialCrossAttentionNetwork(options, name),
            NetworkArchitecture.ComputationSharing => new ComputationSharingNetwork(options, name),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Architecture, "Unknown NetworkArchitecture."),
        };
    }

    /// <summary>The per-channel mean and std (1×3×1×1) that map raw pixels to ImageNet-normalised values (MODEL-SPEC §1, input).</summary>
    protected static (Tensor Mean, Tensor Std) PixelStatistics(MultiTaskNetworkOptions o) => (
        torch.tensor(ImageNetMean.Select(m => m / o.PixelScale).ToArray(), new long[] { 1, 3, 1, 1 }),
        torch.tensor(ImageNetStd.Select(s => s / o.PixelScale).ToArray(), new long[] { 1, 3, 1, 1 }));
}
