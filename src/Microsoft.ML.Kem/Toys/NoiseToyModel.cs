using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>Which interaction the noise toy's layers use (MODEL-SPEC §14).</summary>
public enum NoiseToyInteraction
{
    /// <summary>Single-head softmax attention: queries from task t, keys and values from all T·n tokens (paper Fig. 1).</summary>
    CrossAttention,
    /// <summary>KEM (MODEL-SPEC §2) with one head: Retrieve with top-k, Write, Broadcast.</summary>
    Kem,
}

/// <summary>Sizes of <see cref="NoiseToyModel"/>; defaults are MODEL-SPEC §14's.</summary>
public sealed record NoiseToyModelOptions
{
    /// <summary>Interaction in every layer.</summary>
    public NoiseToyInteraction Interaction { get; init; } = NoiseToyInteraction.CrossAttention;
    /// <summary>Task groups in the input: 3 with the noise task (it must be the last group), 2 without.</summary>
    public int Tasks { get; init; } = 3;
    /// <summary>Real tasks (with a target and a head), the first groups of the input. Default 2.</summary>
    public int RealTasks { get; init; } = 2;
    /// <summary>Tokens per task n.</summary>
    public int Tokens { get; init; } = 16;
    /// <summary>Token width d.</summary>
    public int Width { get; init; } = 32;
    /// <summary>Target width per real task.</summary>
    public int TargetWidth { get; init; } = 4;
    /// <summary>Interaction + MLP layers. Default 2.</summary>
    public int Layers { get; init; } = 2;
    /// <summary>MLP width as a multiple of d.</summary>
    public int MlpRatio { get; init; } = 4;
    /// <summary>KEM memory slots m (spec 4).</summary>
    public int MemorySlots { get; init; } = 4;
    /// <summary>KEM top-k k (spec 4).</summary>
    public int TopK { get; init; } = 4;
    /// <summary>
    /// Standard deviation of the learned position embedding's initial values (the spec leaves it open). Default 1, as
    /// <c>nn.Embedding</c>: every token must find the same position in the other task, and positions initialised at ViT's
    /// 0.02 are drowned by the features after the LayerNorm, so the tasks learn to read each other far more slowly.
    /// </summary>
    public float PositionStd { get; init; } = 1f;
    /// <summary>σ of the Gaussian noise added to every hidden state after each layer, in training and evaluation (option HiddenNoise).</summary>
    public float HiddenNoise { get; init; }

    /// <summary>Checks the sizes; messages say what to change.</summary>
    public void Validate()
    {
        if (RealTasks < 1 || Tasks < RealTasks) throw new ArgumentException($"Need 1 ≤ RealTasks ({RealTasks}) ≤ Tasks ({Tasks}).");
        if (Tokens < 1 || Width < 1 || TargetWidth < 1 || Layers < 1 || MlpRatio < 1)
            throw new ArgumentException("Tokens, Width, TargetWidth, Layers and MlpRatio must all be ≥ 1.");
        if (!(PositionStd >= 0) || float.IsInfinity(PositionStd)) throw new ArgumentOutOfRangeException(nameof(PositionStd), PositionStd, "PositionStd must be finite and ≥ 0.");
        if (!(HiddenNoise >= 0) || float.IsInfinity(HiddenNoise)) throw new ArgumentOutOfRangeException(nameof(HiddenNoise), HiddenNoise, "HiddenNoise must be finite and ≥ 0.");
        if (Interaction == NoiseToyInteraction.Kem) KemOptions.Validate(Width, 1, Tasks);
    }

    /// <summary>The KEM options the layers use: plain KEM, h = 1, m, k, otherwise the §2 defaults (Masked, Residual, joint top-k).</summary>
    public InteractionOptions KemOptions => new() { Kind = InteractionKind.Kem, MemorySlots = MemorySlots, TopK = TopK };
}

/// <summary>What one layer's interaction computed: CA weights B×1×N×N, or KEM's trace (retrieve B×1×m×N, write B×1×N×m).</summary>
public sealed record NoiseToyLayerTrace(Tensor? AttentionWeights, KemTrace? Kem);

/// <summary>Predictions (B×RealTasks×n×targetWidth) and one trace per layer.</summary>
public sealed record NoiseToyTrace(Tensor Predictions, IReadOnlyList<NoiseToyLayerTrace> Layers);

/// <summary>
/// The noise toy's model (MODEL-SPEC §14, paper Fig. 1). Input X: B×T×n×d (tasks 1, 2 and optionally the noise task).
/// <code>
/// X_t ← Lin_t(X_t) + P                                 per-task input projection, learned positions P (n×d) shared by tasks
/// for each layer:  X ← Interaction(X)                  CA: X_t ← X_t + Attn(LN(X_t), LN([X_1;…;X_T])), one head
///                                                      KEM: X ← X + Write(Retrieve(X)), h = 1, m slots, top-k
///                  X_t ← X_t + MLP_t(LN_t(X_t))         then + σ·N(0, I) when HiddenNoise σ &gt; 0
/// Ŷ_t = Lin(d→targetWidth)(X_t) for the real tasks
/// </code>
/// The noise task's tokens are updated like the others but have no head and no loss.
/// </summary>
public sealed class NoiseToyModel : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> inputs;
    private readonly Parameter positions;
    private readonly ModuleList<NoiseToyLayer> layers;
    private readonly ModuleList<Linear> heads;

    /// <summary>Builds the model; validates <paramref name="options"/> first.</summary>
    public NoiseToyModel(NoiseToyModelOptions options, string name = "noise_toy") : base(name)
    {
        options.Validate();
        Options = options;
        var o = options;
        inputs = nn.ModuleList(Enumerable.Range(0, o.Tasks).Select(_ => nn.Linear(o.Width, o.Width)).ToArray());
        positions = new Parameter(TruncatedNormal.Fill(empty(o.Tokens, o.Width), std: o.PositionStd, a: -2 * o.PositionStd, b: 2 * o.PositionStd));
        layers = nn.ModuleList(Enumerable.Range(0, o.Layers).Select(i => new NoiseToyLayer($"layer{i}", o)).ToArray());
        heads = nn.ModuleList(Enumerable.Range(0, o.RealTasks).Select(_ => nn.Linear(o.Width, o.TargetWidth)).ToArray());
        RegisterComponents();
    }

    /// <summary>The options this model was built from.</summary>
    public NoiseToyModelOptions Options { get; }

    /// <summary>X: B×T×n×d → Ŷ: B×RealTasks×n×targetWidth.</summary>
    public override Tensor forward(Tensor x) => Run(x, trace: false).Predictions;

    /// <summary>Runs forward and keeps every layer's attention weights (see <see cref="NoiseToyTrace"/>).</summary>
    public NoiseToyTrace Trace(Tensor x) => Run(x, trace: true);

    private NoiseToyTrace Run(Tensor x, bool trace)
    {
        var o = Options;
        if (x.dim() != 4 || x.shape[1] != o.Tasks || x.shape[2] != o.Tokens || x.shape[3] != o.Width)
            throw new ArgumentException($"The noise toy expects B×{o.Tasks}×{o.Tokens}×{o.Width} features, got [{string.Join("×", x.shape)}].", nameof(x));
        var hidden = stack(inputs.Select((input, t) => input.call(x.select(1, t))), 1) + positions;   // B×T×n×d
        var traces = new List<NoiseToyLayerTrace>();
        foreach (var layer in layers)
        {
            var (next, layerTrace) = layer.Run(hidden, trace);
            hidden = next;
            if (layerTrace is not null) traces.Add(layerTrace);
        }
        var predictions = stack(heads.Select((head, t) => head.call(hidden.select(1, t))), 1);         // B×RealTasks×n×c
        return new NoiseToyTrace(predictions, traces);
    }

    /// <summary>One layer: the interaction over all tasks, then a per-task MLP, then optional hidden-state noise.</summary>
    private sealed class NoiseToyLayer : nn.Module<Tensor, Tensor>
    {
        private readonly AllTokenAttention? attention;
        private readonly KnowledgeExtraction? kem;
        private readonly ModuleList<LayerNorm> mlpNorms;
        private readonly ModuleList<Sequential> mlps;
        private readonly float hiddenNoise;

        public NoiseToyLayer(string name, NoiseToyModelOptions o) : base(name)
        {
            if (o.Interaction == NoiseToyInteraction.CrossAttention) attention = new AllTokenAttention("attention", o.Width);
            else kem = new KnowledgeExtraction("kem", o.Width, heads: 1, tasks: o.Tasks, o.KemOptions);
            mlpNorms = nn.ModuleList(Enumerable.Range(0, o.Tasks).Select(_ => nn.LayerNorm(o.Width)).ToArray());
            mlps = nn.ModuleList(Enumerable.Range(0, o.Tasks).Select(_ => nn.Sequential(
                ("fc1", nn.Linear(o.Width, o.Width * o.MlpRatio)), ("act", nn.GELU()), ("fc2", nn.Linear(o.Width * o.MlpRatio, o.Width)))).ToArray());
            hiddenNoise = o.HiddenNoise;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => Run(x, trace: false).Output;

        public (Tensor Output, NoiseToyLayerTrace? Trace) Run(Tensor x, bool trace)
        {
            NoiseToyLayerTrace? layerTrace = null;
            if (attention is not null)
            {
                var (mixed, weights) = attention.Run(x);
                x = mixed;
                if (trace) layerTrace = new NoiseToyLayerTrace(weights, null);
            }
            else if (trace)
            {
                var kemTrace = kem!.Trace(x);
                x = kemTrace.Output;
                layerTrace = new NoiseToyLayerTrace(null, kemTrace);
            }
            else x = kem!.call(x);

            x = stack(mlps.Select((mlp, t) => x.select(1, t) + mlp.call(mlpNorms[t].call(x.select(1, t)))), 1);   // B×T×n×d
            if (hiddenNoise > 0) x = x + randn_like(x) * hiddenNoise;
            return (x, layerTrace);
        }
    }

    /// <summary>
    /// X_t ← X_t + Attn(LN(X_t), LN([X_1;…;X_T])) for every t at once, one head, one set of projections: queries come
    /// from each task's tokens, keys and values from all T·n tokens (the toy's "cross-attention", MODEL-SPEC §14).
    /// The weights are formed explicitly (N×N is tiny here) so that they can be measured.
    /// </summary>
    private sealed class AllTokenAttention : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm norm;
        private readonly Linear query;
        private readonly Linear keyValue;
        private readonly Linear output;

        public AllTokenAttention(string name, int width) : base(name)
        {
            norm = nn.LayerNorm(width);
            query = nn.Linear(width, width);
            keyValue = nn.Linear(width, 2 * width);
            output = nn.Linear(width, width);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => Run(x).Output;

        /// <summary>x: B×T×n×d → (x', weights B×1×N×N with N = T·n, rows = queries, columns = keys, task-major).</summary>
        public (Tensor Output, Tensor Weights) Run(Tensor x)
        {
            var (batch, tasks, perTask, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
            var tokens = norm.call(x.reshape(batch, tasks * perTask, width));               // LN([X_1;…;X_T]): B×N×d
            var q = AttentionKernel.SplitHeads(query.Apply(tokens), 1);                       // B×1×N×d
            var kv = keyValue.Apply(tokens).chunk(2, -1);
            var k = AttentionKernel.SplitHeads(kv[0], 1);
            var v = AttentionKernel.SplitHeads(kv[1], 1);
            var weights = AttentionKernel.Weights(q, k);                                     // B×1×N×N, softmax over all keys
            var attended = output.Apply(AttentionKernel.MergeHeads(weights.matmul(v)));       // B×N×d
            return (x + attended.reshape(batch, tasks, perTask, width), weights);
        }
    }
}
