using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// What one KEM pass computed, for inspection (slot visualisation, noise toy, tests). The tensors belong to
/// the caller's dispose scope.
/// </summary>
/// <param name="Output">X' = X + λ·O, B×T×n×d.</param>
/// <param name="Memory">R_new after Retrieve, B×m×d.</param>
/// <param name="RetrieveWeights">A = TopKSoftmax_k(S), B×h×m×N: which tokens each slot read (column j = task j / n, token j mod n).</param>
/// <param name="WriteWeights">softmax over the slots, B×h×N×m: how much of every slot each token read.</param>
public sealed record KemTrace(Tensor Output, Tensor Memory, Tensor RetrieveWeights, Tensor WriteWeights);

/// <summary>
/// Knowledge Extraction Module, KEM and sKEM (MODEL-SPEC §2–§3). forward(X B×T×n×d) → X' B×T×n×d:
/// <code>
/// Retrieve:   R_new = R_0 + TopKSoftmax_k(S) V Wo_r,   S = (LN(R_0) Wq_r)(LN(F) Wk_r)ᵀ/√d_h,  F = [X_1;…;X_T]
/// Write:      O     = softmax_m((LN(F) Wq_w)(LN(R_new) Wk_w)ᵀ/√d_h)(LN(R_new) Wv_w) Wo_w
/// Broadcast:  X'    = X + λ·O
/// </code>
/// sKEM changes only how the Retrieve scores S are formed (<see cref="EtfMode"/>). Naming follows the
/// paper: its Retrieve is SGW's "write", its Write is SGW's "broadcast" (MODEL-SPEC §15.20).
/// Options that change the memory: <see cref="MemoryInit"/> (R_0's initial values), <see cref="MemoryUpdate"/> (Residual, Replace, <see cref="GatedMemoryUpdate"/>),
/// <see cref="InteractionOptions.MemoryMlp"/> (<see cref="ResidualMemoryMlp"/>), <see cref="TopKAxis"/>
/// (<see cref="TopKSoftmax.OverSlots"/>). One module is one round; <see cref="KemRounds"/> stacks
/// <see cref="InteractionOptions.KemBlocks"/> of them.
/// </summary>
public sealed class KnowledgeExtraction : nn.Module<Tensor, Tensor>
{
    // Children in the order they run.
    private readonly TaskEmbedding? taskEmbedding;
    private readonly LayerNorm normTokens;                 // LN_x
    private readonly Parameter? memorySlots;               // R_0: m×d (absent only for SlotVertices + Replace, where nothing reads it)
    private readonly LayerNorm normMemory;                 // LN_r
    private readonly Linear? retrieveQuery;                // Wq_r (absent for SlotVertices: the ETF vertices are the slot queries)
    private readonly Linear tokenProjection;               // [Wk_r | Wv_r | Wq_w]: the three projections of LN(F), one product ([Wk_r | Wv_r] with PerTaskWriteQuery)
    private readonly HeadwiseLinear? writeQuery;           // PerTaskWriteQuery: Wq_w per task, T×d×d, one batched matmul
    private readonly HeadwiseLinear? etfQueryProjection;   // sKEM TaskVertices + EtfInputProjection
    private readonly HeadwiseLinear? etfKeyProjection;     // sKEM + EtfInputProjection
    private readonly Tensor? etfVertices;                  // buffer h×d_h×K, K = T (TaskVertices) or m (SlotVertices); d×T (Span)
    private readonly Parameter? logTemperature;            // log γ, init ln √d_h
    private readonly Linear retrieveOutput;                // Wo_r
    private readonly GatedMemoryUpdate? gatedUpdate;       // MemoryUpdate.Gated
    private readonly ResidualMemoryMlp? memoryMlp;         // MemoryMlp
    private readonly Linear writeKeyValue;                 // [Wk_w | Wv_w]
    private readonly Linear writeOutput;                   // Wo_w (applied to the h·m slot value rows: AttentionKernel.AttendSlots)

    private readonly int heads;
    private readonly int tasks;
    private readonly InteractionOptions options;
    private readonly EtfMode etfMode;
    private readonly float? scoreScale;                    // null: 1/√d_h

    /// <summary>Builds KEM (<see cref="InteractionKind.Kem"/>) or sKEM (<see cref="InteractionKind.StableKem"/>).</summary>
    /// <param name="name">Module name.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h; must divide d.</param>
    /// <param name="tasks">Number of tasks T.</param>
    /// <param name="options">Interaction options; validated here.</param>
    public KnowledgeExtraction(string name, int width, int heads, int tasks, InteractionOptions options) : base(name)
    {
        if (options.Kind is not (InteractionKind.Kem or InteractionKind.StableKem))
            throw new ArgumentException($"KnowledgeExtraction builds Kem or StableKem, not {options.Kind}: use InteractionFactory.Create.", nameof(options));
        if (heads < 1 || width % heads != 0)
            throw new ArgumentException($"Width {width} must be a positive multiple of Heads {heads}.", nameof(heads));
        if (tasks < 1) throw new ArgumentOutOfRangeException(nameof(tasks), tasks, "KEM needs at least one task.");
        options.Validate(width, heads, tasks);
        if (options.KemBlocks != 1)
            throw new ArgumentException($"KnowledgeExtraction is one round; KemBlocks = {options.KemBlocks} rounds are a KemRounds: use InteractionFactory.Create.", nameof(options));

        this.heads = heads;
        this.tasks = tasks;
        this.options = options;
        etfMode = options.Kind == InteractionKind.StableKem ? options.EtfMode : EtfMode.Off;
        scoreScale = options.ScoreScale == ScoreScale.None ? 1f : null;
        var headWidth = width / heads;
        var projectEtfInput = (etfMode is EtfMode.TaskVertices or EtfMode.SlotVertices) && options.EtfInputProjection;

        if (options.TaskEmbedding) taskEmbedding = new TaskEmbedding("task_embedding", tasks, width);
        normTokens = nn.LayerNorm(width);
        if (etfMode != EtfMode.SlotVertices || options.MemoryUpdate != MemoryUpdate.Replace)
            memorySlots = new Parameter(InitialMemory(options.MemoryInit, options.MemorySlots, width));
        normMemory = nn.LayerNorm(width);
        if (etfMode != EtfMode.SlotVertices) retrieveQuery = nn.Linear(width, width);
        tokenProjection = nn.Linear(width, (options.PerTaskWriteQuery ? 2 : 3) * width);
        if (options.PerTaskWriteQuery) writeQuery = new HeadwiseLinear("write_query", tasks, width);
        if (projectEtfInput && etfMode == EtfMode.TaskVertices) etfQueryProjection = new HeadwiseLinear("etf_query_projection", heads, headWidth);
        if (projectEtfInput) etfKeyProjection = new HeadwiseLinear("etf_key_projection", heads, headWidth);
        if (etfMode == EtfMode.Span) etfVertices = EquiangularTightFrame.Build(width, tasks, options.EtfSeed);
        else if (etfMode != EtfMode.Off)
            etfVertices = HeadFrames(heads, headWidth, etfMode == EtfMode.TaskVertices ? tasks : options.MemorySlots, options.EtfSeed);
        if (projectEtfInput || etfMode == EtfMode.SlotVertices)
            logTemperature = new Parameter(tensor(Math.Log(Math.Sqrt(headWidth)), dtype: ScalarType.Float32));
        retrieveOutput = nn.Linear(width, width);
        if (options.MemoryUpdate == MemoryUpdate.Gated) gatedUpdate = new GatedMemoryUpdate("gated_update", width);
        if (options.MemoryMlp) memoryMlp = new ResidualMemoryMlp("memory_mlp", width);
        writeKeyValue = nn.Linear(width, 2 * width);
        writeOutput = nn.Linear(width, width);
        RegisterComponents();
    }

    /// <summary>X (B×T×n×d) → X' = X + λ·O (B×T×n×d).</summary>
    public override Tensor forward(Tensor x) => Run(x, trace: false).Output;

    /// <summary>Runs forward and also returns the retrieve and write weights (see <see cref="KemTrace"/>).</summary>
    public KemTrace Trace(Tensor x)
    {
        var (output, memory, retrieveWeights, writeWeights) = Run(x, trace: true);
        return new KemTrace(output, memory, retrieveWeights!, writeWeights!);
    }

    /// <summary>The fixed ETF of every head, h×d_h×K, or d×T for <see cref="EtfMode.Span"/> (a buffer, never trained); null for plain KEM.</summary>
    public Tensor? EtfVertices => etfVertices;

    private (Tensor Output, Tensor Memory, Tensor? RetrieveWeights, Tensor? WriteWeights) Run(Tensor x, bool trace)
    {
        if (x.dim() != 4 || x.shape[1] != tasks)
            throw new ArgumentException($"KEM expects task tokens B×T×n×d with T = {tasks}, got [{string.Join("×", x.shape)}].", nameof(x));
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var embedded = taskEmbedding?.call(x) ?? x;
        // F = [X_1; …; X_T]: B×T×n×d → B×N×d, N = T·n (a view of the stack)
        var tokens = normTokens.call(embedded.reshape(batch, tasks * perTask, width));

        // K_r, V_r and Q_w all project LN(F): one N×d × d×3d product instead of two
        var projected = TokenProjections(tokens);
        // MODEL-SPEC §2, Retrieve (SGW "write"): every slot reads its k best tokens of all tasks
        var (memory, retrieveWeights) = Retrieve(projected[0], projected[1], tokens, trace);   // R_new B×m×d, A B×h×m×N (trace only)
        // MODEL-SPEC §2, Write (SGW "broadcast"): every token reads the memory, softmax over the m slots
        var (written, writeWeights) = Write(projected[2], memory, trace);               // O B×N×d
        // MODEL-SPEC §2, Broadcast: X' = X + λ·O, O split back per task (B×N×d → B×T×n×d), one fused kernel
        var update = written.reshape(batch, tasks, perTask, width);
        var output = x.PlusScaled(update, options.Lambda);
        return (output, memory, retrieveWeights, writeWeights);
    }

    /// <summary>
    /// [K_r | V_r | Q_w] of LN(F), B×N×d each. <see cref="EtfMode.Span"/> (MODEL-SPEC §3) projects the keys' input onto
    /// the ETF's span first, F̃ = LN(F)·W·Wᵀ, so K_r = F̃ Wk_r while V_r and Q_w still read LN(F): the fused weight is sliced.
    /// With <see cref="InteractionOptions.PerTaskWriteQuery"/> the fused weight is [Wk_r | Wv_r] and Q_w comes from each task's own Wq_w.
    /// </summary>
    private Tensor[] TokenProjections(Tensor tokens)
    {
        int fused = writeQuery is null ? 3 : 2;                                      // [Wk_r | Wv_r | Wq_w], or [Wk_r | Wv_r]
        var parts = etfMode == EtfMode.Span ? SpanProjections(tokens, fused) : tokenProjection.Apply(tokens).chunk(fused, -1);
        return writeQuery is null ? parts : [parts[0], parts[1], PerTaskWriteQueries(tokens)];
    }

    private Tensor[] SpanProjections(Tensor tokens, int fused)
    {
        var width = tokens.shape[^1];
        var spanTokens = tokens.matmul(etfVertices!).matmul(etfVertices!.t());                 // F̃ = LN(F) W Wᵀ: B×N×d
        var keys = FusedLinear.Linear(spanTokens, tokenProjection.weight!.narrow(0, 0, width), tokenProjection.bias!.narrow(0, 0, width));
        var rest = (fused - 1) * width;
        var others = FusedLinear.Linear(tokens, tokenProjection.weight!.narrow(0, width, rest), tokenProjection.bias!.narrow(0, width, rest));
        return [keys, .. others.chunk(fused - 1, -1)];
    }

    /// <summary>Q_w = LN(X_t) Wq_w,t for every task t at once: B×N×d → B×T×n×d → T batched Lin(d→d) → B×N×d.</summary>
    private Tensor PerTaskWriteQueries(Tensor tokens)
    {
        var (batch, width) = (tokens.shape[0], tokens.shape[^1]);
        return writeQuery!.call(tokens.reshape(batch, tasks, -1, width)).reshape(batch, -1, width);
    }

    private (Tensor Memory, Tensor? Weights) Retrieve(Tensor projectedKeys, Tensor projectedValues, Tensor tokens, bool trace)
    {
        // K and V stay B×N×d (views of the fused projection): no head-split copies of the N tokens (AttentionKernel.SlotScores, ReadSlots)
        var retrieveScores = RetrieveScores(projectedKeys);                     // S: B×h×m×N
        var weights = options.TopKAxis == TopKAxis.Slots                        // A: B×h×m×N, dense (k non-zeros per row for top-k)
            ? TopKSoftmax.OverSlots(retrieveScores, options.TopK, options.TopKMode)                // per token over slots: an ablation
            : TopKSoftmax.Apply(retrieveScores, options.TopK, options.TopKMode, options.TopKScope, tasks);
        var read = AttentionKernel.ReadSlots(weights, projectedValues);         // A V, heads merged: B×m×d
        var retrieved = retrieveOutput.Apply(read);                              // R: B×m×d
        var memory = options.MemoryUpdate switch                                // R_new, MODEL-SPEC §2 "Memory update"
        {
            MemoryUpdate.Residual => memorySlots! + retrieved,
            MemoryUpdate.Replace => retrieved,
            MemoryUpdate.Gated => gatedUpdate!.call(memorySlots!, retrieved, tokens.mean([1])),   // gate inputs: LN(F) pooled over N
            _ => throw new InvalidOperationException($"MemoryUpdate {options.MemoryUpdate} is not known."),
        };
        if (memoryMlp is not null) memory = memoryMlp.call(memory);            // R_new + MLP(LN(R_new))
        return (memory, trace ? weights : null);
    }

    /// <summary>S (B×h×m×N) from the keys B×N×d: MODEL-SPEC §2 for plain KEM, §3 for the two sKEM modes.</summary>
    private Tensor RetrieveScores(Tensor projectedKeys)
    {
        if (etfMode is EtfMode.Off or EtfMode.Span)                                 // Span: the span projection acted on the keys' input
            return AttentionKernel.SlotScores(retrieveQuery!.call(normMemory.call(memorySlots!)), projectedKeys, heads, scoreScale);
        var keys = AttentionKernel.SplitHeads(projectedKeys, heads);               // K: B×h×N×d_h
        switch (etfMode)
        {
            case EtfMode.TaskVertices:
            {
                // Q̃ = Q W_h (1×h×m×T), K̃ = K W_h (B×h×N×T); S = Q̃ K̃ᵀ/√K, or γ·Q̃ K̃ᵀ on L2-normalised projections
                var queries = SlotQueries();
                if (etfQueryProjection is not null && etfKeyProjection is not null)
                {
                    var queryCoordinates = UnitRows(etfQueryProjection.call(queries)).matmul(etfVertices!);
                    var keyCoordinates = UnitRows(etfKeyProjection.call(keys)).matmul(etfVertices!);
                    return AttentionKernel.Scores(queryCoordinates, keyCoordinates, 1f).mul(logTemperature!.exp());
                }
                var etfScale = options.ScoreScale == ScoreScale.None ? 1f : AttentionKernel.DefaultScale(tasks);
                return AttentionKernel.Scores(queries.matmul(etfVertices!), keys.matmul(etfVertices!), etfScale);
            }
            case EtfMode.SlotVertices:
            {
                // S_ij = γ·⟨w_i, k_j/‖k_j‖⟩: the fixed vertex w_i is slot i's query (h×d_h×m → 1×h×m×d_h)
                var slotVertices = etfVertices!.transpose(-2, -1).unsqueeze(0);
                var unitKeys = UnitRows(etfKeyProjection?.call(keys) ?? keys);
                return AttentionKernel.Scores(slotVertices, unitKeys, 1f).mul(logTemperature!.exp());
            }
            default:
                throw new InvalidOperationException($"EtfMode {etfMode} is not known.");
        }
    }

    /// <summary>Q = split(LN_r(R_0) Wq_r): the same for every sample, 1×h×m×d_h.</summary>
    private Tensor SlotQueries() =>
        AttentionKernel.SplitHeads(retrieveQuery!.call(normMemory.call(memorySlots!)).unsqueeze(0), heads);

    private (Tensor Written, Tensor? Weights) Write(Tensor projectedQueries, Tensor memory, bool trace)
    {
        // Q: B×N×d, all tasks at once, never split into heads (AttentionKernel.AttendSlots); K_m, V_m: B×m×d
        var keyValue = writeKeyValue.Apply(normMemory.call(memory));                                      // [K_m | V_m]: B×m×2d
        // O = (A V_m) Wo_w with Wo_w applied to the h·m slot rows, not the N tokens (AttentionKernel.AttendSlots)
        var (written, weights) = AttentionKernel.AttendSlots(projectedQueries, keyValue, heads, scoreScale,
            writeOutput.weight, writeOutput.bias);                                                                       // B×N×d, B×N×h×m
        return (written, trace ? weights.permute(0, 2, 1, 3) : null);
    }

    /// <summary>R_0's initial values, m×d (MODEL-SPEC §2): truncated normal std 0.02, or row i = e_i padded with zeros (m ≤ d).</summary>
    private static Tensor InitialMemory(MemoryInit init, int slots, int width) => init switch
    {
        MemoryInit.TruncatedNormal => TruncatedNormal.Fill(empty(slots, width), std: 0.02),
        MemoryInit.Identity => eye(slots, width),
        _ => throw new InvalidOperationException($"MemoryInit {init} is not known."),
    };

    /// <summary>One independent ETF per head (seed + h), stacked to h×d_h×K.</summary>
    private static Tensor HeadFrames(int heads, int headWidth, int vertices, long seed)
    {
        using var scope = NewDisposeScope();
        var frames = Enumerable.Range(0, heads).Select(h => EquiangularTightFrame.Build(headWidth, vertices, seed + h)).ToArray();
        return stack(frames).MoveToOuterDisposeScope();
    }

    private static Tensor UnitRows(Tensor x) => nn.functional.normalize(x, p: 2, dim: -1);
}
