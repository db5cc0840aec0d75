using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>Settings of MTFormer's cross-task contrastive loss (MODEL-SPEC §7, optional; <see cref="TrainingOptions.CrossTaskContrast"/>).</summary>
public sealed record CrossTaskContrastOptions
{
    /// <summary>Weight of the contrastive term in the total loss (MTFormer: 0.01).</summary>
    public double Weight { get; init; } = 0.01;
    /// <summary>Width of the projected features, Lin(d → p) → ReLU → Lin(p → p) per task (MTFormer: 128).</summary>
    public int ProjectionWidth { get; init; } = 128;
    /// <summary>Negatives drawn from the memory bank per sample and direction, with replacement (MTFormer: 700).</summary>
    public int Negatives { get; init; } = 700;
    /// <summary>Temperature τ of the scores exp(⟨v, f⟩/τ) (MTFormer: 0.07).</summary>
    public double Temperature { get; init; } = 0.07;
    /// <summary>Memory update m: v ← normalise(m·v + (1 − m)·f) for the batch's samples (MTFormer: 0.5).</summary>
    public double Momentum { get; init; } = 0.5;

    /// <summary>Checks the settings; messages say what to change.</summary>
    public void Validate()
    {
        if (!(Weight >= 0) || double.IsInfinity(Weight)) throw new ArgumentOutOfRangeException(nameof(Weight), Weight, "Weight must be ≥ 0 and finite (MTFormer: 0.01).");
        if (ProjectionWidth < 1) throw new ArgumentOutOfRangeException(nameof(ProjectionWidth), ProjectionWidth, "ProjectionWidth must be ≥ 1 (MTFormer: 128).");
        if (Negatives < 1) throw new ArgumentOutOfRangeException(nameof(Negatives), Negatives, "Negatives must be ≥ 1 (MTFormer: 700).");
        if (!(Temperature > 0) || double.IsInfinity(Temperature)) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be positive (MTFormer: 0.07).");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must be in [0, 1) (MTFormer: 0.5).");
    }

    /// <summary>A description of every setting (for checkpoints).</summary>
    public override string ToString() => FormattableString.Invariant(
        $"weight {Weight}, projection {ProjectionWidth}, negatives {Negatives}, temperature {Temperature}, momentum {Momentum}");
}

/// <summary>
/// MTFormer's cross-task contrastive loss (MODEL-SPEC §7; its public code builds it from CMC's memory-bank NCE). Each task's
/// pooled features f_t (B×d, the tokens before its head averaged) are projected, Lin → ReLU → Lin, and L2-normalised. Every
/// training image i has one memory vector per task, v_t[i]. For each pair of tasks (t, u) and each sample i of the batch,
/// the K + 1 scores exp(⟨v_u[j], f_t⟩/τ) over j = i (the positive: the same image seen by the other task) and K images drawn
/// uniformly, divided by a constant Z fixed at the first batch (mean score × N), go into CMC's NCE loss, in both directions;
/// the losses of all pairs are summed (MTFormer's NYUD code has one pair). Then the batch's memory vectors move towards the
/// new features, v_t[i] ← normalise(m·v_t[i] + (1 − m)·f_t). The banks and the Z constants are buffers (kept in checkpoints).
/// </summary>
public sealed class CrossTaskContrast : nn.Module
{
    private const double Epsilon = 1e-7;                         // CMC's NCECriterion
    private readonly ModuleList<Sequential> projections;         // per task: Lin(d → p), ReLU, Lin(p → p)
    private readonly Tensor memory;                              // T×N×p, rows L2-normalised once written
    private readonly Tensor normalisers;                         // pairs×2: Z of both directions, −1 until the first batch
    private readonly CrossTaskContrastOptions options;
    private readonly int tasks;
    private readonly long samples;

    /// <summary>For <paramref name="tasks"/> tasks of token width <paramref name="width"/> and a training set of <paramref name="samples"/> images.</summary>
    public CrossTaskContrast(string name, int tasks, int width, long samples, CrossTaskContrastOptions options) : base(name)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (tasks < 2) throw new ArgumentException("The cross-task contrastive loss needs at least 2 tasks.", nameof(tasks));
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "The memory bank needs at least one training image.");
        (this.options, this.tasks, this.samples) = (options, tasks, samples);
        int p = options.ProjectionWidth;
        projections = nn.ModuleList(Enumerable.Range(0, tasks)
            .Select(t => nn.Sequential(($"in", nn.Linear(width, p)), ("act", nn.ReLU()), ("out", nn.Linear(p, p)))).ToArray());
        double bound = 1 / Math.Sqrt(p / 3.0);                  // CMC's initial bank: uniform in ±1/√(p/3)
        memory = rand(tasks, samples, p).mul_(2 * bound).sub_(bound);
        normalisers = full(new long[] { tasks * (tasks - 1) / 2, 2 }, -1f);
        RegisterComponents();                                   // the tensor fields become the buffers "memory" and "normalisers"
    }

    /// <summary>The weighted contribution to the total loss.</summary>
    public double Weight => options.Weight;

    /// <summary>
    /// The summed NCE loss of all task pairs for task features B×T×d (float32) of the training images <paramref name="indices"/>
    /// (B, int64, on the features' device), with the negatives drawn by <paramref name="generator"/>; updates the memory banks.
    /// </summary>
    public Tensor Loss(Tensor features, Tensor indices, Generator? generator = null)
    {
        var negatives = randint(0, samples, [features.shape[0], options.Negatives], dtype: ScalarType.Int64, device: features.device, generator: generator);
        return Loss(features, indices, negatives);
    }

    /// <summary><see cref="Loss(Tensor, Tensor, Generator?)"/> with given negatives, B×K image indices.</summary>
    internal Tensor Loss(Tensor features, Tensor indices, Tensor negatives)
    {
        if (features.dim() != 3 || features.shape[1] != tasks)
            throw new ArgumentException($"Task features must be B×T×d with T = {tasks}, got [{string.Join("×", features.shape)}].", nameof(features));
        var projected = Enumerable.Range(0, tasks)
            .Select(t => nn.functional.normalize(projections[t].call(features.select(1, t)), p: 2, dim: 1)).ToArray();   // T × B×p
        var candidates = cat([indices.unsqueeze(1), negatives], 1);                                                   // B×(K+1): positive first
        Tensor? total = null;
        int pair = 0;
        for (int t = 0; t < tasks; t++)
            for (int u = t + 1; u < tasks; u++, pair++)
            {
                var towardU = Nce(Scores(projected[t], u, candidates), pair, 0);   // f_t against task u's bank
                var towardT = Nce(Scores(projected[u], t, candidates), pair, 1);
                var both = towardU + towardT;
                total = total is null ? both : total + both;
            }
        using (no_grad())
            for (int t = 0; t < tasks; t++)
            {
                var bank = memory[t];
                var moved = bank.index_select(0, indices).mul_(options.Momentum).add_(projected[t].detach(), alpha: 1 - options.Momentum);
                bank.index_copy_(0, indices, nn.functional.normalize(moved, p: 2, dim: 1));
            }
        return total!;
    }

    /// <summary>exp(⟨v_bank[j], f⟩/τ) for the candidates j of every sample: B×(K+1).</summary>
    private Tensor Scores(Tensor f, int bank, Tensor candidates)
    {
        var (batch, count) = (candidates.shape[0], candidates.shape[1]);
        var vectors = memory[bank].index_select(0, candidates.flatten()).view(batch, count, -1).detach();     // B×(K+1)×p
        return vectors.bmm(f.unsqueeze(-1)).squeeze(-1).div(options.Temperature).exp();
    }

    /// <summary>CMC's NCE loss of scores B×(K+1) (positive first) after dividing by the direction's Z (set from this batch if unset).</summary>
    private Tensor Nce(Tensor scores, int pair, int direction)
    {
        var slot = normalisers[pair].narrow(0, direction, 1);
        using (no_grad())
        {
            var first = scores.mean().mul(samples).reshape(1);
            slot.copy_(where(slot.lt(0), first, slot));                     // Z = mean score × N at the first batch, then fixed
        }
        var probabilities = scores / slot.detach().clone();                 // a copy: later updates of the buffer must not touch what backward reads
        long batch = scores.shape[0], negatives = scores.shape[1] - 1;
        double noise = negatives / (double)samples;                         // K·Pn, Pn = 1/N
        var positive = probabilities.select(1, 0);
        var negative = probabilities.narrow(1, 1, negatives);
        var logPositive = (positive / (positive + (noise + Epsilon))).log();
        var logNegative = (noise / (negative + (noise + Epsilon))).log();
        return (logPositive.sum() + logNegative.sum()).neg() / batch;
    }
}
