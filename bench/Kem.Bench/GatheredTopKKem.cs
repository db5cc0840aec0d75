using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// KEM with its Retrieve as src/ ran it until the dense top-k (the commit after 6f7d79c): the slot scores as the tokens'
/// product with the block-diagonal slot columns (B×N×h·m, read through a transposed view), the Masked top-k kept as
/// k weights and indices per row (the row maximum and sum as constants, then exp, sum and divide), and the read as the
/// k value rows gathered per slot and head and summed. src/ now forms the dense top-k weights (a keep mask, the softmax
/// with the dropped scores detached, times the mask) and reads with one batched product (AttentionKernel.ReadSlots):
/// fewer, larger kernels. Otherwise the module's own layout and Write. Same parameters as the
/// <see cref="KnowledgeExtraction"/> it wraps (plain KEM, Masked joint top-k, residual memory, λ = 1), same values to
/// rounding; kept here only so that one GPU run can time both ("kem-gather" module rows against "kem"), like
/// <see cref="LegacyStep"/> for the training step.
/// </summary>
internal sealed class GatheredTopKKem : nn.Module<Tensor, Tensor>
{
    private readonly Dictionary<string, Parameter> p;
    private readonly int heads, tasks, topK;

    /// <summary>Reads the parameters of <paramref name="kem"/>; build it after the module's last <c>to(…)</c>.</summary>
    public GatheredTopKKem(KnowledgeExtraction kem, int heads, int tasks, int topK) : base("gathered_top_k_kem")
    {
        p = kem.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        (this.heads, this.tasks, this.topK) = (heads, tasks, topK);
    }

    public override Tensor forward(Tensor x)
    {
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var tokens = LayerNorm(x.reshape(batch, tasks * perTask, width), "normTokens");
        var projected = Linear(tokens, "tokenProjection").chunk(3, -1);                                   // K_r, V_r, Q_w: B×N×d views
        // Retrieve, the previous form
        var slots = Linear(LayerNorm(p["memorySlots"], "normMemory"), "retrieveQuery");
        var length = projected[0].shape[1];
        var scores = projected[0].matmul(AttentionKernel.SlotColumns(slots, heads, AttentionKernel.DefaultScale(width / heads)))
            .transpose(1, 2).view(batch, heads, -1, length);                                                // B×h×m×N, a strided view
        var (kept, indices) = scores.topk(topK, dim: -1, sorted: false);
        Tensor rowMax, rowSum;
        using (no_grad())
        {
            rowMax = kept.amax([-1], keepdim: true);
            rowSum = (scores - rowMax).exp_().sum(-1, keepdim: true);
        }
        var exp = (kept - rowMax).exp();
        var keptSum = exp.sum(-1, keepdim: true);
        var weights = exp / (keptSum + (rowSum - keptSum.detach()));                                       // B×h×m×k
        var memory = p["memorySlots"] + Linear(GatherSumRows(weights, indices, projected[1]), "retrieveOutput");
        // Write, as src/
        var keyValue = Linear(LayerNorm(memory, "normMemory"), "writeKeyValue");
        var (written, _) = AttentionKernel.AttendSlots(projected[2], keyValue, heads, null,
            p["writeOutput.weight"], p["writeOutput.bias"]);
        return x + written.reshape(x.shape);
    }

    /// <summary>Σ_j w_j v_(i_j) per head: weights and indices B×h×m×k, values B×N×d (any row stride) → B×m×d, heads merged.</summary>
    private static Tensor GatherSumRows(Tensor weights, Tensor indices, Tensor values)
    {
        var (batch, heads, queries, kept) = (indices.shape[0], indices.shape[1], indices.shape[2], indices.shape[3]);
        var (length, width) = (values.shape[1], values.shape[2]);
        var headWidth = width / heads;
        var index = indices.reshape(batch, heads, queries * kept).transpose(1, 2).unsqueeze(-1).expand(-1, -1, -1, headWidth);
        var rows = values.view(batch, length, heads, headWidth).gather(1, index).view(batch, queries, kept, heads, headWidth);
        return (rows * weights.permute(0, 2, 3, 1).unsqueeze(-1)).sum(2).reshape(batch, queries, width);
    }

    // Rows × d through one fused product, as src/ (FusedLinear): TorchSharp's linear on B×L×d adds the bias in a second kernel
    private Tensor Linear(Tensor x, string name) =>
        nn.functional.linear(x.reshape(-1, x.shape[^1]), p[name + ".weight"], p[name + ".bias"]).view([.. x.shape[..^1], -1]);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
}
