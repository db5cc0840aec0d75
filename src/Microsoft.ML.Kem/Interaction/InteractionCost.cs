namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Analytic multiply-add count of one interaction module for one sample (MODEL-SPEC §2 "Complexity";
/// heads, LayerNorms, biases, softmax and the top-k selection not counted).
/// </summary>
/// <param name="Projections">Multiply-adds of the linear projections.</param>
/// <param name="AttentionPart">Multiply-adds of the score products and the weighted sums.</param>
public sealed record InteractionCost(long Projections, long AttentionPart)
{
    /// <summary>Projections + AttentionPart.</summary>
    public long Total => Projections + AttentionPart;

    /// <summary>
    /// KEM: Projections = 4·T·n·d² + 4·m·d² (Retrieve 2N d² + 2m d², Write 2N d² + 2m d²);
    /// AttentionPart = 4·m·T·n·d (retrieve scores, retrieve sum, write scores, write sum: m·N·d each), linear in n and T:
    /// the spec's count, with a dense retrieve sum. With top-k every slot's weights are non-zero at the K tokens it keeps
    /// (K = k, or k·T per task): pass <paramref name="keptPerSlot"/> to count the algorithm's m·K·d instead of m·N·d.
    /// (<see cref="KnowledgeExtraction"/> itself multiplies the dense weights, zeros included, in one batched product of
    /// every head's weights with all d columns, h·m·N·d on the device: fewer and larger kernels than gathering the K rows.)
    /// sKEM's per-head ETF projections are not counted. This is the spec's count, the basis of its comparison with
    /// cross-attention. <see cref="KnowledgeExtraction"/> runs N·d² fewer: it applies the Write's output projection Wo_w to
    /// the h·m slot value rows before the weights read them, not to the N tokens after (AttentionKernel.AttendSlots).
    /// </summary>
    /// <param name="tasks">T.</param>
    /// <param name="tokensPerTask">n.</param>
    /// <param name="width">d.</param>
    /// <param name="memorySlots">m.</param>
    /// <param name="keptPerSlot">K, the tokens every slot reads (null: dense, N).</param>
    public static InteractionCost Kem(long tasks, long tokensPerTask, long width, long memorySlots, long? keptPerSlot = null)
    {
        var n = tasks * tokensPerTask;
        var retrieveSum = memorySlots * Math.Min(keptPerSlot ?? n, n) * width;
        return new InteractionCost(
            Projections: 4 * n * width * width + 4 * memorySlots * width * width,
            AttentionPart: 3 * memorySlots * n * width + retrieveSum);
    }

    /// <summary>
    /// KEM with the options that change the count: per round, <see cref="Kem(long, long, long, long, long?)"/> with the
    /// tokens every slot sums over (k, k·T for <see cref="TopKScope.PerTask"/>, all N for <see cref="TopKAxis.Slots"/>, whose
    /// retrieve is dense), plus the memory update's projections: <see cref="MemoryUpdate.Gated"/> 4·m·d² + 2·d² (MLP
    /// 2·m·d², memory gate Lin(d→2d) on the m slots 2·m·d², input gate on the one pooled token vector 2·d²), MemoryMlp
    /// 8·m·d² (Lin(d→4d) and Lin(4d→d) on the m slots); all times <see cref="InteractionOptions.KemBlocks"/>.
    /// sKEM's ETF products (and Span's LN(F)·W·Wᵀ) are not counted, as in the overload above. PerTaskWriteQuery does not
    /// change the count: every token still goes through one Lin(d→d) query, its own task's.
    /// </summary>
    /// <param name="tasks">T.</param>
    /// <param name="tokensPerTask">n.</param>
    /// <param name="width">d.</param>
    /// <param name="options">The KEM options (m, k, scope, axis, memory update, MemoryMlp, KemBlocks).</param>
    public static InteractionCost Kem(long tasks, long tokensPerTask, long width, InteractionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        long m = options.MemorySlots, d = width;
        long? keptPerSlot = options.TopKAxis == TopKAxis.Slots ? null
            : options.TopKScope == TopKScope.PerTask ? options.TopK * tasks : options.TopK;
        var round = Kem(tasks, tokensPerTask, width, m, keptPerSlot);
        var memoryUpdate = (options.MemoryUpdate == MemoryUpdate.Gated ? 4 * m * d * d + 2 * d * d : 0)
                           + (options.MemoryMlp ? 8 * m * d * d : 0);
        return new InteractionCost(
            Projections: options.KemBlocks * (round.Projections + memoryUpdate),
            AttentionPart: options.KemBlocks * round.AttentionPart);
    }

    /// <summary>
    /// All-pairs cross-task attention (MODEL-SPEC §4) with its own projections per target task:
    /// Projections = 2·T·n·d² (queries and outputs) + 2·T(T−1)·n·d² (keys and values of the other tasks, per target),
    /// which is the spec's 4·T·n·d² for T = 2 and grows as T² beyond;
    /// AttentionPart = 2·T(T−1)·n²·d, quadratic in n and in T.
    /// </summary>
    /// <param name="tasks">T.</param>
    /// <param name="tokensPerTask">n.</param>
    /// <param name="width">d.</param>
    public static InteractionCost CrossAttention(long tasks, long tokensPerTask, long width)
    {
        var n = tokensPerTask;
        return new InteractionCost(
            Projections: 2 * tasks * n * width * width + 2 * tasks * (tasks - 1) * n * width * width,
            AttentionPart: 2 * tasks * (tasks - 1) * n * n * width);
    }
}
