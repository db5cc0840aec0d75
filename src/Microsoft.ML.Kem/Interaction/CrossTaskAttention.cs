using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// All-pairs cross-task attention, the "KEM w/ CA" baseline (MODEL-SPEC §4, Global form). For every target
/// task t, with its own LayerNorm and projections:
/// <code>
/// X'_t = X_t + λ · merge(softmax(Q Kᵀ/√d_h) V) Wo_t,   Q from LN(X_t), K and V from LN(X_{≠t}) (B×(T−1)n×d)
/// </code>
/// forward(X B×T×n×d) → X' B×T×n×d. Cost is quadratic in n and in T (see <see cref="InteractionCost"/>).
/// </summary>
public sealed class CrossTaskAttention : nn.Module<Tensor, Tensor>
{
    private readonly TaskEmbedding? taskEmbedding;
    private readonly ModuleList<TargetTaskAttention> targets;
    private readonly int tasks;
    private readonly float lambda;

    /// <summary>Builds one attention per target task.</summary>
    /// <param name="name">Module name.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h; must divide d.</param>
    /// <param name="tasks">Number of tasks T ≥ 2.</param>
    /// <param name="options">Interaction options (uses ScoreScale, Lambda, TaskEmbedding); validated here.</param>
    public CrossTaskAttention(string name, int width, int heads, int tasks, InteractionOptions options) : base(name)
    {
        if (options.Kind != InteractionKind.CrossAttention)
            throw new ArgumentException($"CrossTaskAttention builds CrossAttention, not {options.Kind}: use InteractionFactory.Create.", nameof(options));
        options.Validate(width, heads, tasks);
        this.tasks = tasks;
        lambda = options.Lambda;
        float? scale = options.ScoreScale == ScoreScale.None ? 1f : null;
        if (options.TaskEmbedding) taskEmbedding = new TaskEmbedding("task_embedding", tasks, width);
        targets = nn.ModuleList(Enumerable.Range(0, tasks)
            .Select(t => new TargetTaskAttention($"target_{t}", t, tasks, width, heads, scale)).ToArray());
        RegisterComponents();
    }

    /// <summary>X (B×T×n×d) → X' (B×T×n×d), every task updated from the other tasks' tokens.</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != tasks)
            throw new ArgumentException($"Cross-task attention expects task tokens B×T×n×d with T = {tasks}, got [{string.Join("×", x.shape)}].", nameof(x));
        var embedded = taskEmbedding?.call(x) ?? x;
        var updates = targets.Select(target => target.call(embedded));      // T × B×n×d
        return x.PlusScaled(stack(updates, 1), lambda);                           // MODEL-SPEC §4: X'_t = X_t + λ·out_t
    }

    /// <summary>The attention that updates one target task t: LN_t, then MultiHeadAttention_t(X_t, X_{≠t}).</summary>
    private sealed class TargetTaskAttention : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm norm;
        private readonly MultiHeadAttention attention;
        private readonly int target;
        private readonly int tasks;

        public TargetTaskAttention(string name, int target, int tasks, int width, int heads, float? scale) : base(name)
        {
            this.target = target;
            this.tasks = tasks;
            norm = nn.LayerNorm(width);
            attention = new MultiHeadAttention("attention", width, heads, scale);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var normed = norm.call(x);                                       // B×T×n×d
            var query = normed.select(1, target);                            // LN(X_t): B×n×d
            var others = new[] { normed.narrow(1, 0, target), normed.narrow(1, target + 1, tasks - target - 1) }
                .Where(part => part.shape[1] > 0).ToArray();
            var keyValue = cat(others, 1).flatten(1, 2);                     // LN(X_{≠t}): B×(T−1)×n×d → B×(T−1)n×d
            return attention.call(query, keyValue);                          // B×n×d
        }
    }
}
