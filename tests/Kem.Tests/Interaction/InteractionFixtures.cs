using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

/// <summary>Tiny interaction configurations shared by the module tests (d = 16, h = 2 → d_h = 8 ≥ m = 4).</summary>
internal static class InteractionFixtures
{
    public const int Batch = 2, TaskCount = 2, PerTask = 5, Width = 16, Heads = 2, Slots = 4, TopK = 3;

    /// <summary>Options for a named variant used in DataRows.</summary>
    public static InteractionOptions Options(string variant) => variant switch
    {
        "Kem" => Base with { Kind = InteractionKind.Kem },
        "KemPerTask" => Base with { Kind = InteractionKind.Kem, TopKScope = TopKScope.PerTask },
        "KemRenormalizedReplace" => Base with { Kind = InteractionKind.Kem, TopKMode = TopKMode.Renormalized, MemoryUpdate = MemoryUpdate.Replace },
        "KemTaskEmbedding" => Base with { Kind = InteractionKind.Kem, TaskEmbedding = true, ScoreScale = ScoreScale.None },
        "TaskVertices" => Base with { EtfMode = EtfMode.TaskVertices },
        "TaskVerticesPlain" => Base with { EtfMode = EtfMode.TaskVertices, EtfInputProjection = false },
        "SlotVertices" => Base with { EtfMode = EtfMode.SlotVertices },
        "SlotVerticesPlain" => Base with { EtfMode = EtfMode.SlotVertices, EtfInputProjection = false },
        "SlotVerticesReplace" => Base with { EtfMode = EtfMode.SlotVertices, MemoryUpdate = MemoryUpdate.Replace },
        "KemGated" => Base with { Kind = InteractionKind.Kem, MemoryUpdate = MemoryUpdate.Gated },
        "SlotVerticesGated" => Base with { EtfMode = EtfMode.SlotVertices, MemoryUpdate = MemoryUpdate.Gated },
        "KemMemoryMlp" => Base with { Kind = InteractionKind.Kem, MemoryMlp = true },
        "KemReplaceMemoryMlp" => Base with { Kind = InteractionKind.Kem, MemoryUpdate = MemoryUpdate.Replace, MemoryMlp = true },
        "KemSlotAxis" => Base with { Kind = InteractionKind.Kem, TopKAxis = TopKAxis.Slots, TopK = 2 },
        "KemSlotAxisRenormalized" => Base with { Kind = InteractionKind.Kem, TopKAxis = TopKAxis.Slots, TopK = 2, TopKMode = TopKMode.Renormalized },
        "KemBlocks2" => Base with { Kind = InteractionKind.Kem, KemBlocks = 2 },
        "TaskVerticesBlocks3Gated" => Base with { KemBlocks = 3, MemoryUpdate = MemoryUpdate.Gated },
        "Span" => Base with { EtfMode = EtfMode.Span },
        "CrossAttention" => Base with { Kind = InteractionKind.CrossAttention },
        "CrossAttentionTaskEmbedding" => Base with { Kind = InteractionKind.CrossAttention, TaskEmbedding = true },
        "None" => Base with { Kind = InteractionKind.None },
        _ => throw new ArgumentException(variant),
    };

    private static readonly InteractionOptions Base = new()
    {
        Kind = InteractionKind.StableKem,
        MemorySlots = Slots,
        TopK = TopK,
    };

    /// <summary>The module for a variant, built with a fixed torch seed.</summary>
    public static nn.Module<Tensor, Tensor> Create(string variant, int tasks = TaskCount)
    {
        manual_seed(42);
        return InteractionFactory.Create(variant, Options(variant), Width, Heads, tasks);
    }

    /// <summary>Seeded task tokens B×T×n×d.</summary>
    public static Tensor Tokens(long seed = 3, int tasks = TaskCount, int batch = Batch) =>
        TensorAssert.Randn(seed, batch, tasks, PerTask, Width);
}
