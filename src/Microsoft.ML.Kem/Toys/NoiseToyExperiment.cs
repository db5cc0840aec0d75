using System.Diagnostics;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>Training recipe of the noise toy (MODEL-SPEC §14: Adam 1e-3, B = 64, 3,000 steps, 1,000 held-out samples).</summary>
public sealed record NoiseToyTrainingOptions
{
    /// <summary>Optimizer steps; every step draws a fresh batch from the generator.</summary>
    public int Steps { get; init; } = 3000;
    /// <summary>Samples per step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Adam learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Held-out samples for the measurements.</summary>
    public int EvaluationSamples { get; init; } = 1000;
    /// <summary>Seed of the weights and of the hidden-state noise (the data's seed is <see cref="NoiseToyOptions.Seed"/>).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Checks the recipe; messages say what to change.</summary>
    public void Validate()
    {
        if (Steps < 1 || BatchSize < 1 || EvaluationSamples < 1) throw new ArgumentException("Steps, BatchSize and EvaluationSamples must be ≥ 1.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive and finite.");
    }
}

/// <summary>
/// One trained noise-toy model's measurements on held-out samples. Per real task: MSE and R² = 1 − MSE / Var(Y).
/// Per layer and real task: the noise share (<see cref="NoiseLeakage.Attention"/> for CA, <see cref="NoiseLeakage.Kem"/>
/// for KEM); for KEM also per layer the share of retrieved memory from noise tokens and the fraction of top-k picks that
/// are noise tokens. Noise measurements are empty when the model has no noise task.
/// </summary>
public sealed record NoiseToyResult(
    NoiseToyInteraction Interaction, bool WithNoiseTask, int Seed, double[] Mse, double[] RSquared,
    double[][] NoiseShare, double[] RetrievedNoiseShare, double[] PickedNoiseFraction, double FinalTrainLoss, TimeSpan Elapsed);

/// <summary>Trains and measures one noise-toy model (MODEL-SPEC §14).</summary>
public static class NoiseToyExperiment
{
    /// <summary>Held-out samples are drawn from indices starting here, far from any training index.</summary>
    public const int EvaluationFirstIndex = 1_000_000_000;

    /// <summary>
    /// Trains a <see cref="NoiseToyModel"/> with <paramref name="model"/>'s interaction on <paramref name="data"/> (the noise
    /// task is dropped when <c>model.Tasks</c> = 2) and measures it. CPU, fp32; runs with the same arguments are identical.
    /// </summary>
    public static NoiseToyResult Run(NoiseToyOptions data, NoiseToyModelOptions model, NoiseToyTrainingOptions training, Action<string>? log = null)
    {
        training.Validate();
        model.Validate();
        if (model.Tasks is not (NoiseToyData.Tasks or NoiseToyData.Tasks - 1) || model.RealTasks != 2)
            throw new ArgumentException($"The noise toy has 2 real tasks and an optional noise task: use Tasks = 3 or 2 and RealTasks = 2 (got {model.Tasks}, {model.RealTasks}).");
        var generator = new NoiseToyData(data);
        if (generator.Options.Tokens != model.Tokens || generator.Options.Width != model.Width || generator.Options.TargetWidth != model.TargetWidth)
            throw new ArgumentException("NoiseToyOptions and NoiseToyModelOptions disagree on Tokens, Width or TargetWidth.");
        var clock = Stopwatch.StartNew();
        manual_seed(training.Seed);
        using var network = new NoiseToyModel(model);
        // Adam: FlatAdamW's defaults (β 0.9 / 0.999, ε 1e-8, no weight decay) on one flat buffer, a few kernels per step
        using var optimizer = new FlatAdamW(network, [], bf16: false);
        double lastLoss = double.NaN;
        network.train();
        using var collections = new CollectionGuard();
        for (int step = 0; step < training.Steps; step++)
        {
            collections.BetweenSteps();
            using var scope = NewDisposeScope();
            var (features, targets) = Tensors(generator.Batch(step * training.BatchSize, training.BatchSize), model.Tasks);
            var loss = nn.functional.mse_loss(network.call(features), targets);
            optimizer.ZeroGrad();
            loss.backward();
            optimizer.Step(training.LearningRate, clipNorm: 0);
            if ((step + 1) % 250 == 0 || step == training.Steps - 1)
            {
                lastLoss = loss.item<float>();
                log?.Invoke($"  step {step + 1}/{training.Steps} mse {lastLoss:F4}");
            }
        }
        return Measure(network, generator, training, lastLoss, clock.Elapsed);
    }

    /// <summary>Evaluates <paramref name="network"/> on the held-out samples in eval mode, without gradients.</summary>
    public static NoiseToyResult Measure(NoiseToyModel network, NoiseToyData generator, NoiseToyTrainingOptions training, double finalTrainLoss, TimeSpan elapsed)
    {
        var o = network.Options;
        bool withNoise = o.Tasks == NoiseToyData.Tasks;
        network.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (features, targets) = Tensors(generator.Batch(EvaluationFirstIndex, training.EvaluationSamples), o.Tasks);
        var trace = network.Trace(features);
        var error = (trace.Predictions - targets).pow(2);                                     // B×2×n×c
        var mse = error.mean([0, 2, 3]).to_type(ScalarType.Float64).data<double>().ToArray();
        var variance = targets.transpose(0, 1).reshape(o.RealTasks, -1).var(1).to_type(ScalarType.Float64).data<double>().ToArray();
        var rSquared = mse.Select((m, t) => 1 - m / variance[t]).ToArray();

        var shares = new List<double[]>();
        var retrieved = new List<double>();
        var picked = new List<double>();
        if (withNoise)
            foreach (var layer in trace.Layers)
            {
                if (layer.Kem is { } kem)
                {
                    shares.Add(NoiseLeakage.Kem(kem.WriteWeights, kem.RetrieveWeights, o.Tasks, NoiseToyData.NoiseTask)[..o.RealTasks]);
                    retrieved.Add(NoiseLeakage.Retrieved(kem.RetrieveWeights, o.Tasks, NoiseToyData.NoiseTask));
                    picked.Add(NoiseLeakage.PickedNoiseFraction(kem.RetrieveWeights, o.Tasks, NoiseToyData.NoiseTask));
                }
                else shares.Add(NoiseLeakage.Attention(layer.AttentionWeights!, o.Tasks, NoiseToyData.NoiseTask)[..o.RealTasks]);
            }
        return new NoiseToyResult(o.Interaction, withNoise, training.Seed, mse, rSquared, shares.ToArray(), retrieved.ToArray(), picked.ToArray(), finalTrainLoss, elapsed);
    }

    /// <summary>A generated batch as tensors: features B×tasks×n×d (the noise task dropped when tasks = 2), targets B×2×n×c.</summary>
    public static (Tensor Features, Tensor Targets) Tensors(NoiseToyBatch batch, int tasks)
    {
        var features = tensor(batch.Features, [batch.Count, NoiseToyData.Tasks, batch.Tokens, batch.Width]);
        if (tasks < NoiseToyData.Tasks) features = features.narrow(1, 0, tasks);
        var targets = tensor(batch.Targets, [batch.Count, 2, batch.Tokens, batch.TargetWidth]);
        return (features, targets);
    }
}
