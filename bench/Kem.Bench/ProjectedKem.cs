using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// KEM as src/ computed it before the projections were folded into the slots (the layout of commit f1f154d): the N
/// tokens projected by the fused [Wk_r | Wv_r | Wq_w] (one B×N×3d product), the slot scores and the top-k gather on
/// those projections, and the Write's output projection Wo_w applied to all N tokens. Same parameters as the
/// <see cref="KnowledgeExtraction"/> it wraps (plain KEM, Masked joint top-k, residual memory, λ = 1), same values to
/// rounding; kept here only so that one GPU run can time both ("kem-projected" module rows against "kem"), like
/// <see cref="LegacyStep"/> for the training step.
/// </summary>
internal sealed class ProjectedKem : nn.Module<Tensor, Tensor>
{
    private readonly Dictionary<string, Parameter> p;
    private readonly int heads, tasks, topK;

    /// <summary>Reads the parameters of <paramref name="kem"/>; build it after the module's last <c>to(…)</c>.</summary>
    public ProjectedKem(KnowledgeExtraction kem, int heads, int tasks, int topK) : base("projected_kem")
    {
        p = kem.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        (this.heads, this.tasks, this.topK) = (heads, tasks, topK);
    }

    public override Tensor forward(Tensor x)
    {
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var length = tasks * perTask;
        var tokens = LayerNorm(x.reshape(batch, length, width), "normTokens");
        var projected = Linear(tokens, "tokenProjection").chunk(3, -1);                                   // K_r, V_r, Q_w: B×N×d views
        // Retrieve
        var slots = Linear(LayerNorm(p["memorySlots"], "normMemory"), "retrieveQuery");
        var scores = AttentionKernel.SlotLogits(projected[0], slots, heads).transpose(1, 2).view(batch, heads, slots.shape[0], length);
        var (kept, indices) = TopKSoftmax.Sparse(scores, topK, TopKMode.Masked, TopKScope.Joint, tasks);
        var read = AttentionKernel.GatherSum(kept, indices, AttentionKernel.SplitHeads(projected[1], heads));   // a strided view, no copy
        var memory = p["memorySlots"] + Linear(AttentionKernel.MergeHeads(read), "retrieveOutput");
        // Write
        var keyValue = Linear(LayerNorm(memory, "normMemory"), "writeKeyValue").chunk(2, -1);
        var weights = AttentionKernel.SlotLogits(projected[2], keyValue[0], heads).view(batch, length, heads, -1).softmax(-1);
        var written = weights.view(batch, length, -1).matmul(AttentionKernel.SlotRows(keyValue[1], heads));   // B×N×d
        return x + Linear(written, "writeOutput").reshape(x.shape);
    }

    private Tensor Linear(Tensor x, string name) => nn.functional.linear(x, p[name + ".weight"], p[name + ".bias"]);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
}
