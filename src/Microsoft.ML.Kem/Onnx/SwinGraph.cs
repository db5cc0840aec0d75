using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// The ONNX twin of <see cref="SwinBlock"/> (MODEL-SPEC §1 `Window`): window partition / reverse as Reshape + Transpose, the
/// cyclic roll as Slice + Concat, zero padding as Pad and the crop as Slice, the relative position bias as a Gather of the table
/// by the block's fixed index buffer, and the shift mask as the block's mask buffer (both initializers).
/// </summary>
internal static class SwinGraph
{
    /// <summary>SwinBlock.Stack / TransformerBlock.Stack: <paramref name="depth"/> blocks named prefix.0, prefix.1, … of <paramref name="kind"/>.</summary>
    public static string Blocks(OnnxGraph g, string prefix, BlockAttention kind, int depth, int heads, int rows, int cols, int window, string x)
    {
        if (kind == BlockAttention.Global) return NetworkGraph.Blocks(g, prefix, depth, heads, x);
        for (int i = 0; i < depth; i++)
        {
            int shift = SwinBlock.EffectiveShift(rows, cols, window, i % 2 == 1 ? window / 2 : 0);
            x = Block(g, $"{prefix}.{i}", heads, rows, cols, window, shift, x);
        }
        return x;
    }

    /// <summary>SwinBlock.forward: x + WAttn(LN(x)), then x + MLP(LN(x)); x B×(r·c)×d.</summary>
    private static string Block(OnnxGraph g, string prefix, int heads, int rows, int cols, int window, int shift, string x)
    {
        x = g.Add(x, WindowAttention(g, prefix, heads, rows, cols, window, shift, g.LayerNorm(x, prefix + ".norm1")));
        var mlp = g.Linear(g.Gelu(g.Linear(g.LayerNorm(x, prefix + ".norm2"), prefix + ".fc1")), prefix + ".fc2");
        return g.Add(x, mlp);
    }

    /// <summary>SwinBlock.WindowAttention: tokens B×(r·c)×d → B×(r·c)×d.</summary>
    private static string WindowAttention(OnnxGraph g, string prefix, int heads, int rows, int cols, int window, int shift, string tokens)
    {
        long width = g.Shape(prefix + ".norm1.weight")[0];
        var layout = new WindowLayout(rows, cols, window, shift);
        var windows = Partition(g, layout, tokens, width);                                                // (B·nW)×w²×d
        var q = NetworkGraph.SplitHeads(g, g.Linear(windows, prefix + ".attn.query"), heads);                // (B·nW)×h×w²×d_h
        var kv = g.Chunk(g.Linear(windows, prefix + ".attn.keyValue"), 2, -1);
        var k = NetworkGraph.SplitHeads(g, kv[0], heads);
        var v = NetworkGraph.SplitHeads(g, kv[1], heads);
        var scores = AddBias(g, prefix, layout, heads, NetworkGraph.Scores(g, q, k, AttentionKernel.DefaultScale(width / heads)));
        var weights = g.Op("Softmax", [scores], OnnxGraph.Attr("axis", -1L));
        var mixed = g.Linear(NetworkGraph.MergeHeads(g, g.MatMul(weights, v)), prefix + ".attn.output");    // (B·nW)×w²×d
        return Reverse(g, layout, mixed, width);
    }

    /// <summary>WindowLayout.Partition: tokens B×(r·c)×C → windows (B·nW)×w²×C (zero padding as Pad, the roll as Slice + Concat).</summary>
    public static string Partition(OnnxGraph g, WindowLayout layout, string tokens, long width)
    {
        long windowRows = layout.PaddedRows / layout.Window, windowCols = layout.PaddedCols / layout.Window;
        var grid = g.Reshape(tokens, -1, layout.Rows, layout.Cols, width);                                 // B×r×c×C
        if (layout.PaddedRows != layout.Rows || layout.PaddedCols != layout.Cols)
            grid = g.Op("Pad", [grid, g.Ints(0, 0, 0, 0, 0, layout.PaddedRows - layout.Rows, layout.PaddedCols - layout.Cols, 0)]);
        if (layout.Shift > 0) grid = Roll(g, Roll(g, grid, 1, layout.PaddedRows, -layout.Shift), 2, layout.PaddedCols, -layout.Shift);
        return g.Reshape(g.Transpose(g.Reshape(grid, -1, windowRows, layout.Window, windowCols, layout.Window, width), 0, 1, 3, 2, 4, 5),
            -1, layout.Length, width);
    }

    /// <summary>WindowLayout.Reverse: windows (B·nW)×w²×C → tokens B×(r·c)×C (rolled back, cropped).</summary>
    public static string Reverse(OnnxGraph g, WindowLayout layout, string windows, long width)
    {
        long windowRows = layout.PaddedRows / layout.Window, windowCols = layout.PaddedCols / layout.Window;
        var grid = g.Reshape(g.Transpose(g.Reshape(windows, -1, windowRows, windowCols, layout.Window, layout.Window, width), 0, 1, 3, 2, 4, 5),
            -1, layout.PaddedRows, layout.PaddedCols, width);                                                // B×R×C'×C
        if (layout.Shift > 0) grid = Roll(g, Roll(g, grid, 1, layout.PaddedRows, layout.Shift), 2, layout.PaddedCols, layout.Shift);
        if (layout.PaddedRows != layout.Rows || layout.PaddedCols != layout.Cols)
            grid = g.Op("Slice", [grid, g.Ints(0, 0), g.Ints(layout.Rows, layout.Cols), g.Ints(1, 2)]);     // crop to B×r×c×C
        return g.Reshape(grid, -1, (long)layout.Rows * layout.Cols, width);
    }

    /// <summary>
    /// WindowLayout.Bias added to scores (B·nW)×h×w²×w²: the table at prefix.relative_position_bias_table gathered by the
    /// block's index buffer, plus, when shifted, its mask buffer per window (both initializers).
    /// </summary>
    public static string AddBias(OnnxGraph g, string prefix, WindowLayout layout, int heads, string scores)
    {
        long length = layout.Length;
        var bias = g.Transpose(g.Reshape(                                                                    // h×w²×w²
            g.Op("Gather", [g.Weight(prefix + ".relative_position_bias_table"), g.Reshape(g.Weight(prefix + ".relative_position_index"), -1)], OnnxGraph.Attr("axis", 0L)),
            length, length, heads), 2, 0, 1);
        if (layout.Shift == 0) return g.Add(scores, bias);
        var windowBias = g.Add(bias, g.Weight(prefix + ".attention_mask"));                                  // nW×h×w²×w²
        return g.Reshape(g.Add(g.Reshape(scores, -1, layout.WindowsPerImage, heads, length, length), windowBias), -1, heads, length, length);
    }

    /// <summary>torch.roll along one axis of length <paramref name="size"/> by <paramref name="shift"/>: Slice + Concat.</summary>
    private static string Roll(OnnxGraph g, string x, long axis, long size, long shift)
    {
        long cut = ((-shift % size) + size) % size;                        // out = [x[cut:], x[:cut]]
        if (cut == 0) return x;
        var tail = g.Op("Slice", [x, g.Ints(cut), g.Ints(size), g.Ints(axis)]);
        var head = g.Op("Slice", [x, g.Ints(0), g.Ints(cut), g.Ints(axis)]);
        return g.Concat(axis, tail, head);
    }
}
