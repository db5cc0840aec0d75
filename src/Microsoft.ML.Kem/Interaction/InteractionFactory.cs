using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>Builds the stage (c) interaction module chosen by <see cref="InteractionOptions.Kind"/>.</summary>
public static class InteractionFactory
{
    /// <summary>
    /// A module mapping stacked task tokens X (B×T×n×d) to X' of the same shape: <see cref="NoInteraction"/>,
    /// <see cref="CrossTaskAttention"/>, or <see cref="KnowledgeExtraction"/> (KEM and sKEM; <see cref="KemRounds"/> when
    /// <see cref="InteractionOptions.KemBlocks"/> &gt; 1, so one round keeps today's module and state_dict keys). Options are validated here.
    /// </summary>
    /// <param name="name">Module name.</param>
    /// <param name="options">Interaction options.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h.</param>
    /// <param name="tasks">Number of tasks T.</param>
    public static nn.Module<Tensor, Tensor> Create(string name, InteractionOptions options, int width, int heads, int tasks)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(width, heads, tasks);
        return options.Kind switch
        {
            InteractionKind.None => new NoInteraction(name),
            InteractionKind.CrossAttention => new CrossTaskAttention(name, width, heads, tasks, options),
            InteractionKind.Kem or InteractionKind.StableKem when options.KemBlocks == 1 => new KnowledgeExtraction(name, width, heads, tasks, options),
            InteractionKind.Kem or InteractionKind.StableKem => new KemRounds(name, width, heads, tasks, options),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown InteractionKind."),
        };
    }
}
