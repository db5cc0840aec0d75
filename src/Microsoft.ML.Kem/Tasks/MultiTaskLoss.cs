using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// Combines the per-task losses into the training loss (MODEL-SPEC §8, combination modes). Holds one learnable
/// scalar s_t per task, the parameter <c>s</c> of shape [T], initialised 0; in <see cref="LossWeighting.Fixed"/> and
/// <see cref="LossWeighting.Dwa"/> modes it is kept (so checkpoints have the same layout) but frozen and unused.
/// <see cref="LossWeighting.Dwa"/>'s λ_t live in the buffer <c>lambda</c> of shape [T] (every mode has it, ones where unused),
/// on the module's device, set once per epoch by <see cref="SetDwaWeights"/>: not a parameter, no host copy per step.
/// (A buffer registered as non-persistent is not moved by <c>Module.to()</c> in TorchSharp 0.107.)
/// </summary>
public sealed class MultiTaskLoss : nn.Module<Tensor[], Tensor>
{
    /// <summary>Factor on the weighted task loss in <see cref="LossWeighting.MtformerUncertainty"/> (MTFormer's code).</summary>
    public const float MtformerScale = 10f;

    readonly TaskSpec[] _tasks;
    // Field name = registered name: Module.to() swaps the tensor behind the field of that name.
    readonly Parameter s;
    // λ_t of LossWeighting.Dwa, shape [T], ones until SetDwaWeights (a buffer, so Module.to() moves it).
    readonly Tensor lambda;
    // The constant factor of every task's term (w_t, or 10·w_t for MTFormer), made once (see ScalarArithmetic).
    readonly Scalar[] factors;

    /// <summary>Creates the combiner for <paramref name="tasks"/> (their <see cref="TaskSpec.LossWeight"/> are the w_t).</summary>
    public MultiTaskLoss(string name, IReadOnlyList<TaskSpec> tasks, LossWeighting mode = LossWeighting.MtformerUncertainty) : base(name)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        if (tasks.Count == 0)
            throw new ArgumentException("MultiTaskLoss needs at least one task.", nameof(tasks));
        if (!Enum.IsDefined(mode))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown LossWeighting.");
        foreach (var task in tasks)
            task.Validate();
        _tasks = [.. tasks];
        Mode = mode;
        s = new Parameter(torch.zeros(_tasks.Length), requires_grad: mode is LossWeighting.MtformerUncertainty or LossWeighting.Uncertainty);
        register_parameter("s", s);
        lambda = torch.ones(_tasks.Length);
        register_buffer("lambda", lambda);
        factors = _tasks.Select(t => (mode == LossWeighting.MtformerUncertainty ? t.LossWeight * MtformerScale : t.LossWeight).ToScalar()).ToArray();
    }

    /// <summary>The combination mode.</summary>
    public LossWeighting Mode { get; }

    /// <summary>The tasks, in the order <see cref="forward"/> expects their losses.</summary>
    public IReadOnlyList<TaskSpec> Tasks => _tasks;

    /// <summary>The learnable log-variances s_t, shape [T] (not used in <see cref="LossWeighting.Fixed"/> and <see cref="LossWeighting.Dwa"/> modes).</summary>
    public Parameter LogVariances => s;

    /// <summary>The current λ_t of <see cref="LossWeighting.Dwa"/>, shape [T] (ones in the other modes, where they are not used).</summary>
    public Tensor DwaWeights => lambda;

    /// <summary>
    /// Sets the λ_t used by <see cref="LossWeighting.Dwa"/> (MODEL-SPEC §8) from now on, one per task in the order of
    /// <see cref="Tasks"/>: one small host→device copy, meant once per epoch (<see cref="DynamicWeightAverage.Weights"/>).
    /// </summary>
    public void SetDwaWeights(IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (Mode != LossWeighting.Dwa)
            throw new InvalidOperationException($"DWA weights are used by LossWeighting.Dwa only; this loss combines with {Mode}.");
        if (weights.Count != _tasks.Length)
            throw new ArgumentException($"MultiTaskLoss expects {_tasks.Length} DWA weights ({string.Join(", ", _tasks.Select(t => t.Name))}), got {weights.Count}.", nameof(weights));
        using var values = torch.tensor(weights.ToArray(), dtype: lambda.dtype);
        using (torch.no_grad())
            lambda.copy_(values);
    }

    /// <summary>The combined loss (a scalar) from one scalar loss per task, in the order of <see cref="Tasks"/>.</summary>
    public override Tensor forward(Tensor[] perTaskLosses)
    {
        ArgumentNullException.ThrowIfNull(perTaskLosses);
        if (perTaskLosses.Length != _tasks.Length)
            throw new ArgumentException(
                $"MultiTaskLoss expects {_tasks.Length} per-task losses ({string.Join(", ", _tasks.Select(t => t.Name))}), got {perTaskLosses.Length}.",
                nameof(perTaskLosses));
        using var scope = torch.NewDisposeScope();
        Tensor? total = null;
        for (int t = 0; t < _tasks.Length; t++)
        {
            var loss = perTaskLosses[t];
            var st = s[t];
            var term = Mode switch
            {
                // MODEL-SPEC §8: w_t · 10 · exp(−s_t) · L_t + s_t
                LossWeighting.MtformerUncertainty => (torch.exp(-st) * loss).mul(factors[t]) + st,
                // MODEL-SPEC §8: w_t · L_t
                LossWeighting.Fixed => loss.mul(factors[t]),
                // MODEL-SPEC §8: w_t · λ_t · L_t, λ_t set per epoch
                LossWeighting.Dwa => loss.mul(factors[t]) * lambda[t],
                // MODEL-SPEC §8: (exp(−s_t) · w_t · L_t + s_t) / 2
                LossWeighting.Uncertainty => ((torch.exp(-st) * loss).mul(factors[t]) + st).Times(0.5),
                _ => throw new InvalidOperationException($"Unknown LossWeighting {Mode}."),
            };
            total = total is null ? term : total + term;
        }
        return scope.MoveToOuter(total!);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) foreach (var factor in factors) factor.Dispose();
        base.Dispose(disposing);
    }
}
