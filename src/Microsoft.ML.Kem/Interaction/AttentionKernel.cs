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
}
