using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>Builds the stage (c) interaction module chosen by <see cref="InteractionOptions.Kind"/>.</summary>
public static class InteractionFactory
{
    /// <summary>
    /// A module mapping stacked task tokens X (B×T×n×d) to X' of the same shape: <see cref="NoInteraction"/>,
    /// <see cref="CrossTaskAttention"/> (or <see cref="MtformerWindowAttention"/> for its windowed form), or <see cref="KnowledgeExtraction"/> (KEM and sKEM; <see cref="KemRounds"/> when
    /// <see cref="InteractionOptions.KemBlocks"/> &gt; 1, so one round keeps today's module and state_dict keys). Options are validated here.
    /// </summary>
    /// <param name="name">Module name.</param>
    /// <param name="options">Interaction options.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h.</param>
    /// <param name="tasks">Number of tasks T.</param>
    /// <param name="grid">The token grid r×c of the n = r·c tokens per task, for the modules that need it
    /// (<see cref="CrossAttentionForm.MtformerWindow"/>); null where the tokens have none.</param>
    public static nn.Module<Tensor, Tensor> Create(string name, InteractionOptions options, int width, int heads, int tasks, (int Rows, int Cols)? grid = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(width, heads, tasks);
        return options.Kind switch
        {
            InteractionKind.None => new NoInteraction(name),
            InteractionKind.CrossAttention when options.CrossAttentionForm == CrossAttentionForm.MtformerWindow => grid is var (rows, cols)
                ? new MtformerWindowAttention(name, width, heads, tasks, rows, cols, options)
                : throw new ArgumentException("CrossAttentionForm.MtformerWindow attends inside windows of the token grid, and these tokens have none: use it in the shared-encoder network, or the Global form.", nameof(grid)),
            InteractionKind.CrossAttention => new CrossTaskAttention(name, width, heads, tasks, options),
            InteractionKind.Kem or InteractionKind.StableKem when options.KemBlocks == 1 => new KnowledgeExtraction(name, width, heads, tasks, options),
            InteractionKind.Kem or InteractionKind.StableKem => new KemRounds(name, width, heads, tasks, options),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown InteractionKind."),
        };
    }
}
