using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Cross-task attention in the form of MTFormer's public code (MODEL-SPEC §4, <see cref="CrossAttentionForm.MtformerWindow"/>),
/// for completeness next to the default global form (<see cref="CrossTaskAttention"/>). For every target task t, a layer of
/// two Swin-style blocks on the r×c token grid (the second shifted by ⌊w/2⌋), attention inside w×w windows with a learned
/// relative position bias; only the target's tokens change:
/// <code>
/// N_u   = LN1(X_u) for every task u                      (one LayerNorm per block, shared by the tasks)
/// A_tu  = softmax(Q_u K_uᵀ/√d_h + bias) V_t · Wo,          [Q_u | K_u] = N_u W_qk,  V_t = N_t W_v   (u = t: self-attention)
/// X_t  ← X_t + MLP_fuse([MLP_self(A_tt) | MLP_u(A_tu), u ≠ t]) + A_tt
/// X_t  ← X_t + MLP(LN2(X_t))
/// X'_t  = LN(X_t) after the two blocks
/// </code>
/// The other task decides where to look; the target's own features are what is gathered. Widths as MTFormer's, generalised
/// from its T = 2 and T = 3 code: MLP_self d → T·d → d, each MLP_u d → T·d → a share of d (d/(T−1) when it divides; the shares
/// add up to d), MLP_fuse 2d → T·d → d, MLP d → 4d → d, all with GELU. forward(X B×T×n×d, n = r·c row-major) → X' B×T×n×d.
/// </summary>
public sealed class MtformerWindowAttention : nn.Module<Tensor, Tensor>
{
    private readonly TaskEmbedding? taskEmbedding;
    private readonly ModuleList<TargetLayer> targets;
    private readonly int tasks, rows, cols;

    /// <summary>One two-block layer per target task.</summary>
    /// <param name="name">Module name.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h; must divide d.</param>
    /// <param name="tasks">Number of tasks T ≥ 2.</param>
    /// <param name="rows">Token grid rows r.</param>
    /// <param name="cols">Token grid columns c.</param>
    /// <param name="options">Interaction options (uses CrossAttentionWindow, ScoreScale, TaskEmbedding); validated here.</param>
    public MtformerWindowAttention(string name, int width, int heads, int tasks, int rows, int cols, InteractionOptions options) : base(name)
    {
        if (options.Kind != InteractionKind.CrossAttention || options.CrossAttentionForm != CrossAttentionForm.MtformerWindow)
            throw new ArgumentException("MtformerWindowAttention builds CrossAttention with CrossAttentionForm.MtformerWindow: use InteractionFactory.Create.", nameof(options));
        options.Validate(width, heads, tasks);
        if (rows < 1 || cols < 1) throw new ArgumentOutOfRangeException(nameof(rows), $"The token grid must be at least 1×1, got {rows}×{cols}.");
        (this.tasks, this.rows, this.cols) = (tasks, rows, cols);
        float? scale = options.ScoreScale == ScoreScale.None ? 1f : null;
        if (options.TaskEmbedding) taskEmbedding = new TaskEmbedding("task_embedding", tasks, width);
        int window = options.CrossAttentionWindow;
        targets = nn.ModuleList(Enumerable.Range(0, tasks).Select(t => new TargetLayer($"target_{t}", t, tasks, width, heads, rows, cols, window, scale)).ToArray());
        RegisterComponents();
    }

    /// <summary>X (B×T×n×d, n = r·c) → X' (B×T×n×d), every task's tokens replaced by its target layer's output.</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != tasks || x.shape[2] != (long)rows * cols)
            throw new ArgumentException($"MTFormer window attention expects task tokens B×T×n×d with T = {tasks} and n = {rows}×{cols}, got [{string.Join("×", x.shape)}].", nameof(x));
        var embedded = taskEmbedding?.call(x) ?? x;
        return stack(targets.Select(target => target.call(embedded)), 1);
    }

    /// <summary>The shares of d that the T − 1 cross MLPs output: d/(T−1) each, the first d mod (T−1) one wider.</summary>
    internal static int[] CrossWidths(int width, int tasks) =>
        Enumerable.Range(0, tasks - 1).Select(j => width / (tasks - 1) + (j < width % (tasks - 1) ? 1 : 0)).ToArray();

    /// <summary>Target task t's two blocks and final LayerNorm: X B×T×n×d → X'_t B×n×d.</summary>
    private sealed class TargetLayer : nn.Module<Tensor, Tensor>
    {
        private readonly ModuleList<Block> blocks;
        private readonly LayerNorm norm;
        private readonly int target;

        public TargetLayer(string name, int target, int tasks, int width, int heads, int rows, int cols, int window, float? scale) : base(name)
        {
            this.target = target;
            blocks = nn.ModuleList(Enumerable.Range(0, 2)
                .Select(i => new Block($"block{i}", target, tasks, width, heads, new WindowLayout(rows, cols, window, SwinBlock.EffectiveShift(rows, cols, window, i % 2 == 1 ? window / 2 : 0)), scale))
                .ToArray());
            norm = nn.LayerNorm(width);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var own = x.select(1, target);                                               // X_t: B×n×d
            foreach (var block in blocks) own = block.call(x, own);
            return norm.call(own);
        }
    }

    /// <summary>One block: all tasks' tokens (B×T×n×d, the target's current X_t beside them) → the target's new X_t.</summary>
    private sealed class Block : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly LayerNorm norm1;
        private readonly Linear queryKey;                                               // W_qk: d → 2d, from every task u
        private readonly Linear value;                                                  // W_v: d → d, from the target only
        private readonly Linear output;                                                 // Wo
        private readonly Parameter relative_position_bias_table;
        private readonly Mlp self_mlp;
        private readonly ModuleList<Mlp> cross_mlps;
        private readonly Mlp fuse;
        private readonly LayerNorm norm2;
        private readonly Mlp mlp;
        private readonly Tensor relative_position_index;
        private readonly Tensor attention_mask;
        private readonly WindowLayout layout;
        private readonly int target, tasks, heads;
        private readonly float? scale;

        public Block(string name, int target, int tasks, int width, int heads, WindowLayout layout, float? scale) : base(name)
        {
            (this.target, this.tasks, this.heads, this.layout, this.scale) = (target, tasks, heads, layout, scale);
            norm1 = nn.LayerNorm(width);
            queryKey = nn.Linear(width, 2 * width);
            value = nn.Linear(width, width);
            output = nn.Linear(width, width);
            int window = layout.Window;
            relative_position_bias_table = nn.Parameter(TruncatedNormal.Fill(empty((2 * window - 1) * (2 * window - 1), heads), std: 0.02));
            int hidden = tasks * width;
            self_mlp = new Mlp("self_mlp", width, hidden, width);
            cross_mlps = nn.ModuleList(CrossWidths(width, tasks).Select((share, j) => new Mlp($"cross_mlp{j}", width, hidden, share)).ToArray());
            fuse = new Mlp("fuse", 2 * width, hidden, width);
            norm2 = nn.LayerNorm(width);
            mlp = new Mlp("mlp", width, 4 * width, width);
            relative_position_index = SwinBlock.RelativePositionIndex(window);
            attention_mask = SwinBlock.ShiftMask(layout.PaddedRows, layout.PaddedCols, window, layout.Shift);
            RegisterComponents();
        }

        /// <summary><paramref name="all"/>: every task's tokens B×T×n×d (the other tasks' as they came in); <paramref name="own"/>: X_t B×n×d.</summary>
        public override Tensor forward(Tensor all, Tensor own)
        {
            var (batch, count, width) = (all.shape[0], all.shape[2], all.shape[3]);
            var tokens = cat([own.unsqueeze(1), .. Others(all)], 1);                    // B×T×n×d, target first
            var normed = norm1.call(tokens);
            var windows = layout.Partition(normed.reshape(batch * tasks, count, width)); // (B·T·nW)×w²×d, task-major per image
            long perImage = layout.WindowsPerImage, length = layout.Length;

            // Q_u, K_u from every task's windows; V_t from the target's, shared by the T attentions.
            var qk = queryKey.Apply(windows).chunk(2, -1);                               // 2 × (B·T·nW)×w²×d
            var targetWindows = windows.view(batch, tasks, perImage, length, width).select(1, 0);                 // B×nW×w²×d
            var v = value.Apply(targetWindows).unsqueeze(1).expand(-1, tasks, -1, -1, -1).reshape(batch * tasks * perImage, length, width);
            var bias = layout.Bias(relative_position_bias_table, relative_position_index, attention_mask, heads, batch * tasks);
            var read = AttentionKernel.Attend(AttentionKernel.SplitHeads(qk[0], heads), AttentionKernel.SplitHeads(qk[1], heads),
                AttentionKernel.SplitHeads(v, heads), scale, bias);                      // (B·T·nW)×h×w²×d_h
            var attended = output.Apply(AttentionKernel.MergeHeads(read));               // (B·T·nW)×w²×d
            var perTask = layout.Reverse(attended, batch * tasks).view(batch, tasks, count, width);   // A_tu: B×T×n×d, u = target first

            var self = perTask.select(1, 0);                                            // A_tt
            var parts = new Tensor[tasks];
            parts[0] = self_mlp.call(self);
            for (int j = 1; j < tasks; j++) parts[j] = cross_mlps[j - 1].call(perTask.select(1, j));
            var updated = own + fuse.call(cat(parts, -1)) + self;                       // X_t + MLP_fuse(…) + A_tt
            return updated + mlp.call(norm2.call(updated));
        }

        /// <summary>The other tasks' tokens, each B×1×n×d, in task order.</summary>
        private IEnumerable<Tensor> Others(Tensor all) =>
            Enumerable.Range(0, tasks).Where(u => u != target).Select(u => all.narrow(1, u, 1));
    }

    /// <summary>Two linear layers with GELU between (MTFormer's Mlp, no dropout): in → hidden → out.</summary>
    private sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly Linear fc1;
        private readonly GELU act;
        private readonly Linear fc2;

        public Mlp(string name, int inputs, int hidden, int outputs) : base(name)
        {
            fc1 = nn.Linear(inputs, hidden);
            act = nn.GELU();
            fc2 = nn.Linear(hidden, outputs);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => fc2.Apply(act.call(fc1.Apply(x)));
    }
}
