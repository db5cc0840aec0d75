using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>Where training and inference run.</summary>
public enum ComputeDevice
{
    /// <summary>CUDA when libtorch sees a GPU, CPU otherwise.</summary>
    Auto,
    /// <summary>Always the CPU.</summary>
    Cpu,
    /// <summary>The first CUDA GPU; fails with a clear message when there is none.</summary>
    Cuda,
}

/// <summary>
/// The training recipe (MODEL-SPEC §11; CPU recipe for `Small`): AdamW, linear warm-up then polynomial decay
/// per iteration, gradient clipping, bf16 mixed precision on CUDA with fp32 master weights.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Passes over the training set.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Peak learning rate lr_0 (from scratch: 1e-4…3e-4; MODEL-SPEC §11).</summary>
    public double LearningRate { get; init; } = 3e-4;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 1e-4;
    /// <summary>Linear warm-up steps (clamped to a quarter of all steps).</summary>
    public int WarmupSteps { get; init; } = 200;
    /// <summary>Power of the polynomial decay lr = lr_0·(1 − i/I)^p.</summary>
    public double PolyPower { get; init; } = 0.9;
    /// <summary>Global gradient-norm clip; 0 turns clipping off.</summary>
    public double GradientClipNorm { get; init; } = 1.0;
    /// <summary>How the per-task losses are combined (MODEL-SPEC §8).</summary>
    public LossWeighting LossWeighting { get; init; } = LossWeighting.MtformerUncertainty;
    /// <summary>
    /// Temperature τ of <see cref="LossWeighting.Dwa"/> (MODEL-SPEC §8; larger τ keeps the λ_t closer to 1). Every fit starts
    /// DWA afresh, fine-tuning from an initial model included: λ_t = 1 for its first two epochs, which give the first ratio.
    /// </summary>
    public double DwaTemperature { get; init; } = DynamicWeightAverage.DefaultTemperature;
    /// <summary>Device choice.</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Auto;
    /// <summary>bf16 forward/backward with fp32 master weights; applies on CUDA only (CPU always trains in fp32).</summary>
    public bool MixedPrecision { get; init; } = true;
    /// <summary>Test hook: run the bf16 path on the CPU too, so CI (no GPU) exercises it.</summary>
    internal bool MixedPrecisionOnCpu { get; init; }
    /// <summary>Seed of weights, shuffling and dropout; CPU runs with the same seed are identical.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>
    /// Training-time augmentation on the device (MODEL-SPEC §11, training batches only): <see cref="AugmentationOptions.None"/>
    /// (default), <see cref="AugmentationOptions.Nyud"/>, <see cref="AugmentationOptions.Pascal"/> or custom; draws seeded by <see cref="Seed"/>.
    /// </summary>
    public AugmentationOptions Augmentation { get; init; } = AugmentationOptions.None;
    /// <summary>Validate every this many epochs (and after the last one).</summary>
    public int ValidateEveryEpochs { get; init; } = 1;
    /// <summary>Restore the weights of the best validation epoch at the end.</summary>
    public bool KeepBest { get; init; } = true;
    /// <summary>Report progress every this many steps (reading losses forces a device sync, so not every step).</summary>
    public int ReportEverySteps { get; init; } = 10;

    /// <summary>Checks the recipe; messages say what to change.</summary>
    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be ≥ 1.");
        if (BatchSize < 2) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be ≥ 2 (BatchNorm in the heads needs two images per step).");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive and finite.");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be ≥ 0.");
        if (WarmupSteps < 0 || PolyPower < 0 || GradientClipNorm < 0) throw new ArgumentException("WarmupSteps, PolyPower and GradientClipNorm must be ≥ 0.");
        if (!(DwaTemperature > 0) || double.IsInfinity(DwaTemperature)) throw new ArgumentOutOfRangeException(nameof(DwaTemperature), DwaTemperature, "DwaTemperature must be positive and finite (the spec's value is 2).");
        (Augmentation ?? throw new ArgumentNullException(nameof(Augmentation), "Augmentation must not be null: use AugmentationOptions.None to turn it off.")).Validate();
        if (ValidateEveryEpochs < 1 || ReportEverySteps < 1) throw new ArgumentException("ValidateEveryEpochs and ReportEverySteps must be ≥ 1.");
    }

    /// <summary>Resolves <see cref="Device"/> to a torch device; throws when CUDA is asked for and absent.</summary>
    public Device ResolveDevice() => Devices.Resolve(Device);
}

/// <summary>Device resolution shared by training and inference.</summary>
public static class Devices
{
    /// <summary>CUDA for Auto when available, CPU otherwise; Cuda without a GPU throws with the fix.</summary>
    public static Device Resolve(ComputeDevice choice) => choice switch
    {
        ComputeDevice.Cpu => torch.CPU,
        ComputeDevice.Cuda when torch.cuda.is_available() => torch.CUDA,
        ComputeDevice.Cuda => throw new InvalidOperationException(
            "Device = Cuda was asked for, but libtorch sees no CUDA GPU. Use Device = Auto or Cpu, or run with a CUDA libtorch (KemTorchBackend=cuda/external)."),
        _ => torch.cuda.is_available() ? torch.CUDA : torch.CPU,
    };
}
