using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Kem.Tasks;

/// <summary>Turns raw head outputs (B×C_t×H×W) into what the user sees: scores and predicted labels.</summary>
public static class TaskOutputs
{
    /// <summary>Eps of the L2 normalisation of predicted normals.</summary>
    public const double NormalsEps = 1e-6;

    /// <summary>
    /// The per-pixel score of a task: logits unchanged for segmentation/parts (B×C×H×W), metres unchanged for
    /// depth, sigmoid probabilities for saliency and boundaries, unit vectors (L2 over channels, eps 1e-6) for normals.
    /// Always a new tensor handle that the caller may dispose independently of <paramref name="output"/>.
    /// </summary>
    public static Tensor Postprocess(TaskSpec spec, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(spec);
        CheckOutput(spec, output);
        return spec.Kind switch
        {
            TaskKind.SemanticSegmentation or TaskKind.Parts or TaskKind.Depth => output.alias(),
            TaskKind.Saliency or TaskKind.Boundaries => output.sigmoid(),
            TaskKind.Normals => F.normalize(output, p: 2, dim: 1, eps: NormalsEps),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, $"Task '{spec.Name}': unknown task kind."),
        };
    }

    /// <summary>Argmax over the channels as int32 B×H×W; only for classification tasks (segmentation, parts).</summary>
    public static Tensor PredictedLabel(TaskSpec spec, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!spec.IsClassification)
            throw new ArgumentException(
                $"Task '{spec.Name}' ({spec.Kind}) has no class labels; PredictedLabel is for SemanticSegmentation and Parts. Use Postprocess for its scores.",
                nameof(spec));
        CheckOutput(spec, output);
        using var scope = torch.NewDisposeScope();
        return scope.MoveToOuter(output.argmax(1).to_type(ScalarType.Int32));
    }

    /// <summary>Throws unless <paramref name="output"/> is B×C_t×H×W for <paramref name="spec"/>.</summary>
    internal static void CheckOutput(TaskSpec spec, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.dim() != 4 || output.shape[1] != spec.Channels)
            throw new ArgumentException(
                $"Task '{spec.Name}' ({spec.Kind}): the head output must be B×{spec.Channels}×H×W, got [{string.Join(", ", output.shape)}].",
                nameof(output));
    }
}
