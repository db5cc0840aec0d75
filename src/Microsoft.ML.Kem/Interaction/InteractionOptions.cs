namespace Microsoft.ML.Kem.Interaction;

/// <summary>Which module lets the task features interact at stage (c) (MODEL-SPEC §1, §2–§4, §7).</summary>
public enum InteractionKind
{
    /// <summary>No interaction: tasks share only the backbone (hard parameter sharing when encoder/decoder depth is 0).</summary>
    None,
    /// <summary>All-pairs cross-task attention (MODEL-SPEC §4).</summary>
    CrossAttention,
    /// <summary>Knowledge Extraction Module (MODEL-SPEC §2).</summary>
    Kem,
    /// <summary>Stable KEM: ETF projection before the top-k choice (MODEL-SPEC §3).</summary>
    StableKem,
}

/// <summary>How the top-k softmax treats the kept weights (MODEL-SPEC §2).</summary>
public enum TopKMode
{
    /// <summary>Softmax over all tokens, then zero all but the k largest (rows sum to ≤ 1). SGW default.</summary>
    Masked,
    /// <summary>Scores outside the top-k set to −∞, then softmax (rows sum to 1).</summary>
    Renormalized,
}

/// <summary>How Retrieve updates the memory (MODEL-SPEC §2).</summary>
public enum MemoryUpdate
{
    /// <summary>R_new = R_0 + retrieved (default).</summary>
    Residual,
    /// <summary>R_new = retrieved.</summary>
    Replace,
    /// <summary>
    /// Full SGW update (<see cref="GatedMemoryUpdate"/>): R ← LN(R_0 + R); R ← LN(R + MLP(R)); then
    /// R_new = σ(i)·tanh(R) + σ(f)·R_0 with i, f = Lin(mean of the tokens) + Lin(tanh R_0).
    /// </summary>
    Gated,
}

/// <summary>How the memory slots R_0 are initialised (MODEL-SPEC §2); only the initial values differ, not the parameter.</summary>
public enum MemoryInit
{
    /// <summary>Truncated normal, std 0.02, cut at ±2 (default).</summary>
    TruncatedNormal,
    /// <summary>SGW's identity-like init: row i = e_i padded with zeros, so the slots start distinct. Needs m ≤ d.</summary>
    Identity,
}

/// <summary>Where sKEM's Equiangular Tight Frame enters (MODEL-SPEC §3).</summary>
public enum EtfMode
{
    /// <summary>Plain KEM.</summary>
    Off,
    /// <summary>K = T vertices per head; queries and keys in ETF coordinates (paper-literal default).</summary>
    TaskVertices,
    /// <summary>K = m: one fixed vertex per slot replaces the learned slot query; keys L2-normalised. Needs d_h ≥ m.</summary>
    SlotVertices,
    /// <summary>
    /// K = T vertices in D = d: the normalised tokens are projected onto the ETF's span before the key projection,
    /// F̃ = LN(F)·W·Wᵀ (rank T−1), then ordinary KEM scores. Listed for completeness, not recommended (MODEL-SPEC §3).
    /// </summary>
    Span,
}

/// <summary>Scale of the attention scores (MODEL-SPEC §2).</summary>
public enum ScoreScale
{
    /// <summary>1/√d_h (default).</summary>
    InvSqrtHeadDim,
    /// <summary>No scale (mimics the SGW code).</summary>
    None,
}

/// <summary>Top-k competition scope (MODEL-SPEC §2).</summary>
public enum TopKScope
{
    /// <summary>One top-k over the T·n tokens of all tasks (default).</summary>
    Joint,
    /// <summary>k winners from every task separately (ablation).</summary>
    PerTask,
}

/// <summary>Along which axis of the retrieve scores (slots × tokens) the top-k competes (MODEL-SPEC §2, §15.1).</summary>
public enum TopKAxis
{
    /// <summary>Every slot keeps its k best tokens of all tasks (SGW; default).</summary>
    Tokens,
    /// <summary>
    /// Every token writes into its k best slots; each slot's weights are then normalised over the tokens
    /// (<see cref="TopKSoftmax.OverSlots"/>). Ablation.
    /// </summary>
    Slots,
}

/// <summary>The form of <see cref="InteractionKind.CrossAttention"/> (MODEL-SPEC §4).</summary>
public enum CrossAttentionForm
{
    /// <summary>Every task's tokens attend to all tokens of the other tasks (the KEM paper's Fig. 2; default): <see cref="CrossTaskAttention"/>.</summary>
    Global,
    /// <summary>
    /// MTFormer's public code: per target task two Swin-style blocks on the token grid, attention inside w×w windows, queries and
    /// keys from each task, values from the target (<see cref="MtformerWindowAttention"/>). Needs the token grid (the shared-encoder network).
    /// </summary>
    MtformerWindow,
}

/// <summary>
/// Options of the interaction stage. A record: configuration is data (STYLE.md).
/// Defaults follow MODEL-SPEC §2–§3.
/// </summary>
public sealed record InteractionOptions
{
    /// <summary>Which module (default <see cref="InteractionKind.StableKem"/>).</summary>
    public InteractionKind Kind { get; init; } = InteractionKind.StableKem;
    /// <summary>Memory slots m (paper 20).</summary>
    public int MemorySlots { get; init; } = 20;
    /// <summary>Top-k k per slot (paper 3).</summary>
    public int TopK { get; init; } = 3;
    /// <summary>Top-k weighting mode.</summary>
    public TopKMode TopKMode { get; init; } = TopKMode.Masked;
    /// <summary>Top-k scope.</summary>
    public TopKScope TopKScope { get; init; } = TopKScope.Joint;
    /// <summary>Memory update rule.</summary>
    public MemoryUpdate MemoryUpdate { get; init; } = MemoryUpdate.Residual;
    /// <summary>Initial values of R_0 (MODEL-SPEC §2): truncated normal std 0.02 (default) or <see cref="MemoryInit.Identity"/> (needs m ≤ d).</summary>
    public MemoryInit MemoryInit { get; init; } = MemoryInit.TruncatedNormal;
    /// <summary>
    /// With <see cref="MemoryUpdate.Residual"/> or <see cref="MemoryUpdate.Replace"/>: R_new ← R_new + MLP(LN(R_new)),
    /// MLP = Lin(d→4d) → GELU → Lin(4d→d) (MODEL-SPEC §2; default off). <see cref="MemoryUpdate.Gated"/> has its own MLP.
    /// </summary>
    public bool MemoryMlp { get; init; }
    /// <summary>
    /// Write queries Wq_w: one Lin(d→d) per task instead of one shared by all (MODEL-SPEC §2 option, §15.15; default off,
    /// shared). Same multiply-adds; T·(d² + d) query parameters instead of d² + d.
    /// </summary>
    public bool PerTaskWriteQuery { get; init; }
    /// <summary>Top-k axis: per slot over tokens (default) or per token over slots.</summary>
    public TopKAxis TopKAxis { get; init; } = TopKAxis.Tokens;
    /// <summary>Retrieve/Write/Broadcast rounds, each with its own R_0 and weights (MODEL-SPEC §2 step 3; default 1).</summary>
    public int KemBlocks { get; init; } = 1;
    /// <summary>Score scale.</summary>
    public ScoreScale ScoreScale { get; init; } = ScoreScale.InvSqrtHeadDim;
    /// <summary>ETF mode for <see cref="InteractionKind.StableKem"/> (ignored for plain KEM).</summary>
    public EtfMode EtfMode { get; init; } = EtfMode.TaskVertices;
    /// <summary>Learnable Lin(d_h→d_h) per head + L2 norm before the ETF (MODEL-SPEC §3); not used by <see cref="EtfMode.Span"/>.</summary>
    public bool EtfInputProjection { get; init; } = true;
    /// <summary>Seed of the fixed ETF (head h uses seed + h).</summary>
    public int EtfSeed { get; init; } = 1234;
    /// <summary>Broadcast residual weight λ (paper 1).</summary>
    public float Lambda { get; init; } = 1f;
    /// <summary>Add a learned per-task vector inside the interaction only (MODEL-SPEC §1).</summary>
    public bool TaskEmbedding { get; init; }
    /// <summary>The form of <see cref="InteractionKind.CrossAttention"/>: <see cref="CrossAttentionForm.Global"/> (default) or MTFormer's windowed one.</summary>
    public CrossAttentionForm CrossAttentionForm { get; init; } = CrossAttentionForm.Global;
    /// <summary>Window side w of <see cref="CrossAttentionForm.MtformerWindow"/> (MTFormer: 7).</summary>
    public int CrossAttentionWindow { get; init; } = 7;

    /// <summary>Validates against the network width, heads and task count; messages say what to change.</summary>
    public void Validate(int width, int heads, int tasks)
    {
        if (MemorySlots < 1) throw new ArgumentOutOfRangeException(nameof(MemorySlots), MemorySlots, "MemorySlots must be ≥ 1 (paper: 20).");
        if (TopK < 1) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be ≥ 1 (paper: 3).");
        if (Kind == InteractionKind.StableKem && EtfMode == EtfMode.TaskVertices && tasks < 2)
            throw new ArgumentException("StableKem with EtfMode.TaskVertices needs at least 2 tasks (K = T ≥ 2). Use EtfMode.SlotVertices or plain Kem.");
        if (Kind == InteractionKind.StableKem && EtfMode == EtfMode.SlotVertices && width / heads < MemorySlots)
            throw new ArgumentException($"EtfMode.SlotVertices needs head width d/h = {width / heads} ≥ MemorySlots = {MemorySlots}: lower MemorySlots or Heads, or raise Width.");
        if (Kind == InteractionKind.StableKem && EtfMode == EtfMode.Span && tasks < 2)
            throw new ArgumentException("StableKem with EtfMode.Span needs at least 2 tasks (K = T ≥ 2). Use EtfMode.SlotVertices or plain Kem.");
        if (Kind == InteractionKind.StableKem && EtfMode == EtfMode.Span && width < tasks)
            throw new ArgumentException($"EtfMode.Span needs Width d = {width} ≥ the number of tasks T = {tasks} (an ETF of T vertices in d dimensions).");
        if (Kind == InteractionKind.CrossAttention && tasks < 2)
            throw new ArgumentException("CrossAttention needs at least 2 tasks.");
        if (CrossAttentionForm != CrossAttentionForm.Global && Kind != InteractionKind.CrossAttention)
            throw new ArgumentException($"CrossAttentionForm.{CrossAttentionForm} is a form of Kind CrossAttention, not {Kind}: set Kind = CrossAttention or leave the form Global.");
        if (CrossAttentionWindow < 1)
            throw new ArgumentOutOfRangeException(nameof(CrossAttentionWindow), CrossAttentionWindow, "CrossAttentionWindow must be ≥ 1 (MTFormer: 7).");
        if (CrossAttentionForm == CrossAttentionForm.MtformerWindow && Lambda != 1f)
            throw new ArgumentException($"Lambda = {Lambda} weights a broadcast residual; CrossAttentionForm.MtformerWindow has none (its blocks carry their own residuals). Leave Lambda at 1.");
        if (KemBlocks < 1)
            throw new ArgumentOutOfRangeException(nameof(KemBlocks), KemBlocks, "KemBlocks must be ≥ 1 (default 1: one Retrieve/Write/Broadcast round).");
        if (Kind is not (InteractionKind.Kem or InteractionKind.StableKem))
        {
            // KEM-only options must not be silently ignored by the other modules
            if (KemBlocks != 1) throw new ArgumentException($"KemBlocks = {KemBlocks} stacks KEM rounds; {Kind} has none. Use Kind Kem or StableKem, or KemBlocks = 1.");
            if (MemoryUpdate == MemoryUpdate.Gated || MemoryMlp)
                throw new ArgumentException($"MemoryUpdate.Gated and MemoryMlp change the KEM memory; {Kind} has none. Use Kind Kem or StableKem, or the defaults (Residual, MemoryMlp off).");
            if (MemoryInit != MemoryInit.TruncatedNormal)
                throw new ArgumentException($"MemoryInit.{MemoryInit} initialises the KEM memory; {Kind} has none. Use Kind Kem or StableKem, or MemoryInit.TruncatedNormal.");
            if (PerTaskWriteQuery)
                throw new ArgumentException($"PerTaskWriteQuery changes the KEM write step; {Kind} has none. Use Kind Kem or StableKem, or PerTaskWriteQuery off.");
            if (TopKAxis != TopKAxis.Tokens) throw new ArgumentException($"TopKAxis.Slots changes the KEM retrieve; {Kind} has none. Use Kind Kem or StableKem, or TopKAxis.Tokens.");
            return;
        }
        if (MemoryInit == MemoryInit.Identity && MemorySlots > width)
            throw new ArgumentException($"MemoryInit.Identity sets slot i to the unit vector e_i, so it needs MemorySlots m = {MemorySlots} ≤ Width d = {width}: lower MemorySlots, raise Width, or use MemoryInit.TruncatedNormal.");
        if (MemoryMlp && MemoryUpdate == MemoryUpdate.Gated)
            throw new ArgumentException("MemoryMlp adds an MLP to the Residual or Replace update; MemoryUpdate.Gated already has its own (R ← LN(R + MLP(R))). Turn MemoryMlp off or use Residual/Replace.");
        if (TopKAxis == TopKAxis.Slots && TopK > MemorySlots)
            throw new ArgumentException($"TopKAxis.Slots keeps the k best of the m slots for every token: TopK = {TopK} must be ≤ MemorySlots = {MemorySlots}.");
        if (TopKAxis == TopKAxis.Slots && TopKScope == TopKScope.PerTask)
            throw new ArgumentException("TopKScope.PerTask splits the token axis into task blocks, but TopKAxis.Slots competes over slots: use TopKScope.Joint with TopKAxis.Slots.");
    }
}
