using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// The one scaled dot-product attention used by KEM, cross-task attention, the transformer blocks and the
/// sequential design (STYLE.md: no copy-paste between modules). Heads live on axis 1: B×h×L×d_h.
/// </summary>
public static class AttentionKernel
{
    /// <summary>Splits the last axis into heads: B×L×d → B×h×L×d_h (a view when the input allows it).</summary>
    public static Tensor SplitHeads(Tensor x, int heads)
    {
        var (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2]);
        if (width % heads != 0)
            throw new ArgumentException($"Width {width} is not divisible by {heads} heads.", nameof(heads));
        // B×L×d → B×L×h×d_h → B×h×L×d_h
        return x.reshape(batch, length, heads, width / heads).transpose(1, 2);
    }

    /// <summary>Merges the heads back into the last axis: B×h×L×d_h → B×L×d.</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        var (batch, heads, length, headWidth) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        // B×h×L×d_h → B×L×h×d_h → B×L×d
        return x.transpose(1, 2).reshape(batch, length, heads * headWidth);
    }

    /// <summary>The default score scale 1/√d_h for a query of head width <paramref name="headWidth"/>.</summary>
    public static float DefaultScale(long headWidth) => 1f / MathF.Sqrt(headWidth);

    /// <summary>
    /// Attention scores S = q kᵀ·scale (+ bias): q B×h×Lq×d_h, k B×h×Lk×d_h → B×h×Lq×Lk.
    /// <paramref name="scale"/> null means 1/√d_h; <paramref name="bias"/> is an optional additive term
    /// broadcastable to the scores (relative position bias, shift mask).
    /// </summary>
    public static Tensor Scores(Tensor q, Tensor k, float? scale = null, Tensor? bias = null)
    {
        SameWidth(q, k, "queries", "keys");
        var scores = q.matmul(k.transpose(-2, -1)).Times(scale ?? DefaultScale(q.shape[^1]));
        return bias is null ? scores : scores + bias;
    }

    /// <summary>Attention weights softmax(S) over the key axis, B×h×Lq×Lk (see <see cref="Scores"/>).</summary>
    public static Tensor Weights(Tensor q, Tensor k, float? scale = null, Tensor? bias = null) =>
        Scores(q, k, scale, bias).softmax(-1);

    /// <summary>
    /// Σ_j w_j v_(i_j): the weighted sum of a few rows of <paramref name="values"/> per query, for sparse weights
    /// (top-k): weights and indices B×h×Lq×K, values B×h×Lk×d_h → B×h×Lq×d_h. Equals the dense
    /// <c>A.matmul(values)</c> with A holding the weights at the indices and zeros elsewhere, in O(Lq·K·d_h).
    /// </summary>
    public static Tensor GatherSum(Tensor weights, Tensor indices, Tensor values)
    {
        SameShape(weights, indices);
        var (batch, heads, queries, kept) = (indices.shape[0], indices.shape[1], indices.shape[2], indices.shape[3]);
        var headWidth = values.shape[^1];
        // B×h×Lq×K → B×h×(Lq·K)×d_h (an expanded view), gathered rows → B×h×Lq×K×d_h
        var rows = values.gather(2, indices.reshape(batch, heads, queries * kept, 1).expand(-1, -1, -1, headWidth))
            .reshape(batch, heads, queries, kept, headWidth);
        return weights.unsqueeze(-2).matmul(rows).squeeze(-2);                   // B×h×Lq×1×K · B×h×Lq×K×d_h
    }

    /// <summary>
    /// softmax(q kᵀ·scale + bias) v: q B×h×Lq×d_h, k and v B×h×Lk×d_h → B×h×Lq×d_h, through the fused
    /// <c>scaled_dot_product_attention</c> kernel. <paramref name="scale"/> null means 1/√d_h.
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, float? scale = null, Tensor? bias = null)
    {
        // TorchSharp 0.107's kernel has no scale argument and always uses 1/√d_h: fold any other scale into q.
        var headWidth = q.shape[^1];
        var query = scale is { } s ? q.Times(s / DefaultScale(headWidth)) : q;
        return nn.functional.scaled_dot_product_attention(query, k, v, attn_mask: bias);
    }

    // ---- Attention between many tokens and a few slots (KEM), with the tokens kept in their B×L×d layout ----
    //
    // KEM's many tokens (L = T·n, thousands) meet a few slots (m ≈ 20) in both directions. Splitting the tokens into heads
    // (B×L×d → B×h×L×d_h) costs a transposing copy of every token tensor, forward and backward, and the fused attention
    // kernel is built for long key sequences, not 20 keys. Instead the few slots are laid out block-diagonally per head,
    // h·m columns with head i's d_h rows holding its slots, so that one GEMM over the tokens in their own layout gives
    // every head's scores: S (B×L×h·m) = X (B×L×d) · D, D[i·d_h + e, i·m + j] = slot j's head-i vector, zero off the
    // head's block. The values are multiplied back the same way, (B×L×h·m) · (h·m×d), which lands in the merged-head
    // layout directly. The zeros cost h× the (small) arithmetic of the per-head products and no extra pass over the tokens.
    // Precision: in bf16 the scores come out of the GEMM in bf16, as in any attention that is not one fused kernel (the
    // fused kernel kept them in fp32), and the score scale is folded into the head mask in the tensors' dtype (exact for
    // d_h = 64, within bf16 rounding otherwise). fp32 results equal the head-split forms to rounding.

    private static readonly ConcurrentDictionary<(string Device, ScalarType Type, long Heads, long Slots, long HeadWidth, float Scale), Tensor> BlockMasks = new();

    /// <summary>
    /// The block-diagonal pattern h×m×h×d_h: 1 where the row's head equals the column's head, times
    /// <paramref name="scale"/> (cached per device, dtype, shape and scale; h·m·d ≈ 46k values at the defaults). Stored
    /// whole rather than as a broadcast h×h identity: as the first operand of the product it makes the product's layout
    /// contiguous, so that <see cref="SlotRows"/>' reshape is a view instead of a copy.
    /// </summary>
    private static Tensor BlockMask(long heads, long slots, long headWidth, float scale, ScalarType type, Device device) =>
        BlockMasks.GetOrAdd((device.ToString(), type, heads, slots, headWidth, scale), key =>
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var identity = eye(key.Heads, dtype: ScalarType.Float32, device: device).mul_(key.Scale);   // fp32 first: not every libtorch has a bf16 eye
            return identity.view(key.Heads, 1, key.Heads, 1).expand(key.Heads, key.Slots, key.Heads, key.HeadWidth)
                .to(key.Type).contiguous().DetachFromDisposeScope();
        });

    /// <summary>
    /// Slot vectors …×m×d (B×m×d or m×d) → the block-diagonal …×(h·m)×d with row i·m + j holding slot j's head-i vector in
    /// columns i·d_h … (i+1)·d_h − 1, times <paramref name="scale"/> (zero elsewhere): weights …×(h·m) times it give the
    /// merged-head result; its transpose, <see cref="SlotColumns"/>, gives every head's scores.
    /// </summary>
    public static Tensor SlotRows(Tensor slots, int heads, float scale = 1f)
    {
        var (count, width) = (slots.shape[^2], slots.shape[^1]);
        var lead = slots.shape[..^2];
        var headWidth = width / heads;
        var mask = BlockMask(heads, count, headWidth, scale, slots.dtype, slots.device);   // h×m×h×d_h
        // …×m×d → …×m×h×d_h → …×h×m×1×d_h, times the mask → …×h×m×h×d_h (contiguous: the mask, first, sets the layout) → …×(h·m)×d
        var rows = slots.reshape([.. lead, count, heads, headWidth]).transpose(-3, -2).unsqueeze(-2);
        return (mask * rows).reshape([.. lead, heads * count, width]);
    }

    /// <summary>
    /// <see cref="SlotRows"/> transposed: …×d×(h·m), column i·m + j holding slot j's head-i vector in rows
    /// i·d_h … (i+1)·d_h − 1, times <paramref name="scale"/> (a view; matrix products read it without a copy).
    /// </summary>
    public static Tensor SlotColumns(Tensor slots, int heads, float scale = 1f) => SlotRows(slots, heads, scale).transpose(-2, -1);

    // ---- The token projections folded into the slots ----
    //
    // In KEM every projection of the N tokens meets only the m slots: the Retrieve keys and the Write queries are scored
    // against slot vectors, the Retrieve values are read k per slot, and the Write's output projection follows a weighted
    // sum of slot values. Each projection applied to the tokens would cost an N×d×d product, the largest in the module.
    // The products are re-associated instead, so that the projection meets the slots first:
    //   (X Wᵀ + b)·D = X·(Wᵀ D) + b·D      with D = SlotColumns(slots), d×(h·m)   (scores, no B×N×d projection)
    //   (A·R) Wᵀ + b = A·(R Wᵀ) + b         with R = SlotRows(values), (h·m)×d     (output projection on h·m rows)
    //   Σ_k a_k (x_(i_k) Wᵀ + b)            only the k rows a slot reads are projected
    // Per token the products are h·m wide instead of d (h·m = 120 against d = 384 at the defaults), and no projected
    // B×N×d tensor is kept for the backward pass. The same function; the results differ from projecting first only by
    // rounding.

    /// <summary>
    /// Every head's scores of tokens B×L×d (any row stride) against slot vectors (m×d, shared by the batch, or B×m×d):
    /// B×L×(h·m), column i·m + j = ⟨head i of (x Wᵀ + b), head i of slot j⟩·scale. With a projection
    /// (<paramref name="weight"/> d×d as out×in, optional <paramref name="bias"/> d) the tokens are never projected: the
    /// product is x·(Wᵀ D) + b·D with D = <see cref="SlotColumns"/>. Without one the tokens are scored as they are.
    /// <paramref name="scale"/> null means 1/√d_h.
    /// </summary>
    public static Tensor SlotLogits(Tensor tokens, Tensor slots, int heads, float? scale = null, Tensor? weight = null, Tensor? bias = null)
    {
        SameWidth(tokens, weight ?? slots, "tokens", weight is null ? "slots" : "projection's inputs");
        var (batch, length, width) = (tokens.shape[0], tokens.shape[1], tokens.shape[2]);
        var columns = SlotColumns(slots, heads, scale ?? DefaultScale(slots.shape[^1] / heads));      // …×d×(h·m)
        if (weight is null) return tokens.matmul(columns);
        if (weight.shape[0] != slots.shape[^1])
            throw new ArgumentException($"The projection gives {weight.shape[0]} outputs and the slots are {slots.shape[^1]} wide; they must match.");
        var folded = weight.t().matmul(columns);                                                        // …×d×(h·m)
        var offset = bias?.matmul(columns);                                                             // …×(h·m)
        if (folded.dim() == 2)                                                                          // shared slots: one GEMM over B·L rows
        {
            var rows = tokens.reshape(batch * length, width);
            return (offset is null ? rows.mm(folded) : offset.addmm(rows, folded)).view(batch, length, -1);
        }
        // TorchSharp's Tensor.baddbmm is batch1.baddbmm(batch2, input): input + batch1·batch2
        return offset is null ? tokens.bmm(folded) : tokens.baddbmm(folded, offset.unsqueeze(-2));
    }

    /// <summary>
    /// The slot values that weights B×L×h×m (softmax over each head's slots) read, through an output projection:
    /// (Σ_j w_ij v_j, heads merged)·Wᵀ + b, B×L×d, computed as weights (B×L×h·m) · (SlotRows(values) Wᵀ) + b.
    /// Values B×m×d; <paramref name="weight"/> d×d (out×in), <paramref name="bias"/> d.
    /// </summary>
    public static Tensor ReadSlots(Tensor weights, Tensor values, int heads, Tensor weight, Tensor bias)
    {
        SameWidth(values, weight, "slot values", "projection's inputs");
        var (batch, length) = (weights.shape[0], weights.shape[1]);
        if (weights.shape[2] * weights.shape[3] != heads * values.shape[1])
            throw new ArgumentException($"Weights [{string.Join("×", weights.shape)}] do not read {heads} heads of {values.shape[1]} slots.");
        var rows = SlotRows(values, heads).matmul(weight.t());                                        // B×(h·m)×d
        return weights.reshape(batch, length, -1).baddbmm(rows, bias);                               // weights·rows + b
    }

    /// <summary>
    /// Σ_j w_j (x_(i_j) Wᵀ + b), head by head: a sparse weighted sum of projected token rows that projects only the rows it
    /// reads. Weights and indices B×h×Lq×K, tokens B×L×d (any row stride), <paramref name="weight"/> d×d (out×in; head i's
    /// outputs are rows i·d_h … (i+1)·d_h − 1), <paramref name="bias"/> d → B×h×Lq×d_h. Equals
    /// <c>GatherSum(weights, indices, SplitHeads(x Wᵀ + b))</c> without projecting all L tokens.
    /// </summary>
    public static Tensor GatherProjectRows(Tensor weights, Tensor indices, Tensor tokens, Tensor weight, Tensor bias)
    {
        SameShape(weights, indices);
        SameWidth(tokens, weight, "tokens", "projection's inputs");
        var (batch, heads, queries, kept) = (indices.shape[0], indices.shape[1], indices.shape[2], indices.shape[3]);
        var width = tokens.shape[2];
        var headWidth = weight.shape[0] / heads;
        // whole token rows, K per query and head: B×(h·Lq·K)×d → B×h×(Lq·K)×d
        var rows = tokens.gather(1, indices.reshape(batch, heads * queries * kept, 1).expand(-1, -1, width)).view(batch, heads, queries * kept, width);
        // head i's block of the projection, W_i (d_h×d): rows · W_iᵀ + b_i → B×h×(Lq·K)×d_h
        var projected = rows.matmul(weight.view(heads, headWidth, width).transpose(-2, -1)) + bias.view(heads, 1, headWidth);
        return weights.unsqueeze(-2).matmul(projected.view(batch, heads, queries, kept, headWidth)).squeeze(-2);
    }

    // TorchSharp 0.107's matmul aborts the process on mismatched shapes (its native wrapper lets the libtorch error
    // escape), so the products above check what they are given first.
    private static void SameWidth(Tensor a, Tensor b, string aName, string bName)
    {
        if (a.shape[^1] != b.shape[^1])
            throw new ArgumentException($"The {aName} are {a.shape[^1]} wide and the {bName} {b.shape[^1]}; they must match.");
    }

    private static void SameShape(Tensor weights, Tensor indices)
    {
        if (!weights.shape.SequenceEqual(indices.shape))
            throw new ArgumentException($"Weights [{string.Join("×", weights.shape)}] and indices [{string.Join("×", indices.shape)}] must have the same shape.");
    }
}
