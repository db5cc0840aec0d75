using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Stage (d2–d4): task tokens → dense map at input resolution, MTFormer's heads (MODEL-SPEC §1, "Dense heads").
/// Segmentation-like: 1×1 conv d→d (no bias) → BN → ReLU → 1×1 conv d→C_t → ×2 bilinear (align corners) → resize to H×W.
/// Depth: 1×1 conv d→d/2 → ×2 bilinear → 1×1 conv d/2→32 → ReLU → 1×1 conv 32→1 → ReLU → resize to H×W.
/// </summary>
public sealed class DenseHead : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> beforeUpsample;
    private readonly nn.Module<Tensor, Tensor> afterUpsample;
    private readonly int gridRows, gridCols, height, width;

    /// <summary>Head for <paramref name="task"/> on a <paramref name="gridRows"/>×<paramref name="gridCols"/> token grid.</summary>
    public DenseHead(string name, TaskSpec task, int tokenWidth, int gridRows, int gridCols, int height, int width) : base(name)
    {
        (this.gridRows, this.gridCols, this.height, this.width) = (gridRows, gridCols, height, width);
        if (task.Kind == TaskKind.Depth)
        {
            int half = Math.Max(tokenWidth / 2, 1);
            beforeUpsample = nn.Conv2d(tokenWidth, half, 1);
            var last = nn.Conv2d(32, 1, 1);
            // Start near a plausible depth so the final ReLU is active from step 0 (MTFormer's ReLU keeps depth positive).
            using (torch.no_grad()) last.bias!.fill_(1.0);
            afterUpsample = nn.Sequential(("conv2", nn.Conv2d(half, 32, 1)), ("relu2", nn.ReLU()), ("conv3", last), ("relu3", nn.ReLU()));
        }
        else
        {
            beforeUpsample = nn.Sequential(
                ("conv1", nn.Conv2d(tokenWidth, tokenWidth, 1, bias: false)), ("bn", nn.BatchNorm2d(tokenWidth)), ("relu", nn.ReLU()),
                ("conv2", nn.Conv2d(tokenWidth, task.Channels, 1)));
            afterUpsample = nn.Identity();
        }
        RegisterComponents();
    }

    /// <summary>tokens: B×n×d → B×C_t×H×W.</summary>
    public override Tensor forward(Tensor tokens)
    {
        var map = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], gridRows, gridCols); // B×d×(H/s)×(W/s)
        var y = beforeUpsample.forward(map);
        y = nn.functional.interpolate(y, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Bilinear, align_corners: true);
        y = afterUpsample.forward(y);
        return nn.functional.interpolate(y, size: new long[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false);
    }
}
