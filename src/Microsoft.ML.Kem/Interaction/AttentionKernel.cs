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

    private static readonly ConstantCache<(DeviceType Device, int Index, ScalarType Type, long Heads, long Width, float Scale)> HeadMasks = new();
    private static readonly ConstantCache<(DeviceType Device, int Index, ScalarType Type, long Heads, long Width, float Scale)> PairMasks = new();

    /// <summary>
    /// h×1×d: row i is <paramref name="scale"/> on head i's columns i·d_h … (i+1)·d_h − 1 and 0 elsewhere (cached per
    /// device, dtype, h, d and scale; h·d values).
    /// </summary>
    private static Tensor HeadMask(long heads, long width, float scale, ScalarType type, Device device) =>
        HeadMasks.Get((device.type, device.index, type, heads, width, scale), key =>
        {
            var identity = eye(key.Heads, dtype: ScalarType.Float32, device: device).mul_(key.Scale);   // fp32 first: not every libtorch has a bf16 eye
            return identity.unsqueeze(-1).expand(key.Heads, key.Heads, key.Width / key.Heads).reshape(key.Heads, 1, key.Width)
                .to(key.Type).contiguous();
        });

    /// <summary>h×1×2d: <see cref="HeadMask"/> with <paramref name="keyScale"/> beside the one with scale 1, for keys and values side by side (cached).</summary>
    private static Tensor PairMask(long heads, long width, float keyScale, ScalarType type, Device device) =>
        PairMasks.Get((device.type, device.index, type, heads, width, keyScale), key =>
            cat([HeadMask(key.Heads, key.Width, key.Scale, key.Type, device), HeadMask(key.Heads, key.Width, 1f, key.Type, device)], -1));

    /// <summary>
    /// Slot vectors …×m×d (B×m×d or m×d) → the block-diagonal …×(h·m)×d with row i·m + j holding slot j's head-i vector in
    /// columns i·d_h … (i+1)·d_h − 1, times <paramref name="scale"/> (zero elsewhere): weights …×(h·m) times it give the
    /// merged-head result; its transpose, <see cref="SlotColumns"/>, gives every head's scores.
    /// </summary>
    public static Tensor SlotRows(Tensor slots, int heads, float scale = 1f)
    {
        var (count, width) = (slots.shape[^2], slots.shape[^1]);
        var lead = slots.shape[..^2];
        var mask = HeadMask(heads, width, scale, slots.dtype, slots.device);                // h×1×d
        // …×1×m×d times the head mask h×1×d → …×h×m×d (contiguous, so the reshape is a view) → …×(h·m)×d
        return (mask * slots.unsqueeze(-3)).reshape([.. lead, heads * count, width]);
    }

    /// <summary>
    /// <see cref="SlotRows"/> transposed: …×d×(h·m), column i·m + j holding slot j's head-i vector in rows
    /// i·d_h … (i+1)·d_h − 1, times <paramref name="scale"/> (a view; matrix products read it without a copy).
    /// </summary>
    public static Tensor SlotColumns(Tensor slots, int heads, float scale = 1f) => SlotRows(slots, heads, scale).transpose(-2, -1);

    /// <summary>
    /// softmax over each head's m slots of tokens (B×L×d, any row stride) against the slot keys, then the slot values, with
    /// keys and values side by side in <paramref name="keyValue"/> (B×m×2d, [K | V], e.g. one Lin(d→2d) of the slots):
    /// B×L×d in the merged-head layout. <paramref name="scale"/> null means 1/√d_h. Also returns the weights B×L×h×m.
    /// Equals <see cref="Attend"/> on the head-split tensors. Both block-diagonal slot matrices come from one product with a
    /// cached h×1×2d mask (<see cref="SlotRows"/> for K and V at once). With an output projection
    /// (<paramref name="outputWeight"/> d_out×d, optional <paramref name="outputBias"/>) the read is projected as well,
    /// B×L×d_out, and the projection is applied to the h·m slot rows before the weights read them,
    /// (A·R)Wᵀ + b = A·(R Wᵀ) + b: no L×d×d product.
    /// </summary>
    public static (Tensor Read, Tensor Weights) AttendSlots(Tensor tokens, Tensor keyValue, int heads, float? scale = null,
        Tensor? outputWeight = null, Tensor? outputBias = null)
    {
        var (batch, length, width) = (tokens.shape[0], tokens.shape[1], tokens.shape[2]);
        if (keyValue.dim() != 3 || keyValue.shape[0] != batch || keyValue.shape[^1] != 2 * width)
            throw new ArgumentException($"The slot keys and values must be B×m×2d = {batch}×m×{2 * width} for tokens {batch}×{length}×{width}, got [{string.Join("×", keyValue.shape)}].");
        if (outputWeight is not null) SameWidth(tokens, outputWeight, "slot values", "output projection's inputs");
        var slots = keyValue.shape[1];
        var mask = PairMask(heads, width, scale ?? DefaultScale(width / heads), keyValue.dtype, keyValue.device);   // h×1×2d
        var blocks = mask * keyValue.unsqueeze(-3);                                                     // B×h×m×2d
        // Views: B×h×m×d halves with row stride 2d, (h, m) merged into h·m rows. One chunk, not two narrows: its backward
        // joins both halves' gradients with one cat, where two narrows each fill a zero tensor and add them up (5 kernels).
        var halves = blocks.chunk(2, -1);
        var keyRows = halves[0].reshape(batch, heads * slots, width);
        var valueRows = halves[1].reshape(batch, heads * slots, width);
        var scores = tokens.bmm(keyRows.transpose(1, 2));                                               // B×L×(h·m)
        var weights = scores.view(batch, length, heads, slots).softmax(-1);                             // over each head's slots
        var flat = weights.view(batch, length, heads * slots);
        if (outputWeight is null) return (flat.bmm(valueRows), weights);
        var projected = valueRows.matmul(outputWeight.t());                                            // B×(h·m)×d_out
        // TorchSharp's Tensor.baddbmm is batch1.baddbmm(batch2, input): input + batch1·batch2
        return (outputBias is null ? flat.bmm(projected) : flat.baddbmm(projected, outputBias), weights);
    }

    /// <summary>
    /// Slot queries m×d against tokens B×L×d (any row stride): scores B×h×m×L, contiguous, the same as <see cref="Scores"/>
    /// on the head-split tensors. <paramref name="scale"/> null means 1/√d_h. One batched product of the tokens with the
    /// block-diagonal slot columns gives B×L×h·m, whose backward hands the tokens their gradient in their own B×L×d layout
    /// (the product the other way round would give it transposed, and KEM's fused projection would then gather it
    /// column by column); one copy lays the scores out slot-major for the top-k and the softmax over the tokens.
    /// </summary>
    public static Tensor SlotScores(Tensor queries, Tensor tokens, int heads, float? scale = null)
    {
        SameWidth(queries, tokens, "slot queries", "tokens");
        var (batch, length, width) = (tokens.shape[0], tokens.shape[1], tokens.shape[2]);
        var slots = queries.shape[0];
        var columns = SlotColumns(queries, heads, scale ?? DefaultScale(width / heads));                   // d×(h·m)
        var tokenMajor = tokens.bmm(columns.expand(batch, width, heads * slots));                         // B×L×(h·m)
        return tokenMajor.transpose(1, 2).contiguous().view(batch, heads, slots, length);
    }

    /// <summary>
    /// Σ_j A_ij v_j per head with the values in the merged-head layout, and the result too: weights B×h×m×L (dense, e.g.
    /// top-k weights with zeros), values B×L×d (any row stride) → B×m×d (heads merged). Equals
    /// <c>MergeHeads(weights.matmul(SplitHeads(values)))</c> without splitting the L values into heads: one product of every
    /// head's weights with all d columns, then each head keeps its own d_h columns (h× the product's small arithmetic).
    /// </summary>
    public static Tensor ReadSlots(Tensor weights, Tensor values)
    {
        if (weights.dim() != 4 || values.dim() != 3 || weights.shape[0] != values.shape[0] || weights.shape[^1] != values.shape[1])
            throw new ArgumentException($"Weights must be B×h×m×L and values B×L×d with the same B and L, got [{string.Join("×", weights.shape)}] and [{string.Join("×", values.shape)}].");
        var (batch, heads, slots, length) = (weights.shape[0], weights.shape[1], weights.shape[2], weights.shape[3]);
        var width = values.shape[2];
        if (width % heads != 0)
            throw new ArgumentException($"Width {width} is not divisible by {heads} heads.", nameof(values));
        var read = weights.reshape(batch, heads * slots, length).bmm(values).view(batch, heads, slots, width);   // B×h×m×d
        return (read * HeadMask(heads, width, 1f, read.dtype, read.device)).sum(1);                            // h×1×d: B×m×d
    }

    // TorchSharp 0.107's matmul aborts the process on mismatched shapes (its native wrapper lets the libtorch error
    // escape), so the products above check what they are given first.
    private static void SameWidth(Tensor a, Tensor b, string aName, string bName)
    {
        if (a.shape[^1] != b.shape[^1])
            throw new ArgumentException($"The {aName} are {a.shape[^1]} wide and the {bName} {b.shape[^1]}; they must match.");
    }
}
