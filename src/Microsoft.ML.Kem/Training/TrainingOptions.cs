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
/// per epoch or per iteration, gradient clipping, bf16 mixed precision on CUDA with fp32 master weights.
/// The spec's recipes are presets (<see cref="MtformerNyud"/>, <see cref="MtformerPascal"/>, <see cref="InvPT"/>,
/// <see cref="CpuSmall"/>); change one setting with <c>with</c>, e.g. <c>TrainingOptions.MtformerNyud with { Epochs = 50 }</c>.
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
    /// <summary>Power of the polynomial decay lr = lr_0·(1 − i/I)^p or lr_0·(1 − e/E)^p.</summary>
    public double PolyPower { get; init; } = 0.9;
    /// <summary>
    /// When the polynomial decay moves: <see cref="LearningRateDecay.PerEpoch"/> (MTFormer, the spec's recipe: lr_e set at the start
    /// of each epoch) or <see cref="LearningRateDecay.PerIteration"/> (InvPT). Warm-up is per iteration in both (<see cref="LearningRateSchedule"/>).
    /// </summary>
    public LearningRateDecay LearningRateDecay { get; init; } = LearningRateDecay.PerEpoch;
    /// <summary>
    /// AdamW weight decay on every parameter (true, MTFormer's single group) or not on norms, biases, the KEM memory slots R_0
    /// and the loss weights s_t (false; MODEL-SPEC §11 option, <see cref="TrainingStep.DecaysWeights"/>).
    /// </summary>
    public bool DecayAllParameters { get; init; } = true;
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
    /// <summary>Validate every this many epochs (and after the last one); not used when <see cref="ValidateLastEpochs"/> is set.</summary>
    public int ValidateEveryEpochs { get; init; } = 1;
    /// <summary>
    /// Validate only after each of the last this many epochs (MODEL-SPEC §11: "evaluate only in the last 10 epochs for speed; keep the best");
    /// null: every <see cref="ValidateEveryEpochs"/> epochs.
    /// </summary>
    public int? ValidateLastEpochs { get; init; }
    /// <summary>Restore the weights of the validated epoch with the lowest validation loss Σ_t w_t L_t at the end (loss, not a task metric).</summary>
    public bool KeepBest { get; init; } = true;
    /// <summary>Report progress every this many steps (reading losses forces a device sync, so not every step).</summary>
    public int ReportEverySteps { get; init; } = 10;
    /// <summary>
    /// A file for training checkpoints (null: none). After every <see cref="CheckpointEveryEpochs"/> epochs and after the last, the
    /// loop writes there, atomically, what it needs to go on: the fp32 weights with AdamW's moments, the network's buffers, the
    /// keep-best snapshot and the history. When the file exists as a fit starts, the fit resumes after its epoch (the batch order
    /// and augmentation draws are replayed from <see cref="Seed"/>, so on the CPU a resumed run ends with the same weights as an
    /// uninterrupted one); it must come from the same network, data sizes and options, or the fit refuses it, naming what differs.
    /// A finished run's checkpoint makes a repeated fit return at once with the saved weights. Its folder is created if missing.
    /// </summary>
    public string? CheckpointPath { get; init; }
    /// <summary>Write the checkpoint every this many epochs (and after the last); only with <see cref="CheckpointPath"/>.</summary>
    public int CheckpointEveryEpochs { get; init; } = 1;
    /// <summary>
    /// MTFormer's cross-task contrastive loss (MODEL-SPEC §7; optional, not part of KEM): null (default) for none, or its settings
    /// (<c>new CrossTaskContrastOptions()</c> gives MTFormer's: weight 0.01, 128-d projections, 700 negatives, τ 0.07, momentum 0.5).
    /// Needs the shared-encoder network (<see cref="CrossTaskContrast"/>).
    /// </summary>
    public CrossTaskContrastOptions? CrossTaskContrast { get; init; }

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
        if (ValidateLastEpochs < 1) throw new ArgumentOutOfRangeException(nameof(ValidateLastEpochs), ValidateLastEpochs, "ValidateLastEpochs must be ≥ 1, or null to validate every ValidateEveryEpochs epochs.");
        CrossTaskContrast?.Validate();
        if (CheckpointEveryEpochs < 1) throw new ArgumentOutOfRangeException(nameof(CheckpointEveryEpochs), CheckpointEveryEpochs, "CheckpointEveryEpochs must be ≥ 1.");
        if (CheckpointPath is { } path && (string.IsNullOrWhiteSpace(path) || Directory.Exists(path)))
            throw new ArgumentException($"CheckpointPath '{path}' must name a file (it is {(Directory.Exists(path) ? "a folder" : "empty")}), e.g. runs/nyud/checkpoint.safetensors.", nameof(CheckpointPath));
    }

    /// <summary>Whether the loop validates after the 1-based <paramref name="epoch"/>: the last epoch always, else by <see cref="ValidateLastEpochs"/> or <see cref="ValidateEveryEpochs"/>.</summary>
    public bool ValidatesAfter(int epoch) =>
        epoch == Epochs || (ValidateLastEpochs is { } last ? epoch > Epochs - last : epoch % ValidateEveryEpochs == 0);

    /// <summary>
    /// MTFormer's NYUD-v2 recipe (MODEL-SPEC §11, `configs/nyud/multi_task_MTFormer.yml`; for a pre-trained backbone): AdamW 5e-5,
    /// weight decay 1e-4 on all parameters, batch 4, 100 epochs, poly 0.9 per epoch, no warm-up, learned s_t, validation in the
    /// last 10 epochs keeping the best, the spec's NYUD augmentation (<see cref="AugmentationOptions.Nyud"/>). Gradient clipping
    /// and bf16 on CUDA are ours (library defaults).
    /// </summary>
    public static TrainingOptions MtformerNyud => new()
    {
        LearningRate = 5e-5, WeightDecay = 1e-4, BatchSize = 4, Epochs = 100, WarmupSteps = 0, PolyPower = 0.9,
        LearningRateDecay = LearningRateDecay.PerEpoch, DecayAllParameters = true, LossWeighting = LossWeighting.MtformerUncertainty,
        ValidateLastEpochs = 10, KeepBest = true, Augmentation = AugmentationOptions.Nyud,
    };

    /// <summary>MTFormer's PASCAL-Context recipe: <see cref="MtformerNyud"/> with learning rate 2.5e-5 and the PASCAL augmentation.</summary>
    public static TrainingOptions MtformerPascal => MtformerNyud with { LearningRate = 2.5e-5, Augmentation = AugmentationOptions.Pascal };

    /// <summary>
    /// InvPT's recipe (MODEL-SPEC §11, `configs/{nyud,pascal}/*_vitLp16.yml`) for <paramref name="trainingImages"/> images: batch 2,
    /// 40k iterations as the nearest whole number of epochs (the loop counts epochs, not steps: NYUD 795 images → 101 epochs ≈ 40.1k
    /// steps, PASCAL 4998 → 16 epochs ≈ 40.0k), lr 2e-5, poly 0.9 per iteration, fixed loss weights (give the spec's w_t in the
    /// TaskSpecs: NYUD depth 1, normals 10, edge 50). Differs: InvPT's Adam adds L2 1e-6 to the gradient; here weight decay 1e-6 is
    /// AdamW's decoupled decay (both negligible at this rate).
    /// </summary>
    public static TrainingOptions InvPT(int trainingImages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(trainingImages, 2);
        const int batch = 2, iterations = 40_000;
        int epochs = Math.Max(1, (int)Math.Round((double)iterations / (trainingImages / batch)));
        return new()
        {
            LearningRate = 2e-5, WeightDecay = 1e-6, BatchSize = batch, Epochs = epochs, WarmupSteps = 0, PolyPower = 0.9,
            LearningRateDecay = LearningRateDecay.PerIteration, DecayAllParameters = true, LossWeighting = LossWeighting.Fixed,
        };
    }

    /// <summary>
    /// The spec's CPU recipe for `Small` (MODEL-SPEC §11, our choice): AdamW 3e-4, weight decay 1e-4, 200 warm-up steps then poly 0.9,
    /// batch 8, 40 epochs (NYUD at 96×128 ≈ 4k steps), fp32 on the CPU, fixed seed, validation every 5 epochs keeping the best.
    /// </summary>
    public static TrainingOptions CpuSmall => new()
    {
        LearningRate = 3e-4, WeightDecay = 1e-4, WarmupSteps = 200, PolyPower = 0.9, BatchSize = 8, Epochs = 40,
        Device = ComputeDevice.Cpu, MixedPrecision = false, Seed = 1, ValidateEveryEpochs = 5, ValidateLastEpochs = null, KeepBest = true,
    };

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
