using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// KEM with the Write's output projection Wo_w applied to the N tokens after the slots are read (as src/ did until this
/// change), instead of to the h·m slot value rows before (<see cref="AttentionKernel.AttendSlots"/> with an output
/// projection): one B×N×d × d×d product more forward, two more backward. Otherwise the module's own layout. Same
/// parameters as the <see cref="KnowledgeExtraction"/> it wraps (plain KEM, Masked joint top-k, residual memory, λ = 1),
/// same values to rounding; kept here only so that one GPU run can time both ("kem-wo-tokens" module rows against
/// "kem"), like <see cref="LegacyStep"/> for the training step.
/// </summary>
internal sealed class TokenOutputKem : nn.Module<Tensor, Tensor>
{
    private readonly Dictionary<string, Parameter> p;
    private readonly int heads, tasks, topK;

    /// <summary>Reads the parameters of <paramref name="kem"/>; build it after the module's last <c>to(…)</c>.</summary>
    public TokenOutputKem(KnowledgeExtraction kem, int heads, int tasks, int topK) : base("token_output_kem")
    {
        p = kem.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        (this.heads, this.tasks, this.topK) = (heads, tasks, topK);
    }

    public override Tensor forward(Tensor x)
    {
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var tokens = LayerNorm(x.reshape(batch, tasks * perTask, width), "normTokens");
        var projected = Linear(tokens, "tokenProjection").chunk(3, -1);                                   // K_r, V_r, Q_w: B×N×d views
        // Retrieve
        var slots = Linear(LayerNorm(p["memorySlots"], "normMemory"), "retrieveQuery");
        var scores = AttentionKernel.SlotScores(slots, projected[0], heads);
        var (kept, indices) = TopKSoftmax.Sparse(scores, topK, TopKMode.Masked, TopKScope.Joint, tasks);
        var read = AttentionKernel.GatherSumRows(kept, indices, projected[1]);
        var memory = p["memorySlots"] + Linear(read, "retrieveOutput");
        // Write, then Wo_w on the N tokens
        var keyValue = Linear(LayerNorm(memory, "normMemory"), "writeKeyValue").chunk(2, -1);
        var (written, _) = AttentionKernel.AttendSlots(projected[2], keyValue[0], keyValue[1], heads);
        return x + Linear(written, "writeOutput").reshape(x.shape);
    }

    private Tensor Linear(Tensor x, string name) => nn.functional.linear(x, p[name + ".weight"], p[name + ".bias"]);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
}
