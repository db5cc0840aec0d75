using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Options of the computation-sharing design (MODEL-SPEC §6, seed 2303.09663). Configuration is data (STYLE.md).
/// </summary>
public sealed record ComputationSharingOptions
{
    /// <summary>Name of the base task, trained as a plain single-task model; null means the first task (their code: semantic segmentation).</summary>
    public string? BaseTask { get; init; }
    /// <summary>
    /// **Choice** (instead of the paper's hard-concrete L0 gates): the fraction ρ of every weight-delta tensor that is kept,
    /// the ⌈ρ·size⌉ entries of largest magnitude, chosen afresh at every forward pass; the rest is exactly zero and not stored.
    /// Gradients reach every entry (straight-through), so entries can grow into the kept set. 1 keeps dense deltas.
    /// </summary>
    public double DeltaDensity { get; init; } = 0.1;
    /// <summary>
    /// τ: at the input of every linear layer of a sub-task block, entries of the activation delta δ = x_sub − x_base with
    /// |δ| &lt; τ are set to zero, so the sub-task reuses the base activation there. 0 keeps every delta.
    /// </summary>
    public float ActivationThreshold { get; init; } = 0.1f;
    /// <summary>λ of the L1 penalty on the activation deltas during training, mean |δ| over the linear inputs (the paper's step 3); 0 turns it off.</summary>
    public float ActivationPenalty { get; init; } = 0.1f;

    /// <summary>Checks the options against the task names; messages say what to change.</summary>
    public void Validate(IReadOnlyList<string> taskNames)
    {
        if (BaseTask is not null && !taskNames.Contains(BaseTask, StringComparer.Ordinal))
            throw new ArgumentException($"ComputationSharing.BaseTask '{BaseTask}' is not one of the tasks [{string.Join(", ", taskNames)}]: name one of them or leave it null (the first task).");
        if (!(DeltaDensity >= 0 && DeltaDensity <= 1)) throw new ArgumentOutOfRangeException(nameof(DeltaDensity), DeltaDensity, "ComputationSharing.DeltaDensity must be in [0, 1] (0.1 keeps 10% of every delta).");
        if (!(ActivationThreshold >= 0) || float.IsInfinity(ActivationThreshold)) throw new ArgumentOutOfRangeException(nameof(ActivationThreshold), ActivationThreshold, "ComputationSharing.ActivationThreshold must be finite and ≥ 0.");
        if (!(ActivationPenalty >= 0) || float.IsInfinity(ActivationPenalty)) throw new ArgumentOutOfRangeException(nameof(ActivationPenalty), ActivationPenalty, "ComputationSharing.ActivationPenalty must be finite and ≥ 0.");
    }
}

/// <summary>
/// One sub-task's weight delta ΔW over every parameter of a base module (same names with '.' → '_'), initialised to zero,
/// so the sub-task starts as the base model. <see cref="Sparse"/> gives z ⊙ ΔW with z the magnitude top-⌈ρ·size⌉ mask.
/// </summary>
public sealed class WeightDelta : nn.Module
{
    private readonly string[] baseNames;

    /// <summary>Creates zero deltas shaped like the parameters of <paramref name="reference"/>.</summary>
    public WeightDelta(string name, nn.Module reference) : base(name)
    {
        var parameters = reference.named_parameters().ToArray();
        baseNames = parameters.Select(p => p.name).ToArray();
        foreach (var (baseName, p) in parameters)
            register_parameter(DeltaName(baseName), new Parameter(torch.zeros_like(p)));
    }

    /// <summary>
    /// Base parameter name → z ⊙ ΔW, keeping the ⌈ρ·size⌉ largest-magnitude entries of each tensor (ties by index).
    /// The values are exactly sparse; with gradients on, every entry of ΔW receives the gradient (straight-through).
    /// </summary>
    public Dictionary<string, Tensor> Sparse(double density)
    {
        var deltas = named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        return baseNames.ToDictionary(n => n, n => Keep(deltas[DeltaName(n)], density));
    }

    /// <summary>Number of stored (non-zero) delta entries at <paramref name="density"/>.</summary>
    public long NonZeros(double density)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        return Sparse(density).Values.Sum(d => d.count_nonzero().item<long>());
    }

    private static Tensor Keep(Tensor delta, double density)
    {
        long size = delta.numel();
        long keep = (long)Math.Ceiling(density * size);
        if (keep >= size) return delta;
        Tensor mask;
        using (torch.no_grad())
        {
            var flat = delta.detach().abs().flatten();
            mask = torch.zeros_like(flat);
            if (keep > 0) mask.scatter_(0, flat.topk((int)keep).indexes, torch.ones_like(flat));
            mask = mask.reshape(delta.shape);
        }
        return delta * mask + (delta - delta.detach()) * (1 - mask); // value z ⊙ ΔW, gradient to all of ΔW
    }

    private static string DeltaName(string baseName) => baseName.Replace('.', '_');
}

/// <summary>
/// Multiply-adds a sub-task actually needs, accumulated over a batch by <see cref="DeltaTransformerBlock.ForwardSubTask"/>
/// when given (MODEL-SPEC §6): per linear layer min(dense, nnz(δ)·d_out + nnz(ΔW)·n), plus the dense attention products.
/// </summary>
public sealed class SharingTally
{
    /// <summary>One tally per sub-task.</summary>
    public SharingTally(int subTasks)
    {
        LinearMacs = new long[subTasks];
        AttentionMacs = new long[subTasks];
        DeltaNonZeros = new long[subTasks];
        DeltaEntries = new long[subTasks];
    }

    /// <summary>Multiply-adds of the sub-task's linear layers over the batch.</summary>
    public long[] LinearMacs { get; }
    /// <summary>Multiply-adds of the sub-task's attention products (scores and weighted sums) over the batch.</summary>
    public long[] AttentionMacs { get; }
    /// <summary>Non-zero entries of the thresholded activation deltas at the linear inputs, over the batch.</summary>
    public long[] DeltaNonZeros { get; }
    /// <summary>All entries of those activation deltas, over the batch.</summary>
    public long[] DeltaEntries { get; }
}

/// <summary>
/// A pre-norm transformer block of the base task (a <see cref="TransformerBlock"/>, same weights and names) plus one sparse
/// weight delta per sub-task (MODEL-SPEC §6). The base runs the block as usual and keeps its activations; a sub-task runs
/// the same block with W_base + z ⊙ ΔW, and at the input x of every linear layer (qkv, attention projection, fc1, fc2)
/// it uses x_base + T_τ(x_sub − x_base), so that
/// <code>y_sub = y_base + W_base·T_τ(δx) + (z ⊙ ΔW)·x_sub' + Δb        (x_sub' = x_base + T_τ(δx))</code>
/// reuses the base output y_base, already computed once. Sub-task gradients never reach the base weights or activations
/// (the base stays a single-task model); LayerNorms, softmax and GELU run densely on the sub-task's own activations.
/// </summary>
public sealed class DeltaTransformerBlock : nn.Module
{
    private readonly TransformerBlock block;
    private readonly ModuleList<WeightDelta> deltas;
    private readonly int heads;
    private readonly long width;

    /// <summary>Creates the base block of width <paramref name="width"/> and zero deltas for <paramref name="subTasks"/> sub-tasks.</summary>
    public DeltaTransformerBlock(string name, int width, int heads, int mlpRatio, int subTasks) : base(name)
    {
        (this.width, this.heads) = (width, heads);
        block = new TransformerBlock("block", width, heads, mlpRatio);
        deltas = nn.ModuleList(Enumerable.Range(0, subTasks).Select(k => new WeightDelta($"sub_{k}", block)).ToArray());
        RegisterComponents();
    }

    /// <summary>The base task's block (its parameters are the dense base weights).</summary>
    public TransformerBlock Base => block;

    /// <summary>Sub-task <paramref name="k"/>'s weight delta.</summary>
    public WeightDelta Delta(int k) => deltas[k];

    /// <summary>Number of sub-tasks.</summary>
    public int SubTasks => deltas.Count;

    /// <summary>The base block on B×n×d tokens, equal to <see cref="TransformerBlock.forward"/>; <paramref name="trace"/> keeps its activations.</summary>
    public Tensor ForwardBase(Tensor x, out BlockTrace trace)
    {
        var w = BaseWeights();
        var a = F.layer_norm(x, new[] { width }, w["norm1.weight"], w["norm1.bias"]);            // LN(x)
        var q = FusedLinear.Linear(a, w["attn.query.weight"], w["attn.query.bias"]);                      // B×n×d
        var kv = FusedLinear.Linear(a, w["attn.keyValue.weight"], w["attn.keyValue.bias"]);              // B×n×2d
        var o = Attention(q, kv);                                                               // B×n×d, merged heads
        var p = FusedLinear.Linear(o, w["attn.output.weight"], w["attn.output.bias"]);
        x = x + p;
        var m = F.layer_norm(x, new[] { width }, w["norm2.weight"], w["norm2.bias"]);
        var h = FusedLinear.Linear(m, w["fc1.weight"], w["fc1.bias"]);                                    // B×n×rd
        var g = F.gelu(h);
        var f = FusedLinear.Linear(g, w["fc2.weight"], w["fc2.bias"]);
        trace = new BlockTrace(a, q, kv, o, p, m, h, g, f);
        return x + f;
    }

    /// <summary>
    /// Sub-task <paramref name="k"/> on its own tokens <paramref name="x"/> (B×n×d), reusing the base activations in
    /// <paramref name="trace"/>. Adds mean |δ| of every linear input to <paramref name="deltaMagnitudes"/> when given,
    /// and the multiply-adds it needs to <paramref name="tally"/> when given.
    /// </summary>
    public Tensor ForwardSubTask(int k, Tensor x, BlockTrace trace, double density, float threshold,
        SharingTally? tally = null, List<Tensor>? deltaMagnitudes = null)
    {
        var w = BaseWeights();
        var d = deltas[k].Sparse(density);
        Tensor W(string n) => w[n].detach() + d[n];
        var share = new Sharing(k, threshold, w, d, tally, deltaMagnitudes);
        long tokens = x.shape[1];

        var a = share.Input(trace.AttentionInput, F.layer_norm(x, new[] { width }, W("norm1.weight"), W("norm1.bias")));
        var q = share.Linear("attn.query", trace.Query, a);
        var kv = share.Linear("attn.keyValue", trace.KeyValue, a);
        if (tally is not null) tally.AttentionMacs[k] += 2 * x.shape[0] * tokens * tokens * width; // scores + weighted sum, dense
        var o = share.Input(trace.AttentionOutput, Attention(q, kv));
        x = x + share.Linear("attn.output", trace.Projected, o);
        var m = share.Input(trace.MlpInput, F.layer_norm(x, new[] { width }, W("norm2.weight"), W("norm2.bias")));
        var h = share.Linear("fc1", trace.Hidden, m);
        var g = share.Input(trace.Activated, F.gelu(h));
        return x + share.Linear("fc2", trace.MlpOutput, g);
    }

    private Dictionary<string, Tensor> BaseWeights() => block.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    /// <summary>merge(softmax(Q Kᵀ/√d_h) V) from q B×n×d and the fused kv B×n×2d, through the one attention kernel.</summary>
    private Tensor Attention(Tensor q, Tensor kv)
    {
        var parts = kv.chunk(2, -1);
        return AttentionKernel.MergeHeads(AttentionKernel.Attend(
            AttentionKernel.SplitHeads(q, heads), AttentionKernel.SplitHeads(parts[0], heads), AttentionKernel.SplitHeads(parts[1], heads)));
    }

    /// <summary>The shared-activation arithmetic of one sub-task in one block.</summary>
    private sealed class Sharing(int k, float threshold, Dictionary<string, Tensor> w, Dictionary<string, Tensor> d,
        SharingTally? tally, List<Tensor>? deltaMagnitudes)
    {
        /// <summary>x_sub' = x_base + T_τ(x_sub − x_base); remembers T_τ(δ) for the linear layers that read it.</summary>
        public (Tensor Shared, Tensor Delta) Input(Tensor xBase, Tensor xSub)
        {
            var baseline = xBase.detach();
            var delta = xSub - baseline;
            deltaMagnitudes?.Add(delta.abs().mean());
            var kept = delta.abs().ge(threshold);
            var sparse = delta + (delta * kept.to_type(delta.dtype) - delta).detach();              // value T_τ(δ), gradient straight through
            if (tally is not null)
            {
                tally.DeltaNonZeros[k] += sparse.count_nonzero().item<long>();
                tally.DeltaEntries[k] += sparse.numel();
            }
            return (baseline + sparse, sparse);
        }

        /// <summary>y_sub = y_base + W_base·T_τ(δx) + (z ⊙ ΔW)·x_sub' + Δb for the linear layer <paramref name="layer"/>.</summary>
        public Tensor Linear(string layer, Tensor yBase, (Tensor Shared, Tensor Delta) input)
        {
            var baseWeight = w[layer + ".weight"].detach();
            var y = yBase.detach() + FusedLinear.Linear(input.Delta, baseWeight) + FusedLinear.Linear(input.Shared, d[layer + ".weight"], d[layer + ".bias"]);
            if (tally is not null)
            {
                long outWidth = baseWeight.shape[0], inWidth = baseWeight.shape[1], rows = input.Shared.numel() / inWidth;
                long sparse = input.Delta.count_nonzero().item<long>() * outWidth + d[layer + ".weight"].count_nonzero().item<long>() * rows;
                tally.LinearMacs[k] += Math.Min(sparse, rows * inWidth * outWidth);          // an engine recomputes densely when that is cheaper
            }
            return y;
        }
    }
}

/// <summary>The base activations of one block, reused by every sub-task: the four linear inputs and the five linear outputs.</summary>
/// <param name="AttentionInput">LN1(x), input of the query and key/value projections, B×n×d.</param>
/// <param name="Query">Query projection output, B×n×d.</param>
/// <param name="KeyValue">Fused key/value projection output, B×n×2d.</param>
/// <param name="AttentionOutput">Merged attention output, input of the output projection, B×n×d.</param>
/// <param name="Projected">Output projection output, B×n×d.</param>
/// <param name="MlpInput">LN2(x), input of fc1, B×n×d.</param>
/// <param name="Hidden">fc1 output, B×n×rd.</param>
/// <param name="Activated">GELU(fc1 output), input of fc2, B×n×rd.</param>
/// <param name="MlpOutput">fc2 output, B×n×d.</param>
public sealed record BlockTrace(Tensor AttentionInput, Tensor Query, Tensor KeyValue, Tensor AttentionOutput, Tensor Projected,
    Tensor MlpInput, Tensor Hidden, Tensor Activated, Tensor MlpOutput);
