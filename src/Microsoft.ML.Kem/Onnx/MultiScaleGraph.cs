using Microsoft.ML.Kem.Modeling;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// The ONNX twin of <see cref="MultiScaleBackbone"/> (with <see cref="PatchMerging"/>, Global or Window stages) and <see cref="ScaleFusionStem"/>
/// (MODEL-SPEC §1 a1–a7, §5), reading the same state_dict keys as the modules.
/// </summary>
internal static class MultiScaleGraph
{
    /// <summary>
    /// MultiScaleBackbone.forward for encoder <paramref name="ms"/>: normalised image B×3×H×W → the fused scales' maps (σ ≥
    /// FirstFusedScale), finest first, B×c_σ×h_σ×w_σ on the grids of <see cref="MultiScaleOptions.GridAt"/>.
    /// </summary>
    public static string[] Scales(OnnxGraph g, string prefix, MultiScaleOptions ms, MultiTaskNetworkOptions o, string image)
    {
        int headWidth = o.Width / o.Heads;
        var tokens = g.LayerNorm(NetworkGraph.ToTokens(g, g.Conv(image, prefix + ".patchEmbed", ms.FirstStride)), prefix + ".embedNorm"); // a1: B×n_0×c_0
        var maps = new List<string>();
        for (int s = 0; s < ms.Scales; s++)
        {
            var (rows, cols) = Grid(ms, o, s);
            if (s > 0) tokens = PatchMerging(g, $"{prefix}.merges.{s - 1}", Grid(ms, o, s - 1), tokens);    // B×n_σ×c_σ
            if (ms.Attention == BlockAttention.Global) tokens = g.Add(tokens, g.Weight($"{prefix}.stages.{s}.positions")); // ScaleStage
            tokens = SwinGraph.Blocks(g, $"{prefix}.stages.{s}.blocks", ms.Attention, ms.DepthAt(s), ms.HeadsAt(s, headWidth), rows, cols, ms.Window, tokens);
            if (s >= ms.FirstFusedScale)                                                                       // a6: LN per stage
                maps.Add(NetworkGraph.ToMap(g, g.LayerNorm(tokens, $"{prefix}.outputNorms.{s - ms.FirstFusedScale}"), rows, cols));
        }
        return maps.ToArray();
    }

    /// <summary>ScaleFusionStem.forward: normalised image → B×d×(H/s)×(W/s), every fused scale resized onto the token grid, concatenated, 1×1 conv.</summary>
    public static string FusionStem(OnnxGraph g, string prefix, MultiTaskNetworkOptions o, string normalised)
    {
        long rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        var ms = o.ScaleEncoder;
        var scales = Scales(g, prefix + ".scales", ms, o, normalised);
        var resized = scales.Select((map, i) => Resize(g, map, Grid(ms, o, ms.FirstFusedScale + i), rows, cols)).ToArray(); // a6: each B×c_σ×(H/s)×(W/s)
        return g.Conv(g.Concat(1, resized), prefix + ".fuse");                                               // a7: B×Σc_σ → B×d
    }

    /// <summary>ScaleFusionStem.Resize: identity at the same size, bilinear up (half-pixel), area down.</summary>
    public static string Resize(OnnxGraph g, string map, (int Rows, int Cols) grid, long rows, long cols)
    {
        if (grid.Rows == rows && grid.Cols == cols) return map;
        return grid.Rows < rows
            ? g.ResizeBilinear(map, rows, cols, alignCorners: false)
            : g.ResizeArea(map, grid.Rows, grid.Cols, rows, cols);
    }

    /// <summary>Grid (rows, cols) of scale <paramref name="scale"/> of the sequential design's <see cref="MultiTaskNetworkOptions.SequentialEncoder"/> (<see cref="MultiScaleOptions.GridAt"/>).</summary>
    public static (int Rows, int Cols) Grid(MultiTaskNetworkOptions o, int scale) => Grid(o.SequentialEncoder, o, scale);

    /// <summary>Grid (rows, cols) of scale <paramref name="scale"/> of encoder <paramref name="ms"/>.</summary>
    public static (int Rows, int Cols) Grid(MultiScaleOptions ms, MultiTaskNetworkOptions o, int scale) =>
        ms.GridAt(o.ImageHeight, o.ImageWidth, scale);

    /// <summary>
    /// PatchMerging.forward: B×(r·c)×C → an odd grid zero-padded bottom / right (Pad, constant zeros) → 2×2 neighbours
    /// concatenated B×(r'·c')×4C → LN → Lin(4C→2C), (r', c') = <see cref="MultiScaleOptions.MergedGrid"/>.
    /// </summary>
    private static string PatchMerging(OnnxGraph g, string prefix, (int Rows, int Cols) grid, string tokens)
    {
        long width = g.Shape(prefix + ".norm.weight")[0] / 4;
        var merged = MultiScaleOptions.MergedGrid(grid);
        if (grid.Rows % 2 != 0 || grid.Cols % 2 != 0)                                                     // B×r×c×C → B×2r'×2c'×C
            tokens = g.Op("Pad", [g.Reshape(tokens, 0, grid.Rows, grid.Cols, width), g.Ints(0, 0, 0, 0, 0, grid.Rows % 2, grid.Cols % 2, 0)]);
        var neighbours = g.Reshape(
            g.Transpose(g.Reshape(tokens, 0, merged.Rows, 2, merged.Cols, 2, width), 0, 1, 3, 2, 4, 5),      // B×r'×c'×2×2×C
            0, (long)merged.Rows * merged.Cols, 4 * width);                                                   // B×(r'·c')×4C
        return g.Linear(g.LayerNorm(neighbours, prefix + ".norm"), prefix + ".reduction");
    }
}
