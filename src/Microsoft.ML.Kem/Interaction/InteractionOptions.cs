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
    /// <summary>Score scale.</summary>
    public ScoreScale ScoreScale { get; init; } = ScoreScale.InvSqrtHeadDim;
    /// <summary>ETF mode for <see cref="InteractionKind.StableKem"/> (ignored for plain KEM).</summary>
    public EtfMode EtfMode { get; init; } = EtfMode.TaskVertices;
    /// <summary>Learnable Lin(d_h→d_h) per head + L2 norm before the ETF (MODEL-SPEC §3).</summary>
    public bool EtfInputProjection { get; init; } = true;
    /// <summary>Seed of the fixed ETF (head h uses seed + h).</summary>
    public int EtfSeed { get; init; } = 1234;
    /// <summary>Broadcast residual weight λ (paper 1).</summary>
    public float Lambda { get; init; } = 1f;
    /// <summary>Add a learned per-task vector inside the interaction only (MODEL-SPEC §1).</summary>
    public bool TaskEmbedding { get; init; }

    /// <summary>Validates against the network width, heads and task count; messages say what to change.</summary>
    public void Validate(int width, int heads, int tasks)
    {
        if (MemorySlots < 1) throw new ArgumentOutOfRangeException(nameof(MemorySlots), MemorySlots, "MemorySlots must be ≥ 1 (paper: 20).");
        if (TopK < 1) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be ≥ 1 (paper: 3).");
        if (Kind == InteractionKind.StableKem && EtfMode == EtfMode.TaskVertices && tasks < 2)
            throw new ArgumentException("StableKem with EtfMode.TaskVertices needs at least 2 tasks (K = T ≥ 2). Use EtfMode.SlotVertices or plain Kem.");
        if (Kind == InteractionKind.StableKem && EtfMode == EtfMode.SlotVertices && width / heads < MemorySlots)
            throw new ArgumentException($"EtfMode.SlotVertices needs head width d/h = {width / heads} ≥ MemorySlots = {MemorySlots}: lower MemorySlots or Heads, or raise Width.");
        if (Kind == InteractionKind.CrossAttention && tasks < 2)
            throw new ArgumentException("CrossAttention needs at least 2 tasks.");
    }
}
