using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;

namespace Kem.Experiments;

/// <summary>The compared methods (MODEL-SPEC §7): each is a change to the shared network options, nothing else.</summary>
internal static class Methods
{
    public const string Stl = "STL", HardSharing = "HardSharing", NoInteraction = "NoInteraction",
        CrossAttention = "CrossAttention", Kem = "Kem", StableKem = "StableKem";

    public static readonly string[] Default = [Stl, HardSharing, CrossAttention, Kem, StableKem];
    public static readonly string[] All = [Stl, HardSharing, NoInteraction, CrossAttention, Kem, StableKem];

    /// <summary>Row label in the paper's wording.</summary>
    public static string Label(string method) => method switch
    {
        Stl => "Single-task (STL)",
        HardSharing => "Hard sharing",
        NoInteraction => "Task enc./dec., no interaction",
        CrossAttention => "KEM w/ CA (cross-attention)",
        Kem => "KEM",
        StableKem => "sKEM",
        _ => method,
    };

    /// <summary>
    /// The network options of <paramref name="method"/> from the shared base (STL: applied once per task with T = 1). The KEM-only
    /// ablations (KemBlocks, MemoryUpdate.Gated, MemoryMlp, MemoryInit, PerTaskWriteQuery, TopKAxis.Slots) apply to the Kem and StableKem rows; the other rows
    /// have no memory and use the defaults. The cross-attention form (--ca-form) applies to the CrossAttention row only.
    /// </summary>
    public static MultiTaskNetworkOptions Configure(string method, MultiTaskNetworkOptions shared) => method switch
    {
        Stl or NoInteraction => shared with { Interaction = WithoutMemory(shared.Interaction, InteractionKind.None) with { CrossAttentionForm = CrossAttentionForm.Global } },
        HardSharing => shared with { EncoderDepth = 0, DecoderDepth = 0, Interaction = WithoutMemory(shared.Interaction, InteractionKind.None) with { CrossAttentionForm = CrossAttentionForm.Global } },
        CrossAttention => shared with { Interaction = WithoutMemory(shared.Interaction, InteractionKind.CrossAttention) },
        Kem => shared with { Interaction = shared.Interaction with { Kind = InteractionKind.Kem, CrossAttentionForm = CrossAttentionForm.Global } },
        StableKem => shared with { Interaction = shared.Interaction with { Kind = InteractionKind.StableKem, CrossAttentionForm = CrossAttentionForm.Global } },
        _ => throw new ArgumentException($"Unknown method '{method}'."),
    };

    private static InteractionOptions WithoutMemory(InteractionOptions interaction, InteractionKind kind) => interaction with
    {
        Kind = kind, KemBlocks = 1, MemoryMlp = false, TopKAxis = TopKAxis.Tokens, MemoryInit = MemoryInit.TruncatedNormal,
        PerTaskWriteQuery = false,
        MemoryUpdate = interaction.MemoryUpdate == MemoryUpdate.Gated ? MemoryUpdate.Residual : interaction.MemoryUpdate,
    };
}
