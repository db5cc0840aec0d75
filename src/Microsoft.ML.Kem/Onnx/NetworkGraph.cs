using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx.Proto;
using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// The ONNX twin of <see cref="MultiTaskNetwork.forward"/> and its modules, one method per module, each reading top to
/// bottom like the module's own forward and naming the same state_dict keys. Every backbone, interaction kind and option
/// the network can be built with is covered; OnnxExportTests compare each against TorchSharp. <see cref="Network"/> also
/// dispatches to the other model families (<see cref="SequentialGraph"/>, <see cref="ComputationSharingGraph"/>).
/// </summary>
internal static class NetworkGraph
{
    /// <summary>MultiTaskModel.Create's network, forward in eval mode: images B×3×H×W raw pixels → per task B×C_t×H×W raw maps.</summary>
    public static string[] Network(OnnxGraph g, MultiTaskNetworkOptions o, string images)
    {
        var normalised = g.Div(g.Sub(images, g.Weight("pixelMean")), g.Weight("pixelStd"));     // MODEL-SPEC §1, input
        return o.Architecture switch
        {
            NetworkArchitecture.SharedEncoder => SharedEncoder(g, o, normalised),
            NetworkArchitecture.SequentialCrossAttention => SequentialGraph.Network(g, o, normalised),
            NetworkArchitecture.ComputationSharing => ComputationSharingGraph.Network(g, o, normalised),
            _ => throw new NotSupportedException($"The ONNX exporter does not know NetworkArchitecture {o.Architecture}."),
        };
    }

    /// <summary>MultiTaskNetwork.forward after the input normalisation: B×3×H×W → per task B×C_t×H×W.</summary>
    private static string[] SharedEncoder(OnnxGraph g, MultiTaskNetworkOptions o, string normalised)
    {
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        string TaskBlocks(string prefix, int depth, string x) =>                                 // Global or Window (o.TaskBlocks)
            SwinGraph.Blocks(g, prefix, o.TaskBlocks, depth, o.Heads, rows, cols, o.TokenWindow, x);
        var shared = Backbone(g, o, normalised);                                                 // (a) B×n×d
        var taskTokens = g.Concat(1, o.Tasks.Select((_, t) =>                                    // (b) B×T×n×d
            g.Unsqueeze(TaskBlocks($"encoders.{t}", o.EncoderDepth, shared), 1)).ToArray());
        var mixed = InteractionGraph.Interaction(g, "interaction", o, taskTokens);               // (c) B×T×n×d
        return o.Tasks.Select((task, t) =>                                                       // (d) B×C_t×H×W
            DenseHead(g, $"heads.{t}", task, o, TaskBlocks($"decoders.{t}", o.DecoderDepth, g.Select(mixed, 1, t)))).ToArray();
    }

    /// <summary>Backbone.forward: normalised image → B×n×d.</summary>
    public static string Backbone(OnnxGraph g, MultiTaskNetworkOptions o, string image)
    {
        string grid = o.Backbone switch                                                          // B×d×(H/s)×(W/s)
        {
            BackboneKind.ConvStem => g.Conv(
                g.Relu(g.BatchNorm(g.Conv(g.Relu(g.BatchNorm(g.Conv(image, "backbone.stem.conv1", 2, 1), "backbone.stem.bn1")),
                    "backbone.stem.conv2", 2, 1), "backbone.stem.bn2")),
                "backbone.stem.conv3", 2, 1),
            BackboneKind.TinyViT => g.Conv(image, "backbone.stem", o.TokenStride, 0),
            BackboneKind.MultiScale or BackboneKind.TinySwin or BackboneKind.SwinT => MultiScaleGraph.FusionStem(g, "backbone.stem", o, image),
            _ => throw new NotSupportedException($"The ONNX exporter does not know backbone {o.Backbone}."),
        };
        var tokens = ToTokens(g, grid);                                                          // B×n×d
        tokens = g.Add(tokens, g.Weight("backbone.positions"));
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        var neck = SwinGraph.Blocks(g, "backbone.blocks", o.NeckAttention, o.BackboneDepth, o.Heads, rows, cols, o.TokenWindow, tokens);
        return g.LayerNorm(neck, "backbone.norm");
    }

    /// <summary>TransformerBlock.Stack: <paramref name="depth"/> blocks named prefix.0, prefix.1, … (identity when 0).</summary>
    public static string Blocks(OnnxGraph g, string prefix, int depth, int heads, string x)
    {
        for (int i = 0; i < depth; i++) x = Block(g, $"{prefix}.{i}", heads, x);
        return x;
    }

    /// <summary>TransformerBlock.forward: x + Attn(LN(x)), then x + MLP(LN(x)).</summary>
    private static string Block(OnnxGraph g, string prefix, int heads, string x)
    {
        var h = g.LayerNorm(x, prefix + ".norm1");
        x = g.Add(x, Attention(g, prefix + ".attn", heads, h, h, scale: null));
        var mlp = g.Linear(g.Gelu(g.Linear(g.LayerNorm(x, prefix + ".norm2"), prefix + ".fc1")), prefix + ".fc2");
        return g.Add(x, mlp);
    }

    /// <summary>MultiHeadAttention.forward(query B×Lq×d, keyValue B×Lk×d) → B×Lq×d.</summary>
    public static string Attention(OnnxGraph g, string prefix, int heads, string query, string keyValue, float? scale)
    {
        var q = SplitHeads(g, g.Linear(query, prefix + ".query"), heads);                       // B×h×Lq×d_h
        var kv = g.Chunk(g.Linear(keyValue, prefix + ".keyValue"), 2, -1);                      // 2 × B×Lk×d
        var k = SplitHeads(g, kv[0], heads);
        var v = SplitHeads(g, kv[1], heads);
        var headWidth = Width(g, prefix + ".query") / heads;
        return g.Linear(MergeHeads(g, Attend(g, q, k, v, scale ?? AttentionKernel.DefaultScale(headWidth))), prefix + ".output");
    }

    /// <summary>NormedCrossAttention.forward: MHA(LN_q(query), LN_k(keyValue)), B×Lq×c and B×Lk×c_kv → B×Lq×c.</summary>
    public static string NormedCrossAttention(OnnxGraph g, string prefix, int heads, string query, string keyValue) =>
        Attention(g, prefix + ".attention", heads, g.LayerNorm(query, prefix + ".queryNorm"), g.LayerNorm(keyValue, prefix + ".keyNorm"), scale: null);

    /// <summary>TokenGrid.ToTokens: map B×C×r×c → tokens B×(r·c)×C, row-major.</summary>
    public static string ToTokens(OnnxGraph g, string map) => g.Transpose(g.Reshape(map, 0, 0, -1), 0, 2, 1);

    /// <summary>TokenGrid.ToMap: tokens B×(r·c)×C → map B×C×r×c.</summary>
    public static string ToMap(OnnxGraph g, string tokens, long rows, long cols) => g.Reshape(g.Transpose(tokens, 0, 2, 1), 0, 0, rows, cols);

    /// <summary>Output width of the nn.Linear at <paramref name="prefix"/>.</summary>
    public static int Width(OnnxGraph g, string prefix) => (int)g.Shape(prefix + ".weight")[0];

    /// <summary>AttentionKernel.SplitHeads: B×L×d → B×h×L×d_h.</summary>
    public static string SplitHeads(OnnxGraph g, string x, int heads) => g.Transpose(g.Reshape(x, 0, 0, heads, -1), 0, 2, 1, 3);

    /// <summary>AttentionKernel.MergeHeads: B×h×L×d_h → B×L×d.</summary>
    public static string MergeHeads(OnnxGraph g, string x) => g.Reshape(g.Transpose(x, 0, 2, 1, 3), 0, 0, -1);

    /// <summary>AttentionKernel.Scores: q kᵀ·scale.</summary>
    public static string Scores(OnnxGraph g, string q, string k, float scale) => g.Mul(g.MatMul(q, g.Transpose(k, 0, 1, 3, 2)), scale);

    /// <summary>AttentionKernel.Attend: softmax(q kᵀ·scale) v over the key axis.</summary>
    public static string Attend(OnnxGraph g, string q, string k, string v, float scale) =>
        g.MatMul(g.Op("Softmax", new[] { Scores(g, q, k, scale) }, OnnxGraph.Attr("axis", -1L)), v);

    /// <summary>DenseHead.forward: tokens B×n×d → B×C_t×H×W.</summary>
    public static string DenseHead(OnnxGraph g, string prefix, TaskSpec task, MultiTaskNetworkOptions o, string tokens)
    {
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;
        var map = ToMap(g, tokens, rows, cols);                                                  // B×d×(H/s)×(W/s)
        string y;
        if (task.Kind == TaskKind.Depth)
        {
            y = g.Conv(map, prefix + ".beforeUpsample");
            y = g.ResizeBilinear(y, 2L * rows, 2L * cols, alignCorners: true);
            y = g.Relu(g.Conv(g.Relu(g.Conv(y, prefix + ".afterUpsample.conv2")), prefix + ".afterUpsample.conv3"));
        }
        else
        {
            y = g.Relu(g.BatchNorm(g.Conv(map, prefix + ".beforeUpsample.conv1"), prefix + ".beforeUpsample.bn"));
            y = g.Conv(y, prefix + ".beforeUpsample.conv2");
            y = g.ResizeBilinear(y, 2L * rows, 2L * cols, alignCorners: true);
        }
        return g.ResizeBilinear(y, o.ImageHeight, o.ImageWidth, alignCorners: false);
    }

    /// <summary>TaskOutputs.Postprocess: logits and metres unchanged, sigmoid probabilities, unit normals (eps 1e-6).</summary>
    public static string Score(OnnxGraph g, TaskSpec task, string raw) => task.Kind switch
    {
        TaskKind.SemanticSegmentation or TaskKind.Parts or TaskKind.Depth => raw,
        TaskKind.Saliency or TaskKind.Boundaries => g.Sigmoid(raw),
        TaskKind.Normals => g.L2Normalize(raw, 1, (float)TaskOutputs.NormalsEps),
        _ => throw new NotSupportedException($"Task '{task.Name}': the ONNX exporter does not know task kind {task.Kind}."),
    };

    /// <summary>TaskOutputs.PredictedLabel: argmax over the channels (first maximum), as int32 B×H×W.</summary>
    public static string PredictedLabel(OnnxGraph g, string raw) => g.Op("Cast",
        new[] { g.Op("ArgMax", new[] { raw }, OnnxGraph.Attr("axis", 1L), OnnxGraph.Attr("keepdims", 0L)) },
        OnnxGraph.Attr("to", (long)TensorProto.Types.DataType.Int32));
}
