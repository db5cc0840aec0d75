using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// Experiment: the library's KEM (plain KEM, Masked joint top-k, residual memory, λ = 1) op for op, with switches for
/// how its products are called, so that one GPU run can time where its host time goes (A/B rows <c>kem-v-*</c> against
/// <c>kem</c>). Same parameters as the <see cref="KnowledgeExtraction"/> it wraps, same values to rounding.
/// </summary>
internal sealed class KemVariant : nn.Module<Tensor, Tensor>
{
    /// <param name="ScoresMm">The Retrieve scores as one 2-D product of the B·N key rows with the d×h·m slot columns,
    /// instead of a batched product with the columns expanded over the batch.</param>
    /// <param name="SlotLinearSplit">Linear layers on the B×m×d slot tensors as TorchSharp's linear on the 3-D input
    /// (a product and an in-place bias add) instead of one fused addmm on the rows.</param>
    /// <param name="TokenLinearSplit">The same for the token projection (B×N×d → B×N×3d).</param>
    public sealed record Switches(bool ScoresMm, bool SlotLinearSplit, bool TokenLinearSplit);

    private readonly Dictionary<string, Parameter> p;
    private readonly int heads, tasks, topK;
    private readonly Switches s;

    /// <summary>Reads the parameters of <paramref name="kem"/>; build it after the module's last <c>to(…)</c>.</summary>
    public KemVariant(KnowledgeExtraction kem, int heads, int tasks, int topK, Switches switches) : base("kem_variant")
    {
        p = kem.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        (this.heads, this.tasks, this.topK, s) = (heads, tasks, topK, switches);
    }

    public override Tensor forward(Tensor x)
    {
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var length = tasks * perTask;
        var tokens = LayerNorm(x.reshape(batch, length, width), "normTokens");
        var projected = Linear(tokens, "tokenProjection", s.TokenLinearSplit).chunk(3, -1);                 // K_r, V_r, Q_w
        var slots = Linear(LayerNorm(p["memorySlots"], "normMemory"), "retrieveQuery", false);            // m×d
        Tensor scores;
        if (s.ScoresMm)
        {
            var count = slots.shape[0];
            var columns = AttentionKernel.SlotColumns(slots, heads, AttentionKernel.DefaultScale(width / heads));   // d×h·m
            scores = projected[0].view(batch * length, width).mm(columns).view(batch, length, heads * count)
                .transpose(1, 2).contiguous().view(batch, heads, count, length);
        }
        else scores = AttentionKernel.SlotScores(slots, projected[0], heads);
        var weights = TopKSoftmax.Apply(scores, topK, TopKMode.Masked);
        var memory = p["memorySlots"] + Linear(AttentionKernel.ReadSlots(weights, projected[1]), "retrieveOutput", s.SlotLinearSplit);
        var keyValue = Linear(LayerNorm(memory, "normMemory"), "writeKeyValue", s.SlotLinearSplit);
        var (written, _) = AttentionKernel.AttendSlots(projected[2], keyValue, heads, null, p["writeOutput.weight"], p["writeOutput.bias"]);
        return x + written.reshape(x.shape);
    }

    private Tensor Linear(Tensor x, string name, bool split) =>
        split || x.dim() <= 2
            ? nn.functional.linear(x, p[name + ".weight"], p[name + ".bias"])
            : nn.functional.linear(x.reshape(-1, x.shape[^1]), p[name + ".weight"], p[name + ".bias"]).view([.. x.shape[..^1], -1]);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
}
