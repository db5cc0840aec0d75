using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// The ONNX twin of <see cref="SequentialCrossAttentionNetwork"/>'s eval forward (MODEL-SPEC §5) with
/// <see cref="CrossTaskAttentionModule"/> (CTAM) and <see cref="CrossScaleAttentionModule"/> (CSAM), reading the same
/// state_dict keys. The deep-supervision heads (<c>taskHeads.t.auxiliary</c>) only run in training, so the graph does not
/// read them; the exporter keeps them in the metadata with the other unread state.
/// </summary>
internal static class SequentialGraph
{
    /// <summary>SequentialCrossAttentionNetwork.forward after the input normalisation: B×3×H×W → per task B×C_t×H×W.</summary>
    public static string[] Network(OnnxGraph g, MultiTaskNetworkOptions o, string normalised)
    {
        var ms = o.SequentialEncoder;
        int tasks = o.Tasks.Count, scales = ms.Scales, headWidth = o.Width / o.Heads;
        var heads = Enumerable.Range(0, scales).Select(s => ms.HeadsAt(s, headWidth)).ToArray();
        var grids = Enumerable.Range(0, scales).Select(s => MultiScaleGraph.Grid(o, s)).ToArray();
        var shared = MultiScaleGraph.Scales(g, "backbone", ms, o, normalised);                                  // S × B×c_σ×h_σ×w_σ
        var perTask = Enumerable.Range(0, tasks).Select(t => Enumerable.Range(0, scales)          // T × S × F_t^σ
            .Select(s => ResidualBlocks(g, $"taskHeads.{t}.features.{s}", o.Sequential.HeadBlocks, shared[s])).ToArray()).ToArray();
        var afterTasks = Enumerable.Range(0, scales)                                              // CTAM at every scale: S × T × F̂_t^σ
            .Select(s => CrossTask(g, $"crossTask.{s}", heads[s], o.Sequential.KeyPoolAt(ms.StrideAt(s)), grids[s], perTask.Select(f => f[s]).ToArray()))
            .ToArray();
        return o.Tasks.Select((task, t) =>
        {
            var refined = CrossScale(g, $"crossScale.{t}", heads, grids, afterTasks.Select(m => m[t]).ToArray());   // CSAM: S × F̃_t^σ
            return FusionHead(g, $"predictionHeads.{t}", task, o, refined);                                  // B×C_t×H×W
        }).ToArray();
    }

    /// <summary>The private ResidualBlock stack: <paramref name="depth"/> × [x ← ReLU(x + BN(Conv3×3(ReLU(BN(Conv3×3(x))))))].</summary>
    private static string ResidualBlocks(OnnxGraph g, string prefix, int depth, string x)
    {
        for (int i = 0; i < depth; i++)
        {
            string body = $"{prefix}.{i}.body";
            var y = g.Relu(g.BatchNorm(g.Conv(x, body + ".conv1", 1, 1), body + ".bn1"));
            y = g.BatchNorm(g.Conv(y, body + ".conv2", 1, 1), body + ".bn2");
            x = g.Relu(g.Add(x, y));
        }
        return x;
    }

    /// <summary>
    /// CrossTaskAttentionModule.forward at one scale: F_t B×c×h×w per task → F̂_t = F_t + ReLU(BN(Conv1×1([Y_u]_{u≠t}))),
    /// Y_u = Attn(LN(F_t tokens), LN(pool(F_u) tokens)).
    /// </summary>
    private static string[] CrossTask(OnnxGraph g, string prefix, int heads, int keyPool, (int Rows, int Cols) grid, string[] maps)
    {
        var keys = maps.Select(m => NetworkGraph.ToTokens(g, g.AveragePool(m, keyPool))).ToArray();          // T × B×n'×c
        return maps.Select((map, t) =>
        {
            string target = $"{prefix}.targets.{t}";
            var query = NetworkGraph.ToTokens(g, map);                                                         // B×n×c
            var others = Enumerable.Range(0, maps.Length).Where(u => u != t).ToArray();
            var gathered = g.Concat(-1, others.Select((u, i) =>                                                // B×n×(T−1)c
                NetworkGraph.NormedCrossAttention(g, $"{target}.sources.{i}", heads, query, keys[u])).ToArray());
            var fused = g.Relu(g.BatchNorm(g.Conv(NetworkGraph.ToMap(g, gathered, grid.Rows, grid.Cols), target + ".fuse.conv"), target + ".fuse.bn"));
            return g.Add(map, fused);
        }).ToArray();
    }

    /// <summary>
    /// CrossScaleAttentionModule.forward for one task: coarse → fine, F̃^σ = F̂^σ + Conv1×1([Attn(LN(F̂^σ), LN(F̃^σ'))]_{σ'>σ});
    /// the coarsest scale is unchanged.
    /// </summary>
    private static string[] CrossScale(OnnxGraph g, string prefix, int[] heads, (int Rows, int Cols)[] grids, string[] maps)
    {
        var refined = (string[])maps.Clone();
        for (int s = maps.Length - 2; s >= 0; s--)
        {
            string target = $"{prefix}.targets.{s}";
            var query = NetworkGraph.ToTokens(g, maps[s]);                                                     // B×n_σ×c_σ
            var gathered = g.Concat(-1, refined.Skip(s + 1).Select((coarser, i) =>                              // B×n_σ×(S−1−σ)c_σ
                NetworkGraph.NormedCrossAttention(g, $"{target}.sources.{i}", heads[s], query, NetworkGraph.ToTokens(g, coarser))).ToArray());
            refined[s] = g.Add(maps[s], g.Conv(NetworkGraph.ToMap(g, gathered, grids[s].Rows, grids[s].Cols), target + ".fuse"));
        }
        return refined;
    }

    /// <summary>
    /// The private FusionHead: every refined scale resized to the finest grid, concatenated, 3×3 conv–BN–ReLU, 1×1 conv
    /// to C_t, bilinear to H×W; depth ends in ReLU.
    /// </summary>
    private static string FusionHead(OnnxGraph g, string prefix, TaskSpec task, MultiTaskNetworkOptions o, string[] refined)
    {
        var (rows, cols) = MultiScaleGraph.Grid(o, 0);
        var stacked = g.Concat(1, refined.Select((m, s) => MultiScaleGraph.Resize(g, m, MultiScaleGraph.Grid(o, s), rows, cols)).ToArray()); // B×Σc_σ×h_0×w_0
        var y = g.Conv(g.Relu(g.BatchNorm(g.Conv(stacked, prefix + ".fuse.conv", 1, 1), prefix + ".fuse.bn")), prefix + ".classifier");
        y = g.ResizeBilinear(y, o.ImageHeight, o.ImageWidth, alignCorners: false);
        return task.Kind == TaskKind.Depth ? g.Relu(y) : y;
    }
}
