using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx.Proto;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// The ONNX twin of stage (c): <see cref="NoInteraction"/>, <see cref="CrossTaskAttention"/> and
/// <see cref="KnowledgeExtraction"/> (KEM, sKEM TaskVertices / SlotVertices / Span, every memory update, both top-k
/// axes) with <see cref="TopKSoftmax"/>, and <see cref="KemRounds"/> for KemBlocks &gt; 1.
/// X B×T×n×d → X' B×T×n×d, reading the same state_dict keys as the modules.
/// </summary>
internal static class InteractionGraph
{
    /// <summary>InteractionFactory.Create's module, applied to <paramref name="x"/>.</summary>
    public static string Interaction(OnnxGraph g, string prefix, MultiTaskNetworkOptions o, string x) => o.Interaction.Kind switch
    {
        InteractionKind.None => x,
        InteractionKind.CrossAttention when o.Interaction.CrossAttentionForm == CrossAttentionForm.MtformerWindow => MtformerWindow(g, prefix, o, x),
        InteractionKind.CrossAttention => CrossAttention(g, prefix, o, x),
        InteractionKind.Kem or InteractionKind.StableKem => KnowledgeExtraction(g, prefix, o, x),
        _ => throw new NotSupportedException($"The ONNX exporter does not know interaction {o.Interaction.Kind}."),
    };

    /// <summary>TaskEmbedding.forward: X + e_t (T×d → T×1×d, broadcast), or X itself when the option is off.</summary>
    private static string Embed(OnnxGraph g, string prefix, InteractionOptions options, string x) =>
        options.TaskEmbedding ? g.Add(x, g.Unsqueeze(g.Weight(prefix + ".taskEmbedding.vectors"), 1)) : x;

    /// <summary>CrossTaskAttention.forward (MODEL-SPEC §4): X'_t = X_t + λ·MHA_t(LN_t(X_t), LN_t(X_{≠t})).</summary>
    private static string CrossAttention(OnnxGraph g, string prefix, MultiTaskNetworkOptions o, string x)
    {
        int tasks = o.Tasks.Count;
        float? scale = o.Interaction.ScoreScale == ScoreScale.None ? 1f : null;
        var embedded = Embed(g, prefix, o.Interaction, x);
        var updates = new string[tasks];
        for (int t = 0; t < tasks; t++)
        {
            string target = $"{prefix}.targets.{t}";
            var normed = g.LayerNorm(embedded, target + ".norm");                                   // B×T×n×d
            var query = g.Select(normed, 1, t);                                                      // LN(X_t): B×n×d
            var others = Enumerable.Range(0, tasks).Where(u => u != t).Select(u => (long)u).ToArray();
            var keyValue = g.Reshape(g.Take(normed, 1, others), 0, -1, o.Width);                    // B×(T−1)n×d
            updates[t] = g.Unsqueeze(NetworkGraph.Attention(g, target + ".attention", o.Heads, query, keyValue, scale), 1);
        }
        return g.Add(x, g.Mul(g.Concat(1, updates), o.Interaction.Lambda));
    }

    /// <summary>MtformerWindowAttention.forward (MODEL-SPEC §4, MtformerWindow): per target task two window blocks and a LayerNorm.</summary>
    private static string MtformerWindow(OnnxGraph g, string prefix, MultiTaskNetworkOptions o, string x)
    {
        int tasks = o.Tasks.Count, rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride, window = o.Interaction.CrossAttentionWindow;
        var embedded = Embed(g, prefix, o.Interaction, x);
        var outputs = new string[tasks];
        for (int t = 0; t < tasks; t++)
        {
            var own = g.Select(embedded, 1, t);                                                      // X_t: B×n×d
            for (int b = 0; b < 2; b++)
            {
                var layout = new WindowLayout(rows, cols, window, SwinBlock.EffectiveShift(rows, cols, window, b % 2 == 1 ? window / 2 : 0));
                own = MtformerBlock(g, $"{prefix}.targets.{t}.blocks.{b}", o, layout, embedded, own, t);
            }
            outputs[t] = g.Unsqueeze(g.LayerNorm(own, $"{prefix}.targets.{t}.norm"), 1);
        }
        return g.Concat(1, outputs);
    }

    /// <summary>One MtformerWindowAttention block: every task's tokens (B×T×n×d) and the target's current X_t (B×n×d) → the new X_t.</summary>
    private static string MtformerBlock(OnnxGraph g, string p, MultiTaskNetworkOptions o, WindowLayout layout, string all, string own, int target)
    {
        int tasks = o.Tasks.Count, heads = o.Heads;
        long width = o.Width, count = (long)layout.Rows * layout.Cols;
        var others = Enumerable.Range(0, tasks).Where(u => u != target).Select(u => g.Take(all, 1, u));
        var tokens = g.Concat(1, [g.Unsqueeze(own, 1), .. others]);                                 // B×T×n×d, target first
        var windows = SwinGraph.Partition(g, layout, g.Reshape(g.LayerNorm(tokens, p + ".norm1"), -1, count, width), width);   // (B·T·nW)×w²×d
        var qk = g.Chunk(g.Linear(windows, p + ".queryKey"), 2, -1);
        var targetWindows = g.Select(g.Reshape(windows, -1, tasks, layout.WindowsPerImage, layout.Length, width), 1, 0);       // B×nW×w²×d
        var value = g.Unsqueeze(g.Linear(targetWindows, p + ".value"), 1);
        var v = g.Reshape(g.Concat(1, Enumerable.Repeat(value, tasks).ToArray()), -1, layout.Length, width);                  // V_t for every u
        float scale = o.Interaction.ScoreScale == ScoreScale.None ? 1f : AttentionKernel.DefaultScale(width / heads);
        var scores = SwinGraph.AddBias(g, p, layout, heads,
            NetworkGraph.Scores(g, NetworkGraph.SplitHeads(g, qk[0], heads), NetworkGraph.SplitHeads(g, qk[1], heads), scale));
        var weights = g.Op("Softmax", [scores], OnnxGraph.Attr("axis", -1L));
        var attended = g.Linear(NetworkGraph.MergeHeads(g, g.MatMul(weights, NetworkGraph.SplitHeads(g, v, heads))), p + ".output");
        var perTask = g.Reshape(SwinGraph.Reverse(g, layout, attended, width), -1, tasks, count, width);                       // A_tu, target first

        string Mlp(string input, string name) => g.Linear(g.Gelu(g.Linear(input, name + ".fc1")), name + ".fc2");
        var self = g.Select(perTask, 1, 0);
        var parts = new[] { Mlp(self, p + ".self_mlp") }
            .Concat(Enumerable.Range(1, tasks - 1).Select(j => Mlp(g.Select(perTask, 1, j), $"{p}.cross_mlps.{j - 1}"))).ToArray();
        var updated = g.Add(g.Add(own, Mlp(g.Concat(-1, parts), p + ".fuse")), self);
        return g.Add(updated, Mlp(g.LayerNorm(updated, p + ".norm2"), p + ".mlp"));
    }

    /// <summary>KemRounds.forward: KemBlocks rounds at prefix.rounds.r, or KnowledgeExtraction.forward at prefix for one.</summary>
    private static string KnowledgeExtraction(OnnxGraph g, string prefix, MultiTaskNetworkOptions o, string x)
    {
        if (o.Interaction.KemBlocks == 1) return KemRound(g, prefix, o, x);
        for (int r = 0; r < o.Interaction.KemBlocks; r++) x = KemRound(g, $"{prefix}.rounds.{r}", o, x);
        return x;
    }

    /// <summary>KnowledgeExtraction.forward (MODEL-SPEC §2–§3): Retrieve, Write, Broadcast.</summary>
    private static string KemRound(OnnxGraph g, string prefix, MultiTaskNetworkOptions o, string x)
    {
        var options = o.Interaction;
        var kem = new Kem(g, prefix, o);
        var embedded = Embed(g, prefix, options, x);
        var tokens = g.LayerNorm(g.Reshape(embedded, 0, -1, o.Width), prefix + ".normTokens");   // F: B×N×d
        var projected = kem.TokenProjections(tokens);                                               // [K_r | V_r | Q_w]
        var memory = kem.Retrieve(projected[0], projected[1], tokens);                               // R_new: B×m×d
        var written = kem.Write(projected[2], memory);                                               // O: B×N×d
        var perTask = g.Reshape(written, 0, o.Tasks.Count, -1, o.Width);                             // B×T×n×d
        return g.Add(x, g.Mul(perTask, options.Lambda));                                             // X' = X + λ·O
    }

    /// <summary>The retrieve and write steps, with the choices KnowledgeExtraction's constructor makes.</summary>
    private sealed class Kem
    {
        private readonly OnnxGraph g;
        private readonly string p;
        private readonly InteractionOptions options;
        private readonly int heads, tasks, width, headWidth, tokensPerTask;
        private readonly EtfMode etfMode;
        private readonly float? scoreScale;

        public Kem(OnnxGraph g, string prefix, MultiTaskNetworkOptions o)
        {
            (this.g, p, options, heads, tasks) = (g, prefix, o.Interaction, o.Heads, o.Tasks.Count);
            (width, headWidth) = (o.Width, o.Width / o.Heads);
            tokensPerTask = o.TokensPerTask;
            etfMode = options.Kind == InteractionKind.StableKem ? options.EtfMode : EtfMode.Off;
            scoreScale = options.ScoreScale == ScoreScale.None ? 1f : null;
        }

        private bool ProjectsEtfInput => (etfMode is EtfMode.TaskVertices or EtfMode.SlotVertices) && options.EtfInputProjection;

        // [K_r | V_r | Q_w] of LN(F); Span: K_r from F̃ = LN(F) W Wᵀ, the fused weight sliced as the module does;
        // PerTaskWriteQuery: the fused weight is [Wk_r | Wv_r] and Q_w = LN(X_t) Wq_w,t (B×T×n×d @ T×d×d)
        public string[] TokenProjections(string tokens)
        {
            int fused = options.PerTaskWriteQuery ? 2 : 3;
            var parts = etfMode == EtfMode.Span ? SpanProjections(tokens, fused) : g.Chunk(g.Linear(tokens, p + ".tokenProjection"), fused, -1);
            if (!options.PerTaskWriteQuery) return parts;
            var queries = Headwise(p + ".writeQuery", g.Reshape(tokens, 0, tasks, -1, width));           // B×T×n×d
            return [parts[0], parts[1], g.Reshape(queries, 0, -1, width)];
        }

        private string[] SpanProjections(string tokens, int fused)
        {
            var frame = g.Weight(p + ".etfVertices");                                                // W: d×T
            var spanTokens = g.MatMul(g.MatMul(tokens, frame), g.Transpose(frame, 1, 0));            // B×N×d
            var weight = g.Chunk(g.Transpose(g.Weight(p + ".tokenProjection.weight"), 1, 0), fused, -1); // d×d each
            var bias = g.Chunk(g.Weight(p + ".tokenProjection.bias"), fused, -1);
            return [g.Add(g.MatMul(spanTokens, weight[0]), bias[0]), .. Enumerable.Range(1, fused - 1).Select(i => g.Add(g.MatMul(tokens, weight[i]), bias[i]))];
        }

        // MODEL-SPEC §2, Retrieve: R_new = R_0 + TopKSoftmax_k(S) V Wo_r (or the Replace / Gated update, + MemoryMlp)
        public string Retrieve(string projectedKeys, string projectedValues, string tokens)
        {
            var keys = NetworkGraph.SplitHeads(g, projectedKeys, heads);                            // K: B×h×N×d_h
            var values = NetworkGraph.SplitHeads(g, projectedValues, heads);                        // V: B×h×N×d_h
            var weights = TopK(RetrieveScores(keys));                                               // A: B×h×m×N
            var retrieved = g.Linear(NetworkGraph.MergeHeads(g, g.MatMul(weights, values)), p + ".retrieveOutput"); // B×m×d
            var memory = options.MemoryUpdate switch
            {
                MemoryUpdate.Residual => g.Add(g.Weight(p + ".memorySlots"), retrieved),
                MemoryUpdate.Replace => retrieved,
                MemoryUpdate.Gated => Gated(retrieved, tokens),
                _ => throw new NotSupportedException($"The ONNX exporter does not know MemoryUpdate {options.MemoryUpdate}."),
            };
            return options.MemoryMlp ? MemoryMlp(memory) : memory;
        }

        // GatedMemoryUpdate.forward: R ← LN(R_0 + R); R ← LN(R + MLP(R)); σ(i)·tanh(R) + σ(f)·R_0, [i | f] = Lin(x̄) + Lin(tanh R_0)
        private string Gated(string retrieved, string tokens)
        {
            var q = p + ".gatedUpdate";
            var slots = g.Weight(p + ".memorySlots");                                               // R_0: m×d
            var attended = g.LayerNorm(g.Add(slots, retrieved), q + ".normAttended");
            var mlp = g.Relu(g.Linear(g.Relu(g.Linear(attended, q + ".mlp.fc1")), q + ".mlp.fc2"));
            var refined = g.LayerNorm(g.Add(attended, mlp), q + ".normRefined");
            var pooled = g.ReduceMean(tokens, 1);                                                   // x̄: B×1×d
            var gates = g.Chunk(g.Add(g.Linear(pooled, q + ".inputGate"), g.Linear(g.Tanh(slots), q + ".memoryGate")), 2, -1);
            return g.Add(g.Mul(g.Sigmoid(gates[0]), g.Tanh(refined)), g.Mul(g.Sigmoid(gates[1]), slots));
        }

        // ResidualMemoryMlp.forward: R_new + Lin(GELU(Lin(LN(R_new))))
        private string MemoryMlp(string memory)
        {
            var q = p + ".memoryMlp";
            return g.Add(memory, g.Linear(g.Gelu(g.Linear(g.LayerNorm(memory, q + ".norm"), q + ".fc1")), q + ".fc2"));
        }

        // S (B×h×m×N): MODEL-SPEC §2 for plain KEM, §3 for the two sKEM modes
        private string RetrieveScores(string keys)
        {
            switch (etfMode)
            {
                case EtfMode.Off:
                case EtfMode.Span:
                    return NetworkGraph.Scores(g, SlotQueries(), keys, scoreScale ?? AttentionKernel.DefaultScale(headWidth));
                case EtfMode.TaskVertices:
                {
                    var queries = SlotQueries();
                    var vertices = g.Weight(p + ".etfVertices");                                    // h×d_h×T
                    if (ProjectsEtfInput)
                    {
                        var queryCoordinates = g.MatMul(UnitRows(Headwise(p + ".etfQueryProjection", queries)), vertices);
                        var keyCoordinates = g.MatMul(UnitRows(Headwise(p + ".etfKeyProjection", keys)), vertices);
                        return g.Mul(NetworkGraph.Scores(g, queryCoordinates, keyCoordinates, 1f), g.Exp(g.Weight(p + ".logTemperature")));
                    }
                    var etfScale = options.ScoreScale == ScoreScale.None ? 1f : AttentionKernel.DefaultScale(tasks);
                    return NetworkGraph.Scores(g, g.MatMul(queries, vertices), g.MatMul(keys, vertices), etfScale);
                }
                case EtfMode.SlotVertices:
                {
                    // S_ij = γ·⟨w_i, k_j/‖k_j‖⟩: h×d_h×m → 1×h×m×d_h
                    var slotVertices = g.Unsqueeze(g.Transpose(g.Weight(p + ".etfVertices"), 0, 2, 1), 0);
                    var unitKeys = UnitRows(ProjectsEtfInput ? Headwise(p + ".etfKeyProjection", keys) : keys);
                    return g.Mul(NetworkGraph.Scores(g, slotVertices, unitKeys, 1f), g.Exp(g.Weight(p + ".logTemperature")));
                }
                default:
                    throw new NotSupportedException($"The ONNX exporter does not know EtfMode {etfMode}.");
            }
        }

        // Q = split(LN_r(R_0) Wq_r): 1×h×m×d_h
        private string SlotQueries() => NetworkGraph.SplitHeads(g,
            g.Unsqueeze(g.Linear(g.LayerNorm(g.Weight(p + ".memorySlots"), p + ".normMemory"), p + ".retrieveQuery"), 0), heads);

        // MODEL-SPEC §2, Write: O = softmax_m((F Wq_w)(LN_r(R_new) Wk_w)ᵀ/√d_h)(LN_r(R_new) Wv_w) Wo_w
        public string Write(string projectedQueries, string memory)
        {
            var queries = NetworkGraph.SplitHeads(g, projectedQueries, heads);                      // B×h×N×d_h
            var keyValue = g.Chunk(g.Linear(g.LayerNorm(memory, p + ".normMemory"), p + ".writeKeyValue"), 2, -1);
            var keys = NetworkGraph.SplitHeads(g, keyValue[0], heads);                               // B×h×m×d_h
            var values = NetworkGraph.SplitHeads(g, keyValue[1], heads);
            var read = NetworkGraph.Attend(g, queries, keys, values, scoreScale ?? AttentionKernel.DefaultScale(headWidth));
            return g.Linear(NetworkGraph.MergeHeads(g, read), p + ".writeOutput");                  // B×N×d
        }

        // TopKSoftmax.Apply with the options' k, mode and scope, or TopKSoftmax.OverSlots for TopKAxis.Slots
        private string TopK(string scores)
        {
            if (options.TopKAxis == TopKAxis.Slots) return OverSlots(scores);
            long n = (long)tasks * tokensPerTask;
            if (options.TopKScope == TopKScope.Joint)
                return options.TopK >= n ? Softmax(scores) : TopKSoftmaxGraph.Apply(g, scores, options.TopK, options.TopKMode);
            return options.TopK >= tokensPerTask ? Softmax(scores) : TopKSoftmaxGraph.ApplyPerTask(g, scores, options.TopK, options.TopKMode, tasks);
        }

        private string Softmax(string x) => g.Op("Softmax", new[] { x }, OnnxGraph.Attr("axis", -1L));

        // TopKSoftmax.OverSlots: k best slots per token (the top-k along the slot axis), then every slot row / max(Σ_tokens, ε)
        private string OverSlots(string scores)
        {
            var perToken = g.Transpose(scores, 0, 1, 3, 2);                                          // B×h×N×m
            var kept = options.TopK >= options.MemorySlots ? Softmax(perToken) : TopKSoftmaxGraph.Apply(g, perToken, options.TopK, options.TopKMode);
            var columns = g.Transpose(kept, 0, 1, 3, 2);                                             // B×h×m×N
            return g.Div(columns, g.Op("Max", new[] { g.ReduceSum(columns, -1), g.Scalar(TopKSoftmax.SlotRowEpsilon) }));
        }

        // HeadwiseLinear.forward: x B×h×L×d_h → x Wᵀ + b, W h×d_h×d_h, b h×1×d_h
        private string Headwise(string prefix, string x) =>
            g.Add(g.MatMul(x, g.Transpose(g.Weight(prefix + ".weight"), 0, 2, 1)), g.Weight(prefix + ".bias"));

        // F.normalize(x, p: 2, dim: -1), torch's default eps 1e-12
        private string UnitRows(string x) => g.L2Normalize(x, -1, 1e-12f);
    }
}

/// <summary>The ONNX twin of <see cref="TopKSoftmax"/> (MODEL-SPEC §2): TopK indices → ScatterElements mask → weights.</summary>
internal static class TopKSoftmaxGraph
{
    /// <summary>Joint scope: the k largest of every row of <paramref name="scores"/> (k &lt; row length).</summary>
    public static string Apply(OnnxGraph g, string scores, int k, TopKMode mode) => Weigh(g, scores, Keep(g, scores, k), mode);

    /// <summary>Per-task scope: the last axis holds T blocks; each keeps its own k (k &lt; block length).</summary>
    public static string ApplyPerTask(OnnxGraph g, string scores, int k, TopKMode mode, int tasks)
    {
        var blocks = g.Reshape(scores, 0, 0, 0, tasks, -1);                                        // B×h×m×T×n
        var keep = g.Reshape(Keep(g, blocks, k), 0, 0, 0, -1);                                     // B×h×m×(T·n)
        return Weigh(g, scores, keep, mode);
    }

    // TopKSoftmax's choice as a float 0/1 mask: ones scattered at the k largest indices of every row
    private static string Keep(OnnxGraph g, string scores, int k)
    {
        var indices = g.Node("TopK", new[] { scores, g.Ints(k) }, null, 2, OnnxGraph.Attr("axis", -1L), OnnxGraph.Attr("largest", 1L))[1];
        var zeros = g.Op("ConstantOfShape", new[] { g.Op("Shape", new[] { scores }) }, OnnxGraph.Attr("value", FloatValue(0f)));
        var ones = g.Op("ConstantOfShape", new[] { g.Op("Shape", new[] { indices }) }, OnnxGraph.Attr("value", FloatValue(1f)));
        return g.Op("ScatterElements", new[] { zeros, indices, ones }, OnnxGraph.Attr("axis", -1L));
    }

    // TopKSoftmax's weights: Masked = softmax over the row, kept entries only; Renormalized = −∞ outside, then softmax
    private static string Weigh(OnnxGraph g, string scores, string keep, TopKMode mode)
    {
        var softmax = (string x) => g.Op("Softmax", new[] { x }, OnnxGraph.Attr("axis", -1L));
        if (mode == TopKMode.Masked) return g.Mul(softmax(scores), keep);
        var kept = g.Op("Cast", new[] { keep }, OnnxGraph.Attr("to", (long)TensorProto.Types.DataType.Bool));
        return softmax(g.Op("Where", new[] { kept, scores, g.Scalar(float.NegativeInfinity) }));
    }

    private static TensorProto FloatValue(float value)
    {
        var t = new TensorProto { Name = "value", DataType = (int)TensorProto.Types.DataType.Float, RawData = Google.Protobuf.ByteString.CopyFrom(BitConverter.GetBytes(value)) };
        t.Dims.Add(1);
        return t;
    }
}
