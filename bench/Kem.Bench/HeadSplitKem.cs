using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// KEM as src/ computed it before the token-layout change (commit 8eb05c0): the N tokens' K, V and Q split into heads
/// (B×N×d → B×h×N×d_h, copies forward and backward), the fused scaled_dot_product_attention kernel for the Write, and
/// the heads merged back. Same parameters as the <see cref="KnowledgeExtraction"/> it wraps (plain KEM, Masked joint
/// top-k, residual memory, λ = 1), same values; kept here only so that one GPU run can time both layouts ("kem-split"
/// module rows against "kem"), like <see cref="LegacyStep"/> for the training step.
/// </summary>
internal sealed class HeadSplitKem : nn.Module<Tensor, Tensor>
{
    private readonly Dictionary<string, Parameter> p;
    private readonly int heads, tasks, topK;

    /// <summary>Reads the parameters of <paramref name="kem"/>; build it after the module's last <c>to(…)</c>.</summary>
    public HeadSplitKem(KnowledgeExtraction kem, int heads, int tasks, int topK) : base("head_split_kem")
    {
        p = kem.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        (this.heads, this.tasks, this.topK) = (heads, tasks, topK);
    }

    public override Tensor forward(Tensor x)
    {
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var tokens = LayerNorm(x.reshape(batch, tasks * perTask, width), "normTokens");
        var projected = nn.functional.linear(tokens, p["tokenProjection.weight"], p["tokenProjection.bias"]).chunk(3, -1);
        // Retrieve
        var keys = AttentionKernel.SplitHeads(projected[0], heads);
        var values = AttentionKernel.SplitHeads(projected[1], heads);
        var slots = nn.functional.linear(LayerNorm(p["memorySlots"], "normMemory"), p["retrieveQuery.weight"], p["retrieveQuery.bias"]);
        var scores = AttentionKernel.Scores(AttentionKernel.SplitHeads(slots.unsqueeze(0), heads), keys);
        var (kept, indices) = TopKSoftmax.Sparse(scores, topK, TopKMode.Masked, TopKScope.Joint, tasks);
        var read = AttentionKernel.GatherSum(kept, indices, values);
        var memory = p["memorySlots"] + nn.functional.linear(AttentionKernel.MergeHeads(read), p["retrieveOutput.weight"], p["retrieveOutput.bias"]);
        // Write
        var queries = AttentionKernel.SplitHeads(projected[2], heads);
        var keyValue = nn.functional.linear(LayerNorm(memory, "normMemory"), p["writeKeyValue.weight"], p["writeKeyValue.bias"]).chunk(2, -1);
        var written = AttentionKernel.Attend(queries, AttentionKernel.SplitHeads(keyValue[0], heads), AttentionKernel.SplitHeads(keyValue[1], heads));
        var update = nn.functional.linear(AttentionKernel.MergeHeads(written), p["writeOutput.weight"], p["writeOutput.bias"]);
        return x + update.reshape(x.shape);
    }

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
}
