using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>The attention kind of a transformer block (MODEL-SPEC §1, "Transformer block").</summary>
public enum BlockAttention
{
    /// <summary>Full attention over all tokens of the grid (<see cref="TransformerBlock"/>).</summary>
    Global,
    /// <summary>Swin's attention inside w×w windows with a relative position bias, odd blocks shifted (<see cref="SwinBlock"/>).</summary>
    Window,
}

/// <summary>
/// Pre-norm Swin block with `Window` attention (MODEL-SPEC §1, "Transformer block"): x ← x + WAttn(LN(x));
/// x ← x + MLP(LN(x)). WAttn pads the r×c grid to multiples of the window w (zeros, after LN, as the official Swin does),
/// rolls it by −shift, attends inside each w×w window with a learned relative position bias (a (2w−1)²×h table indexed by
/// the row and column offsets) plus, when shifted, the standard mask that keeps wrapped-around regions apart (−100), then
/// rolls back and crops to r×c. A grid that fits in one window is never shifted (official Swin: shifting would only cut
/// the single window into masked pieces).
/// </summary>
public sealed class SwinBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly MultiHeadAttention attn;
    private readonly Parameter relative_position_bias_table;
    private readonly LayerNorm norm2;
    private readonly Linear fc1;
    private readonly GELU act;
    private readonly Linear fc2;
    // Fixed buffers, recomputed from the sizes: the table row of every (query, key) pair of a window, w²×w²;
    // the shift mask, windows×1×w²×w² (zeros when not shifted).
    private readonly Tensor relative_position_index;
    private readonly Tensor attention_mask;
    private readonly int rows, cols, window, shift, heads;

    /// <summary>
    /// A block on a <paramref name="rows"/>×<paramref name="cols"/> grid of <paramref name="width"/>-wide tokens, <paramref name="heads"/>
    /// heads, <paramref name="window"/>×<paramref name="window"/> windows, cyclic shift <paramref name="shift"/> (0 or ⌊w/2⌋ in Swin).
    /// </summary>
    public SwinBlock(string name, int rows, int cols, int width, int heads, int window, int shift, int mlpRatio = 4) : base(name)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "The attention window must be ≥ 1 (7 in Swin).");
        if (shift < 0 || shift >= window) throw new ArgumentOutOfRangeException(nameof(shift), shift, $"The shift must be in [0, {window}) for window {window}.");
        (this.rows, this.cols, this.window, this.heads) = (rows, cols, window, heads);
        this.shift = EffectiveShift(rows, cols, window, shift);
        norm1 = nn.LayerNorm(width);
        attn = new MultiHeadAttention("attn", width, heads);
        relative_position_bias_table = nn.Parameter(TruncatedNormal.Fill(torch.empty((2 * window - 1) * (2 * window - 1), heads), std: 0.02));
        norm2 = nn.LayerNorm(width);
        fc1 = nn.Linear(width, (long)width * mlpRatio);
        act = nn.GELU();
        fc2 = nn.Linear((long)width * mlpRatio, width);
        relative_position_index = RelativePositionIndex(window);
        var layout = new WindowLayout(rows, cols, window, this.shift);
        attention_mask = ShiftMask(layout.PaddedRows, layout.PaddedCols, window, this.shift);
        RegisterComponents();
    }

    /// <summary>The cyclic shift this block applies (0 when unshifted or when the grid fits one window).</summary>
    public int Shift => shift;

    /// <summary>x: B×(r·c)×d, row-major → B×(r·c)×d.</summary>
    public override Tensor forward(Tensor x)
    {
        x = x + WindowAttention(norm1.forward(x));
        return x + fc2.Apply(act.forward(fc1.Apply(norm2.forward(x))));
    }

    /// <summary>WAttn: tokens B×(r·c)×d → B×(r·c)×d.</summary>
    private Tensor WindowAttention(Tensor tokens)
    {
        var layout = new WindowLayout(rows, cols, window, shift);
        var windows = layout.Partition(tokens);                                                      // (B·nW)×w²×d
        var bias = layout.Bias(relative_position_bias_table, relative_position_index, attention_mask, heads, tokens.shape[0]);
        return layout.Reverse(attn.Attend(windows, windows, bias), tokens.shape[0]);                // B×(r·c)×d
    }

    /// <summary>The shift a block applies on a rows×cols grid: <paramref name="shift"/>, or 0 when one window covers the grid.</summary>
    public static int EffectiveShift(int rows, int cols, int window, int shift) => rows <= window && cols <= window ? 0 : shift;

    /// <summary>
    /// Table row of every (query i, key j) pair inside a w×w window, w²×w² int64:
    /// (r_i − r_j + w − 1)·(2w − 1) + (c_i − c_j + w − 1), positions row-major.
    /// </summary>
    public static Tensor RelativePositionIndex(int window)
    {
        int length = window * window;
        var index = new long[length * length];
        for (int i = 0; i < length; i++)
            for (int j = 0; j < length; j++)
                index[i * length + j] = (i / window - j / window + window - 1) * (2L * window - 1) + (i % window - j % window + window - 1);
        return torch.tensor(index, [length, length]);
    }

    /// <summary>
    /// Swin's shift mask for an R×C (padded) grid rolled by −<paramref name="shift"/>: the rolled grid is cut into three bands per
    /// axis ([0, R−w), [R−w, R−s), [R−s, R)); tokens of one window in different band pairs come from opposite sides of the
    /// image and get −100. windows×1×w²×w² (windows in row-major order); 1×1×w²×w² zeros when <paramref name="shift"/> is 0.
    /// </summary>
    public static Tensor ShiftMask(long paddedRows, long paddedCols, int window, int shift)
    {
        int length = window * window;
        if (shift == 0) return torch.zeros(1, 1, length, length);
        int Band(long position, long size) => position < size - window ? 0 : position < size - shift ? 1 : 2;
        long windowRows = paddedRows / window, windowCols = paddedCols / window;
        var mask = new float[windowRows * windowCols * length * length];
        for (long w = 0; w < windowRows * windowCols; w++)
        {
            var region = new int[length];
            for (int p = 0; p < length; p++)
                region[p] = 3 * Band(w / windowCols * window + p / window, paddedRows) + Band(w % windowCols * window + p % window, paddedCols);
            for (int i = 0; i < length; i++)
                for (int j = 0; j < length; j++)
                    mask[(w * length + i) * length + j] = region[i] == region[j] ? 0f : -100f;
        }
        return torch.tensor(mask, [windowRows * windowCols, 1, length, length]);
    }

    /// <summary>
    /// <paramref name="depth"/> blocks on a rows×cols grid of the given attention kind: `Global` → <see cref="TransformerBlock"/>s,
    /// `Window` → <see cref="SwinBlock"/>s with the odd ones shifted by ⌊w/2⌋. Identity when <paramref name="depth"/> is 0.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Stack(
        string name, BlockAttention kind, int depth, int rows, int cols, int width, int heads, int window, int mlpRatio)
    {
        if (kind == BlockAttention.Global) return TransformerBlock.Stack(name, depth, width, heads, mlpRatio);
        var blocks = Enumerable.Range(0, depth)
            .Select(i => ((string, nn.Module<Tensor, Tensor>))($"{i}", new SwinBlock($"block{i}", rows, cols, width, heads, window, i % 2 == 1 ? window / 2 : 0, mlpRatio)))
            .ToArray();
        return depth == 0 ? nn.Identity() : nn.Sequential(blocks);
    }
}
