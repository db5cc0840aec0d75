using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx.Proto;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// The ONNX twin of <see cref="ComputationSharingNetwork"/>'s forward (MODEL-SPEC §6) with <see cref="DeltaTransformerBlock"/>
/// and <see cref="WeightDelta"/>, reading the same state_dict keys. The graph stores the dense weight deltas ΔW (so the
/// file rebuilds the network bit for bit) and, like the module, keeps the ⌈ρ·size⌉ largest-magnitude entries of each at
/// run time (TopK → ScatterElements mask) and zeroes activation deltas below τ (|δ| ≥ τ).
/// </summary>
internal static class ComputationSharingGraph
{
    /// <summary>ComputationSharingNetwork.forward after the input normalisation: B×3×H×W → per task B×C_t×H×W.</summary>
    public static string[] Network(OnnxGraph g, MultiTaskNetworkOptions o, string normalised)
    {
        var sharing = o.ComputationSharing;
        int baseTask = sharing.BaseTask is { } name ? o.Tasks.Select(t => t.Name).ToList().IndexOf(name) : 0;
        var subTasks = Enumerable.Range(0, o.Tasks.Count).Where(t => t != baseTask).ToArray();
        var baseTokens = NetworkGraph.Backbone(g, o, normalised);                               // (a) B×n×d, computed once for all tasks
        var subTokens = subTasks.Select(_ => baseTokens).ToArray();                              // sub-tasks start from the base's activations
        for (int i = 0; i < o.EncoderDepth + o.DecoderDepth; i++)
        {
            var block = new DeltaBlock(g, $"blocks.{i}", o.Heads, sharing);
            var next = block.Base(baseTokens, out var trace);
            for (int k = 0; k < subTokens.Length; k++) subTokens[k] = block.SubTask(k, subTokens[k], trace);
            baseTokens = next;
        }
        var outputs = new string[o.Tasks.Count];
        outputs[baseTask] = NetworkGraph.DenseHead(g, $"heads.{baseTask}", o.Tasks[baseTask], o, baseTokens);
        for (int k = 0; k < subTasks.Length; k++)
            outputs[subTasks[k]] = NetworkGraph.DenseHead(g, $"heads.{subTasks[k]}", o.Tasks[subTasks[k]], o, subTokens[k]);
        return outputs;
    }

    /// <summary>The base activations of one block (DeltaTransformerBlock's BlockTrace).</summary>
    private sealed record Trace(string AttentionInput, string Query, string KeyValue, string AttentionOutput, string Projected,
        string MlpInput, string Hidden, string Activated, string MlpOutput);

    /// <summary>One DeltaTransformerBlock: the base block at <c>prefix.block</c>, sub-task k's deltas at <c>prefix.deltas.k</c>.</summary>
    private sealed class DeltaBlock(OnnxGraph g, string prefix, int heads, ComputationSharingOptions sharing)
    {
        private readonly Dictionary<(int, string), string> sparseDeltas = new();

        private string BaseWeight(string name) => g.Weight($"{prefix}.block.{name}");

        /// <summary>DeltaTransformerBlock.ForwardBase: the TransformerBlock on x (B×n×d), keeping its activations.</summary>
        public string Base(string x, out Trace trace)
        {
            var a = LayerNorm(x, BaseWeight("norm1.weight"), BaseWeight("norm1.bias"));                     // LN(x)
            var q = Linear(a, BaseWeight("attn.query.weight"), BaseWeight("attn.query.bias"));             // B×n×d
            var kv = Linear(a, BaseWeight("attn.keyValue.weight"), BaseWeight("attn.keyValue.bias"));      // B×n×2d
            var o = Attention(q, kv);                                                                      // B×n×d, merged heads
            var p = Linear(o, BaseWeight("attn.output.weight"), BaseWeight("attn.output.bias"));
            x = g.Add(x, p);
            var m = LayerNorm(x, BaseWeight("norm2.weight"), BaseWeight("norm2.bias"));
            var h = Linear(m, BaseWeight("fc1.weight"), BaseWeight("fc1.bias"));                           // B×n×rd
            var gelu = g.Gelu(h);
            var f = Linear(gelu, BaseWeight("fc2.weight"), BaseWeight("fc2.bias"));
            trace = new Trace(a, q, kv, o, p, m, h, gelu, f);
            return g.Add(x, f);
        }

        /// <summary>DeltaTransformerBlock.ForwardSubTask: sub-task <paramref name="k"/> on its tokens, reusing the base activations.</summary>
        public string SubTask(int k, string x, Trace trace)
        {
            string W(string name) => g.Add(BaseWeight(name), Delta(k, name));                              // W_base + z ⊙ ΔW
            var a = Input(trace.AttentionInput, LayerNorm(x, W("norm1.weight"), W("norm1.bias")));
            var q = SharedLinear(k, "attn.query", trace.Query, a);
            var kv = SharedLinear(k, "attn.keyValue", trace.KeyValue, a);
            var o = Input(trace.AttentionOutput, Attention(q, kv));
            x = g.Add(x, SharedLinear(k, "attn.output", trace.Projected, o));
            var m = Input(trace.MlpInput, LayerNorm(x, W("norm2.weight"), W("norm2.bias")));
            var h = SharedLinear(k, "fc1", trace.Hidden, m);
            var gelu = Input(trace.Activated, g.Gelu(h));
            return g.Add(x, SharedLinear(k, "fc2", trace.MlpOutput, gelu));
        }

        /// <summary>Sharing.Input: x_sub' = x_base + T_τ(x_sub − x_base), with T_τ zeroing entries below τ in magnitude.</summary>
        private (string Shared, string Delta) Input(string xBase, string xSub)
        {
            var delta = g.Sub(xSub, xBase);
            var kept = g.Op("Cast", new[] { g.Op("GreaterOrEqual", new[] { g.Abs(delta), g.Scalar(sharing.ActivationThreshold) }) },
                OnnxGraph.Attr("to", (long)TensorProto.Types.DataType.Float));
            var sparse = g.Mul(delta, kept);
            return (g.Add(xBase, sparse), sparse);
        }

        /// <summary>Sharing.Linear: y_sub = y_base + W_base·T_τ(δx) + (z ⊙ ΔW)·x_sub' + z ⊙ Δb.</summary>
        private string SharedLinear(int k, string layer, string yBase, (string Shared, string Delta) input)
        {
            var y = g.Add(yBase, g.MatMul(input.Delta, g.Transpose(BaseWeight(layer + ".weight"), 1, 0)));
            return g.Add(y, Linear(input.Shared, Delta(k, layer + ".weight"), Delta(k, layer + ".bias")));
        }

        /// <summary>
        /// WeightDelta.Sparse for one parameter: ΔW with all but its ⌈ρ·size⌉ largest-magnitude entries zeroed
        /// (ΔW itself when that keeps every entry).
        /// </summary>
        private string Delta(int k, string name)
        {
            if (sparseDeltas.TryGetValue((k, name), out var cached)) return cached;
            string key = $"{prefix}.deltas.{k}.{name.Replace('.', '_')}";
            var delta = g.Weight(key);
            var shape = g.Shape(key);
            long size = shape.Aggregate(1L, (a, b) => a * b);
            long keep = (long)Math.Ceiling(sharing.DeltaDensity * size);
            string sparse;
            if (keep >= size) sparse = delta;
            else if (keep == 0) sparse = g.Mul(delta, g.Full(0f, shape));
            else
            {
                var flat = g.Reshape(g.Abs(delta), -1);
                var indices = g.Node("TopK", new[] { flat, g.Ints(keep) }, null, 2, OnnxGraph.Attr("axis", -1L), OnnxGraph.Attr("largest", 1L))[1];
                var mask = g.Op("ScatterElements", new[] { g.Full(0f, size), indices, g.Full(1f, keep) }, OnnxGraph.Attr("axis", 0L));
                sparse = g.Mul(delta, g.Reshape(mask, shape));
            }
            return sparseDeltas[(k, name)] = sparse;
        }

        // F.layer_norm(x, [d], weight, bias), eps 1e-5, with computed weights
        private string LayerNorm(string x, string weight, string bias) =>
            g.Op("LayerNormalization", new[] { x, weight, bias }, OnnxGraph.Attr("axis", -1L), OnnxGraph.Attr("epsilon", 1e-5f));

        // F.linear(x, W, b) = x Wᵀ + b
        private string Linear(string x, string weight, string bias) => g.Add(g.MatMul(x, g.Transpose(weight, 1, 0)), bias);

        // merge(softmax(Q Kᵀ/√d_h) V) from q B×n×d and the fused kv B×n×2d
        private string Attention(string q, string kv)
        {
            var parts = g.Chunk(kv, 2, -1);
            var headWidth = g.Shape($"{prefix}.block.attn.query.weight")[0] / heads;
            return NetworkGraph.MergeHeads(g, NetworkGraph.Attend(g, NetworkGraph.SplitHeads(g, q, heads),
                NetworkGraph.SplitHeads(g, parts[0], heads), NetworkGraph.SplitHeads(g, parts[1], heads),
                Interaction.AttentionKernel.DefaultScale(headWidth)));
        }
    }
}
