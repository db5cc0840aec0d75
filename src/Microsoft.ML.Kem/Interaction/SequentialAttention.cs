using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>Options of the sequential cross-attention design (MODEL-SPEC §5). Configuration is data (STYLE.md).</summary>
public sealed record SequentialAttentionOptions
{
    /// <summary>
    /// **Choice** (§5, spatial-reduction attention): at scales finer than this stride, CTAM keys and values are
    /// average-pooled to it (spec: 16). 0 turns pooling off (keys at full resolution).
    /// </summary>
    public int KeyStride { get; init; } = 16;
    /// <summary>Residual conv blocks in every task-and-scale head that maps a backbone scale to F_t^σ (§5: 2).</summary>
    public int HeadBlocks { get; init; } = 2;
    /// <summary>Deep supervision: a 1×1 prediction per task and scale, trained with the task's loss at weight 1 (§5, as MTI-Net).</summary>
    public bool DeepSupervision { get; init; } = true;

    /// <summary>Pool factor of the CTAM keys at a scale of stride <paramref name="stride"/>.</summary>
    public int KeyPoolAt(int stride) => KeyStride > stride ? KeyStride / stride : 1;

    /// <summary>Checks the options against the input size; messages say what to change.</summary>
    public void Validate(int height, int width)
    {
        if (HeadBlocks < 0) throw new ArgumentOutOfRangeException(nameof(HeadBlocks), HeadBlocks, "Sequential.HeadBlocks must be ≥ 0 (spec: 2).");
        if (KeyStride < 0 || (KeyStride > 0 && (KeyStride & (KeyStride - 1)) != 0))
            throw new ArgumentOutOfRangeException(nameof(KeyStride), KeyStride, "Sequential.KeyStride must be 0 (no pooling) or a power of two (spec: 16).");
        if (KeyStride > 0 && (height % KeyStride != 0 || width % KeyStride != 0))
            throw new ArgumentException($"Image size {height}×{width} must be a multiple of Sequential.KeyStride {KeyStride} (the CTAM keys are pooled to that stride): resize the images or set KeyStride = 0.");
    }
}

/// <summary>
/// LN on both sides, then multi-head attention (one kernel: <see cref="AttentionKernel"/> via <see cref="MultiHeadAttention"/>):
/// forward(query tokens B×Lq×c, key/value tokens B×Lk×c_kv) → merge(softmax(Q Kᵀ/√d_h) V) Wo, B×Lq×c.
/// </summary>
public sealed class NormedCrossAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm queryNorm;
    private readonly LayerNorm keyNorm;
    private readonly MultiHeadAttention attention;

    /// <summary>Queries of width <paramref name="width"/>, keys/values of width <paramref name="keyWidth"/>, <paramref name="heads"/> heads.</summary>
    public NormedCrossAttention(string name, int width, int keyWidth, int heads) : base(name)
    {
        queryNorm = nn.LayerNorm(width);
        keyNorm = nn.LayerNorm(keyWidth);
        attention = new MultiHeadAttention("attention", width, heads, keyValueWidth: keyWidth);
        RegisterComponents();
    }

    /// <summary>B×Lq×c, B×Lk×c_kv → B×Lq×c.</summary>
    public override Tensor forward(Tensor query, Tensor keyValue) => attention.forward(queryNorm.forward(query), keyNorm.forward(keyValue));
}

/// <summary>
/// CTAM, the cross-task attention module at one scale σ (MODEL-SPEC §5): for every target task t and every other task u,
/// Y_u = Attn(LN(F_t^σ), LN(pool(F_u^σ))); F̂_t^σ = F_t^σ + ReLU(BN(Conv1×1([Y_u]_{u≠t}))), (T−1)·c_σ → c_σ.
/// forward(F B×T×c×h×w) → F̂ B×T×c×h×w.
/// </summary>
public sealed class CrossTaskAttentionModule : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<TargetTask> targets;
    private readonly int tasks;
    private readonly int keyPool;

    /// <summary>One CTAM for <paramref name="tasks"/> ≥ 2 tasks of <paramref name="channels"/> channels; keys average-pooled by <paramref name="keyPool"/>.</summary>
    public CrossTaskAttentionModule(string name, int tasks, int channels, int heads, int keyPool) : base(name)
    {
        if (tasks < 2) throw new ArgumentException("Cross-task attention needs at least 2 tasks.", nameof(tasks));
        (this.tasks, this.keyPool) = (tasks, keyPool);
        targets = nn.ModuleList(Enumerable.Range(0, tasks).Select(t => new TargetTask($"target_{t}", tasks, channels, heads)).ToArray());
        RegisterComponents();
    }

    /// <summary>F: B×T×c×h×w → F̂: B×T×c×h×w.</summary>
    public override Tensor forward(Tensor maps)
    {
        if (maps.dim() != 5 || maps.shape[1] != tasks)
            throw new ArgumentException($"CTAM expects task maps B×T×c×h×w with T = {tasks}, got [{string.Join("×", maps.shape)}].", nameof(maps));
        var perTask = Enumerable.Range(0, tasks).Select(t => maps.select(1, t)).ToArray();                  // T × B×c×h×w
        var keys = perTask.Select(m => TokenGrid.ToTokens(keyPool > 1 ? nn.functional.avg_pool2d(m, keyPool) : m)).ToArray(); // T × B×n'×c
        return torch.stack(Enumerable.Range(0, tasks)
            .Select(t => targets[t].forward(perTask[t], keys.Where((_, u) => u != t).ToArray())), 1);
    }

    /// <summary>The update of one target task t from the (T−1) other tasks.</summary>
    private sealed class TargetTask : nn.Module<Tensor, Tensor[], Tensor>
    {
        private readonly ModuleList<NormedCrossAttention> sources;
        private readonly nn.Module<Tensor, Tensor> fuse;

        public TargetTask(string name, int tasks, int channels, int heads) : base(name)
        {
            sources = nn.ModuleList(Enumerable.Range(0, tasks - 1).Select(u => new NormedCrossAttention($"source_{u}", channels, channels, heads)).ToArray());
            fuse = nn.Sequential(("conv", nn.Conv2d((tasks - 1) * channels, channels, 1, bias: false)), ("bn", nn.BatchNorm2d(channels)), ("relu", nn.ReLU()));
            RegisterComponents();
        }

        /// <summary>map F_t B×c×h×w, other tasks' key tokens (T−1) × B×n'×c → F̂_t B×c×h×w.</summary>
        public override Tensor forward(Tensor map, Tensor[] otherKeys)
        {
            var query = TokenGrid.ToTokens(map);                                                  // B×n×c
            var gathered = torch.cat(otherKeys.Select((k, u) => sources[u].forward(query, k)).ToArray(), -1); // B×n×(T−1)c
            return map + fuse.forward(TokenGrid.ToMap(gathered, map.shape[2], map.shape[3]));
        }
    }
}

/// <summary>
/// CSAM, the cross-scale attention module of one task (MODEL-SPEC §5): coarse → fine, for σ = S−2…0 (the coarsest
/// scale is unchanged), queries from LN(F̂_t^σ), keys/values from the already refined F̃_t^σ' of every coarser σ' at its
/// own resolution; F̃_t^σ = F̂_t^σ + Conv1×1([Y_σ']_{σ'>σ}), (S−1−σ)·c_σ → c_σ (each Y_σ' is projected to c_σ by its Wo).
/// forward(S maps, finest first) → S refined maps of the same shapes.
/// </summary>
public sealed class CrossScaleAttentionModule : nn.Module<Tensor[], Tensor[]>
{
    private readonly ModuleList<TargetScale> targets;

    /// <summary>One CSAM over scales of <paramref name="widths"/> channels (finest first) with <paramref name="heads"/> heads each.</summary>
    public CrossScaleAttentionModule(string name, IReadOnlyList<int> widths, IReadOnlyList<int> heads) : base(name)
    {
        if (widths.Count < 2) throw new ArgumentException("Cross-scale attention needs at least 2 scales.", nameof(widths));
        targets = nn.ModuleList(Enumerable.Range(0, widths.Count - 1)
            .Select(s => new TargetScale($"scale_{s}", widths[s], widths.Skip(s + 1).ToArray(), heads[s])).ToArray());
        RegisterComponents();
    }

    /// <summary>F̂^σ (finest first) → F̃^σ, processed coarse to fine.</summary>
    public override Tensor[] forward(Tensor[] maps)
    {
        var refined = (Tensor[])maps.Clone();
        for (int s = maps.Length - 2; s >= 0; s--)
            refined[s] = targets[s].forward(maps[s], refined.Skip(s + 1).ToArray());
        return refined;
    }

    /// <summary>The update of one target scale σ from every coarser, already refined scale.</summary>
    private sealed class TargetScale : nn.Module<Tensor, Tensor[], Tensor>
    {
        private readonly ModuleList<NormedCrossAttention> sources;
        private readonly Conv2d fuse;

        public TargetScale(string name, int width, int[] coarserWidths, int heads) : base(name)
        {
            sources = nn.ModuleList(coarserWidths.Select((w, i) => new NormedCrossAttention($"source_{i}", width, w, heads)).ToArray());
            fuse = nn.Conv2d(coarserWidths.Length * width, width, 1);
            RegisterComponents();
        }

        /// <summary>F̂^σ B×c_σ×h×w, coarser refined maps → F̃^σ B×c_σ×h×w.</summary>
        public override Tensor forward(Tensor map, Tensor[] coarser)
        {
            var query = TokenGrid.ToTokens(map);                                                      // B×n_σ×c_σ
            var gathered = torch.cat(coarser.Select((c, i) => sources[i].forward(query, TokenGrid.ToTokens(c))).ToArray(), -1); // B×n_σ×(S−1−σ)c_σ
            return map + fuse.forward(TokenGrid.ToMap(gathered, map.shape[2], map.shape[3]));
        }
    }
}
