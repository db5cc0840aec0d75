using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// Experiment: KEM with the token projections folded into the slot side (A/B rows <c>kem-fold-*</c> against <c>kem</c>).
/// Plain KEM projects all N tokens to [K_r | V_r | Q_w] (N×d × d×3d) and then meets only h·m slot columns. By
/// associativity the products can run the other way round: S_r = K_r Qᵀ = LN(F)(Q Wk_r)ᵀ + Q b_k, S_w = Q_w Kᵀ =
/// LN(F)(K Wq_w)ᵀ + K b_q and A V_r = (A LN(F)) Wv_rᵀ + (A 1) b_v, where Q and K are the h·m block-diagonal slot rows:
/// the d×d weights meet h·m slot rows instead of N tokens. Same parameters as the <see cref="KnowledgeExtraction"/> it
/// wraps (plain KEM, Masked joint top-k, residual memory, λ = 1), same values to rounding.
/// </summary>
internal sealed class FoldedKem : nn.Module<Tensor, Tensor>
{
    /// <summary>Which products are folded.</summary>
    public enum Fold
    {
        /// <summary>S_r only; [V_r | Q_w] still projected (N×d × d×2d).</summary>
        Retrieve,
        /// <summary>S_r and S_w; V_r still projected (N×d × d×d).</summary>
        RetrieveWrite,
        /// <summary>S_r, S_w and the read: no N×d × d×d product.</summary>
        All,
        /// <summary><see cref="All"/>, with S_r made slot-major by one 2-D product (h·m × B·N) instead of a transposing copy.</summary>
        AllSlotMajor,
    }

    private readonly Dictionary<string, Parameter> p;
    private readonly int heads, tasks, topK;
    private readonly Fold fold;
    private Tensor? headMask;

    /// <summary>Reads the parameters of <paramref name="kem"/>; build it after the module's last <c>to(…)</c>.</summary>
    public FoldedKem(KnowledgeExtraction kem, int heads, int tasks, int topK, Fold fold) : base("folded_kem")
    {
        p = kem.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        (this.heads, this.tasks, this.topK, this.fold) = (heads, tasks, topK, fold);
    }

    public override Tensor forward(Tensor x)
    {
        var (batch, perTask, width) = (x.shape[0], x.shape[2], x.shape[3]);
        var length = tasks * perTask;
        var scale = AttentionKernel.DefaultScale(width / heads);
        var tokens = LayerNorm(x.reshape(batch, length, width), "normTokens");                           // LN(F): B×N×d
        var rows = tokens.view(batch * length, width);
        var (w, b) = (p["tokenProjection.weight"], p["tokenProjection.bias"]);
        Tensor Part(Tensor t, int i) => t.narrow(0, i * width, width);                                     // Wk_r, Wv_r, Wq_w
        Tensor? values = null, queries = null;                                                            // the projections not folded
        if (fold == Fold.Retrieve)
        {
            var valueQuery = nn.functional.linear(rows, w.narrow(0, width, 2 * width), b.narrow(0, width, 2 * width))
                .view(batch, length, 2 * width).chunk(2, -1);
            (values, queries) = (valueQuery[0], valueQuery[1]);
        }
        else if (fold == Fold.RetrieveWrite)
            values = nn.functional.linear(rows, Part(w, 1), Part(b, 1)).view(batch, length, width);

        // Retrieve
        var slots = Linear(LayerNorm(p["memorySlots"], "normMemory"), "retrieveQuery");                 // m×d
        var count = slots.shape[0];
        var queryRows = AttentionKernel.SlotRows(slots, heads, scale);                                   // h·m×d
        var (scoreWeight, scoreBias) = (queryRows.mm(Part(w, 0)), queryRows.mv(Part(b, 0)));            // h·m×d, h·m
        Tensor weights, read;
        if (fold == Fold.AllSlotMajor)
        {
            var scores = scoreBias.unsqueeze(1).addmm(scoreWeight, rows.t());                             // h·m × B·N
            weights = TopKSoftmax.Apply(scores.view(heads, count, batch, length), topK, TopKMode.Masked);  // h×m×B×N
            var perSample = weights.view(heads * count, batch, length).transpose(0, 1);                    // B×h·m×N (strided)
            read = ReadFolded(perSample, tokens, perSample.sum(-1), width);
        }
        else
        {
            var scores = nn.functional.linear(rows, scoreWeight, scoreBias).view(batch, length, heads * count)
                .transpose(1, 2).contiguous().view(batch, heads, count, length);                           // B×h×m×N
            weights = TopKSoftmax.Apply(scores, topK, TopKMode.Masked);
            var flat = weights.view(batch, heads * count, length);
            read = fold == Fold.All
                ? ReadFolded(flat, tokens, flat.sum(-1), width)
                : AttentionKernel.ReadSlots(weights, values!);
        }
        var memory = p["memorySlots"] + Linear(read, "retrieveOutput");                                  // B×m×d

        // Write
        var keyValue = Linear(LayerNorm(memory, "normMemory"), "writeKeyValue");                          // B×m×2d
        var keyRows = SlotRows(keyValue.narrow(-1, 0, width), HeadMask(width, keyValue) * scale);          // B×h·m×d, contiguous
        var valueRows = SlotRows(keyValue.narrow(-1, width, width), HeadMask(width, keyValue));
        Tensor writeScores;
        if (queries is not null)
            writeScores = queries.bmm(keyRows.transpose(1, 2));
        else
        {
            var keyRows2 = keyRows.view(batch * heads * count, width);
            var writeWeight = keyRows2.mm(Part(w, 2)).view(batch, heads * count, width);                 // (K Wq_w): B×h·m×d
            var writeBias = keyRows2.mv(Part(b, 2)).view(batch, 1, heads * count);                         // K b_q
            writeScores = tokens.baddbmm(writeWeight.transpose(1, 2), writeBias);                         // B×N×h·m
        }
        var writeWeights = writeScores.view(batch, length, heads, count).softmax(-1).view(batch, length, heads * count);
        var projected = nn.functional.linear(valueRows.view(-1, width), p["writeOutput.weight"]).view(batch, heads * count, width);
        var written = writeWeights.baddbmm(projected, p["writeOutput.bias"]);
        return x + written.view(x.shape);
    }

    // A V_r = (A LN(F)) Wv_rᵀ + (A 1) b_v, each head keeping its own columns: weights B×h·m×N → B×m×d
    private Tensor ReadFolded(Tensor weights, Tensor tokens, Tensor rowSums, long width)
    {
        var (batch, slotRows) = (weights.shape[0], weights.shape[1]);
        var gathered = weights.bmm(tokens).view(batch * slotRows, width);                                  // A LN(F)
        var valueWeight = p["tokenProjection.weight"].narrow(0, width, width);
        var valueBias = p["tokenProjection.bias"].narrow(0, width, width);
        var read = nn.functional.linear(gathered, valueWeight).view(batch, heads, slotRows / heads, width)
            .addcmul(rowSums.reshape(batch, heads, slotRows / heads, 1), valueBias, 1);
        return (read * HeadMask(width, read)).sum(1);
    }

    private Tensor HeadMask(long width, Tensor like) => headMask ??= Constant(() =>
        eye(heads, dtype: ScalarType.Float32, device: like.device).unsqueeze(-1).expand(heads, heads, width / heads)
            .reshape(heads, 1, width).to(like.dtype));

    // mask h×1×d times slots B×1×m×d (any row stride): B×h×m×d in the contiguous layout, viewed B×h·m×d
    private Tensor SlotRows(Tensor slots, Tensor mask) =>
        (mask * slots.unsqueeze(1)).view(slots.shape[0], heads * slots.shape[1], slots.shape[2]);

    private static Tensor Constant(Func<Tensor> make)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return make().contiguous().MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    private Tensor Linear(Tensor x, string name) =>
        nn.functional.linear(x.reshape(-1, x.shape[^1]), p[name + ".weight"], p[name + ".bias"]).view([.. x.shape[..^1], -1]);

    private Tensor LayerNorm(Tensor x, string name) =>
        nn.functional.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"]);
}
