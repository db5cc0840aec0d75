using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// The per-task training losses of MODEL-SPEC §8. Every loss averages over the valid pixels of the batch
/// (label 255 = ignore) and returns a float32 scalar; a batch without a valid pixel gives 0 with a
/// grad_fn that still reaches the head output (zero gradient), never NaN.
/// </summary>
/// <remarks>
/// Each method runs in its own dispose scope and moves only the result to the caller's scope, so it
/// leaks nothing whether or not the caller holds a <see cref="torch.NewDisposeScope"/>.
/// Half-precision head outputs are cast to float32 before the loss.
/// </remarks>
public static class TaskLoss
{
    /// <summary>Weight of positive pixels in the boundary BCE (negatives get 1 − this; MODEL-SPEC §8).</summary>
    public const double BoundaryPositiveWeight = 0.95;

    /// <summary>
    /// The loss of one task: <paramref name="output"/> is the raw head output B×C_t×H×W,
    /// <paramref name="label"/> the float32 label B×P×H×W (P = <see cref="TaskSpec.LabelPlanes"/>).
    /// </summary>
    // The constants the losses compare with, as Scalars made once (see ScalarArithmetic: no implicit Scalars per step).
    private static readonly Scalar Zero = 0.0.ToScalar(), Half = 0.5.ToScalar(), One = 1.ToScalar(), Ignore = TaskSpec.IgnoreLabel.ToScalar();

    public static Tensor Compute(TaskSpec spec, Tensor output, Tensor label)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(label);
        CheckShapes(spec, output, label);
        return spec.Kind switch
        {
            TaskKind.SemanticSegmentation or TaskKind.Parts => CrossEntropy(output, label),
            TaskKind.Depth => DepthL1(output, label),
            TaskKind.Saliency => BalancedBce(output, label, positiveWeight: null),
            TaskKind.Normals => NormalsL1(output, label),
            TaskKind.Boundaries => BalancedBce(output, label, BoundaryPositiveWeight),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, $"Task '{spec.Name}': unknown task kind."),
        };
    }

    /// <summary>Cross-entropy over the valid pixels (label ≠ 255). Logits B×C×H×W, label B×1×H×W class indices.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor label)
    {
        using var scope = torch.NewDisposeScope();
        var x = logits.to_type(ScalarType.Float32);
        var target = label.to(x.device).squeeze(1).to_type(ScalarType.Int64);          // B×H×W
        var valid = target.ne(Ignore);
        var perPixel = F.cross_entropy(x, target, ignore_index: (long)TaskSpec.IgnoreLabel, reduction: nn.Reduction.None);
        return scope.MoveToOuter(MaskedMean(perPixel, valid));
    }

    /// <summary>L1 on valid depth pixels (label &gt; 0 and ≠ 255). Prediction and label B×1×H×W in metres.</summary>
    public static Tensor DepthL1(Tensor prediction, Tensor label)
    {
        using var scope = torch.NewDisposeScope();
        var x = prediction.to_type(ScalarType.Float32);
        var y = label.to(x.device).to_type(ScalarType.Float32);
        var valid = y.gt(Zero).logical_and(y.ne(Ignore));
        return scope.MoveToOuter(MaskedMean((x - y).abs(), valid));
    }

    /// <summary>
    /// L1 between the L2-normalised prediction and the ground-truth normal, averaged over the components of
    /// valid pixels (label vector length &gt; 0 and no component 255), as the public NormalsLoss does.
    /// Prediction and label B×3×H×W.
    /// </summary>
    public static Tensor NormalsL1(Tensor prediction, Tensor label)
    {
        using var scope = torch.NewDisposeScope();
        var x = F.normalize(prediction.to_type(ScalarType.Float32), p: 2, dim: 1, eps: TaskOutputs.NormalsEps);
        var y = label.to(x.device).to_type(ScalarType.Float32);
        var valid = y.ne(Zero).any(1, keepdim: true)
            .logical_and(y.eq(Ignore).any(1, keepdim: true).logical_not())
            .expand_as(y);                                                              // B×1×H×W → B×3×H×W
        return scope.MoveToOuter(MaskedMean((x - y).abs(), valid));
    }

    /// <summary>
    /// HED-style balanced BCE on logits (MODEL-SPEC §8): with y = label &gt; 0.5 on the valid pixels
    /// (label ≠ 255), loss = [w·Σ_{y=1} bce + (1−w)·Σ_{y=0} bce] / (number of label elements), where
    /// w = <paramref name="positiveWeight"/>, or when null w = #negatives / #valid pixels of the batch
    /// (saliency). The divisor counts every label element, ignored ones included, as the public code does.
    /// </summary>
    public static Tensor BalancedBce(Tensor logits, Tensor label, double? positiveWeight)
    {
        using var scope = torch.NewDisposeScope();
        var x = logits.to_type(ScalarType.Float32);
        var y = label.to(x.device).to_type(ScalarType.Float32);
        var valid = y.ne(Ignore);
        var positive = y.gt(Half).logical_and(valid);
        var negative = valid.logical_and(positive.logical_not());
        var bce = F.binary_cross_entropy_with_logits(x, positive.to_type(ScalarType.Float32), reduction: nn.Reduction.None);
        var w = positiveWeight is double fixedWeight
            ? torch.tensor(fixedWeight, ScalarType.Float32, x.device)
            : negative.sum().to_type(ScalarType.Float32) / valid.sum().clamp_min(One).to_type(ScalarType.Float32);
        var positiveSum = bce.Else(positive, 0).sum();
        var negativeSum = bce.Else(negative, 0).sum();
        var loss = negativeSum.lerp(positiveSum, w).Times(1.0 / y.numel());   // (w·Σ⁺ + (1 − w)·Σ⁻) / |pixels|
        return scope.MoveToOuter(loss);
    }

    /// <summary>Mean of <paramref name="values"/> over the true entries of <paramref name="mask"/>; 0 (still attached to the graph) when none is true.</summary>
    static Tensor MaskedMean(Tensor values, Tensor mask)
    {
        var count = mask.sum().clamp_min(One).to_type(ScalarType.Float32);
        return values.Else(mask, 0).sum() / count;
    }

    static void CheckShapes(TaskSpec spec, Tensor output, Tensor label)
    {
        TaskOutputs.CheckOutput(spec, output);
        long[] expected = [output.shape[0], spec.LabelPlanes, output.shape[2], output.shape[3]];
        if (!label.shape.SequenceEqual(expected))
            throw new ArgumentException(
                $"Task '{spec.Name}' ({spec.Kind}): the label must be [{string.Join(", ", expected)}] (B×{spec.LabelPlanes}×H×W like the output), got [{string.Join(", ", label.shape)}].",
                nameof(label));
    }
}
