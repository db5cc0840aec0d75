using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Training;

/// <summary>One progress report of the training loop (also written to ML.NET's channel by the trainer).</summary>
/// <param name="Phase">"train" or "validate".</param>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Step">1-based global step.</param>
/// <param name="TotalSteps">All steps of the run.</param>
/// <param name="TaskLosses">Mean per-task loss since the last report (validation: over the split), by task name.</param>
/// <param name="Loss">Mean combined loss since the last report (validation: Σ w_t L_t).</param>
/// <param name="LearningRate">Current learning rate.</param>
/// <param name="ImagesPerSecond">Training throughput since the last report.</param>
/// <param name="Eta">Estimated time left.</param>
/// <param name="DwaWeights">Training with <see cref="LossWeighting.Dwa"/>: this epoch's λ_t by task name; otherwise null.</param>
public sealed record TrainingProgress(
    string Phase, int Epoch, int Epochs, int Step, int TotalSteps,
    IReadOnlyDictionary<string, double> TaskLosses, double Loss, double LearningRate, double ImagesPerSecond, TimeSpan Eta,
    IReadOnlyDictionary<string, double>? DwaWeights = null)
{
    /// <summary>One line for logs: epoch, step, per-task loss, lr, images/s, ETA (and the DWA weights λ when used).</summary>
    public override string ToString() =>
        $"[{Phase}] epoch {Epoch}/{Epochs} step {Step}/{TotalSteps} loss {Loss:F4} (" +
        string.Join(", ", TaskLosses.Select(kv => $"{kv.Key} {kv.Value:F4}")) +
        (Phase == "train" ? $") lr {LearningRate:E2} {ImagesPerSecond:F1} img/s ETA {Eta:hh\\:mm\\:ss}" : ")") +
        (DwaWeights is null ? "" : " λ (" + string.Join(", ", DwaWeights.Select(kv => $"{kv.Key} {kv.Value:F3}")) + ")");
}

/// <summary>Per-epoch summary kept in <see cref="TrainingResult.History"/>.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainLoss">Mean combined training loss of the epoch.</param>
/// <param name="ValidationLoss">Σ w_t L_t on the validation split, when validated this epoch.</param>
/// <param name="ValidationTaskLosses">Per-task validation losses, when validated this epoch.</param>
/// <param name="TrainTaskLosses">Epoch-mean unweighted training loss L̄_t per task (the final maps'; what DWA's ratios use).</param>
/// <param name="DwaWeights">The λ_t this epoch trained with under <see cref="LossWeighting.Dwa"/>, by task name; otherwise null.</param>
public sealed record EpochSummary(
    int Epoch, double TrainLoss, double? ValidationLoss, IReadOnlyDictionary<string, double>? ValidationTaskLosses,
    IReadOnlyDictionary<string, double>? TrainTaskLosses = null, IReadOnlyDictionary<string, double>? DwaWeights = null);

/// <summary>What a finished training run reports.</summary>
/// <param name="Device">Device it ran on ("cpu", "cuda").</param>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="BestEpoch">Epoch whose weights the network holds at the end (the last epoch when there is no validation or KeepBest is off).</param>
/// <param name="BestValidationLoss">Validation loss of that epoch, if validated.</param>
/// <param name="History">Per-epoch losses.</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record TrainingResult(string Device, int Steps, int BestEpoch, double? BestValidationLoss, IReadOnlyList<EpochSummary> History, TimeSpan Elapsed)
{
    /// <summary>Time the loop waited for training batches (<see cref="BatchPrefetcher.Waited"/>); ~0 when the data keeps up with the device.</summary>
    public TimeSpan DataWait { get; init; }

    /// <summary>The epoch after which this fit resumed from <see cref="TrainingOptions.CheckpointPath"/> (0: it started afresh); <see cref="Elapsed"/> counts this fit only.</summary>
    public int ResumedAfterEpoch { get; init; }
}
