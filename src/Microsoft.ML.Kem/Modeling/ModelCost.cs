using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Multiply-adds per image of the dense §1 building blocks, counted as common FLOP counters do: convolutions, linear
/// layers and the attention products; normalisation, activations, softmax, residual adds and resizing are not counted.
/// FLOPs ≈ 2 × multiply-adds.
/// </summary>
public static class ModelCost
{
    /// <summary>
    /// A pre-norm block on n tokens of width d with MLP ratio r (<see cref="TransformerBlock"/>):
    /// projections n·d·(d + 2d + d), MLP 2·n·d·rd, attention scores and weighted sum 2·n²·d.
    /// </summary>
    public static long TransformerBlock(long tokens, long width, long mlpRatio) =>
        tokens * width * width * (4 + 2 * mlpRatio) + 2 * tokens * tokens * width;

    /// <summary>
    /// A <see cref="SwinBlock"/> on a rows×cols grid padded to multiples of the window w: projections and MLP on the n real
    /// tokens as above (padding ignored), attention products 2·R·C·w²·d over the padded windows.
    /// </summary>
    public static long WindowBlock(long rows, long cols, long width, long mlpRatio, long window)
    {
        long padded = (rows + window - 1) / window * window * ((cols + window - 1) / window * window);
        return rows * cols * width * width * (4 + 2 * mlpRatio) + 2 * padded * window * window * width;
    }

    /// <summary>A block of <paramref name="kind"/> on a rows×cols grid.</summary>
    public static long Block(BlockAttention kind, long rows, long cols, long width, long mlpRatio, long window) =>
        kind == BlockAttention.Window ? WindowBlock(rows, cols, width, mlpRatio, window) : TransformerBlock(rows * cols, width, mlpRatio);

    /// <summary>The stage (a) backbone of <paramref name="o"/> (<see cref="Modeling.Backbone"/>): stem, then BackboneDepth blocks on the token grid.</summary>
    public static long Backbone(MultiTaskNetworkOptions o)
    {
        long h = o.ImageHeight, w = o.ImageWidth, d = o.Width, n = o.TokensPerTask;
        long stem = o.Backbone switch
        {
            BackboneKind.ConvStem => 3 * 9 * 32 * (h / 2) * (w / 2) + 32 * 9 * 64 * (h / 4) * (w / 4) + 64 * 9 * d * (h / 8) * (w / 8),
            BackboneKind.TinyViT => 3L * o.TokenStride * o.TokenStride * d * n,
            BackboneKind.MultiScale or BackboneKind.TinySwin or BackboneKind.SwinT => MultiScale(o.ScaleEncoder, h, w, o.MlpRatio)
                + o.ScaleEncoder.FusedScales.Sum(s => (long)o.ScaleEncoder.WidthAt(s)) * d * n,   // a7: 1×1 fusion
            _ => throw new ArgumentOutOfRangeException(nameof(o), o.Backbone, "Unknown backbone."),
        };
        return stem + o.BackboneDepth * Block(o.NeckAttention, h / o.TokenStride, w / o.TokenStride, d, o.MlpRatio, o.TokenWindow);
    }

    /// <summary>
    /// A <see cref="MultiScaleBackbone"/>: patch embedding 3·p²·c_0·n_0, DepthAt(σ) blocks of its kind at every scale,
    /// patch merging n_σ·4c_{σ−1}·2c_{σ−1} into every scale σ ≥ 1.
    /// </summary>
    public static long MultiScale(MultiScaleOptions m, long height, long width, long mlpRatio)
    {
        var grids = Enumerable.Range(0, m.Scales).Select(s => m.GridAt((int)height, (int)width, s)).ToArray();
        long total = 3L * m.FirstStride * m.FirstStride * m.FirstWidth * grids[0].Rows * grids[0].Cols;
        for (int s = 0; s < m.Scales; s++)
        {
            total += m.DepthAt(s) * Block(m.Attention, grids[s].Rows, grids[s].Cols, m.WidthAt(s), mlpRatio, m.Window);
            if (s > 0) total += (long)grids[s].Rows * grids[s].Cols * 4L * m.WidthAt(s - 1) * m.WidthAt(s);
        }
        return total;
    }

    /// <summary>
    /// A <see cref="DenseHead"/> on a rows×cols grid of width d: segmentation-like 1×1 d→d and d→C_t on the grid;
    /// depth 1×1 d→d/2 on the grid, then d/2→32 and 32→1 on the ×2 grid.
    /// </summary>
    public static long DenseHead(TaskSpec task, long width, long rows, long cols)
    {
        long n = rows * cols;
        if (task.Kind != TaskKind.Depth) return n * width * width + n * width * task.Channels;
        long half = Math.Max(width / 2, 1);
        return n * width * half + 4 * n * (half * 32 + 32);
    }
}
