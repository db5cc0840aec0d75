using Kem.Tests.Data;
using Kem.Tests.Interaction;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Kem.Tests.Training;

/// <summary>TrainingOptions.CrossTaskContrast: MTFormer's memory-bank NCE between the tasks' pooled features (MODEL-SPEC §7).</summary>
[TestClass]
public sealed class CrossTaskContrastTests
{
    private const int Width = 6, Samples = 10, Negatives = 4, Batch = 3;
    private static readonly CrossTaskContrastOptions Settings = new() { ProjectionWidth = 5, Negatives = Negatives, Temperature = 0.5, Momentum = 0.25 };

    /// <summary>CMC's NCE loss written out: scores B×(K+1), positive first, already divided by Z.</summary>
    private static double Nce(Tensor p)
    {
        double noise = Negatives / (double)Samples, eps = 1e-7, sum = 0;
        var v = p.to(ScalarType.Float64).data<double>().ToArray();
        for (int b = 0; b < Batch; b++)
            for (int j = 0; j <= Negatives; j++)
            {
                double x = v[b * (Negatives + 1) + j];
                sum += j == 0 ? Math.Log(x / (x + noise + eps)) : Math.Log(noise / (x + noise + eps));
            }
        return -sum / Batch;
    }

    [TestMethod]
    public void The_loss_is_CMCs_NCE_in_both_directions_and_the_batch_moves_the_memory()
    {
        manual_seed(1);
        using var contrast = new CrossTaskContrast("contrast", 2, Width, Samples, Settings);
        using var scope = NewDisposeScope();
        var weights = contrast.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var features = TensorAssert.Randn(2, Batch, 2, Width).requires_grad_();
        var indices = tensor(new long[] { 7, 2, 5 });
        var negatives = tensor(new long[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1 }).view(Batch, Negatives);

        // Written out from the weights before the call: project, normalise, score against the other task's bank.
        Tensor Project(int t) => F.normalize(F.linear(F.relu(F.linear(features.select(1, t), weights[$"projections.{t}.in.weight"], weights[$"projections.{t}.in.bias"])),
            weights[$"projections.{t}.out.weight"], weights[$"projections.{t}.out.bias"]), p: 2, dim: 1);
        var bank = weights["memory"];
        var candidates = cat([indices.unsqueeze(1), negatives], 1);
        Tensor Scores(Tensor f, int other) => bank[other].index_select(0, candidates.flatten()).view(Batch, Negatives + 1, -1).bmm(f.unsqueeze(-1)).squeeze(-1).div(0.5).exp();
        var s01 = Scores(Project(0), 1);
        var s10 = Scores(Project(1), 0);
        double expected = Nce(s01 / (s01.mean() * Samples)) + Nce(s10 / (s10.mean() * Samples));   // Z from this first batch

        var loss = contrast.Loss(features, indices, negatives);
        Assert.AreEqual(expected, loss.item<float>(), 1e-4 * Math.Abs(expected));
        CollectionAssert.AreEqual(new[] { (s01.mean() * Samples).item<float>(), (s10.mean() * Samples).item<float>() },
            contrast.state_dict()["normalisers"][0].data<float>().ToArray(), "Z of both directions, fixed at the first batch");

        var moved = F.normalize(bank[0].index_select(0, indices) * 0.25 + Project(0).detach() * 0.75, p: 2, dim: 1);
        TensorAssert.Close(moved, contrast.state_dict()["memory"][0].index_select(0, indices), 1e-6, "the batch's rows of task 0's bank");
        TensorAssert.Close(bank[1][0], contrast.state_dict()["memory"][1][0], 0, "rows outside the batch are kept");

        loss.backward();
        Assert.IsTrue(features.grad!.abs().sum().item<float>() > 0, "the features get a gradient");
        foreach (var (name, p) in contrast.named_parameters())
            Assert.IsTrue(p.grad is { } g && g.abs().sum().item<float>() > 0, $"{name} gets a gradient");

        // Later batches keep Z.
        var z = contrast.state_dict()["normalisers"].clone();
        contrast.Loss(features.detach() * 3, indices, negatives);
        TensorAssert.Close(z, contrast.state_dict()["normalisers"], 0, "Z stays fixed");
    }

    private static MultiTaskNetworkOptions Net(TaskSpecs tasks) => MultiTaskNetworkOptions.Tiny(tasks.Specs) with
    {
        ImageHeight = 32, ImageWidth = 32, Width = 32, Heads = 2, Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
    };

    private sealed record TaskSpecs(Microsoft.ML.Kem.Tasks.TaskSpec[] Specs);

    [TestMethod]
    public void Training_with_it_is_seeded_changes_the_weights_and_resumes_exactly()
    {
        var data = TinyData.Make(TinyData.SegDepth, 8, 32, 32, seed: 5);
        using var folder = new TempFolder();
        var options = new TrainingOptions
        {
            Epochs = 2, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu,
            CrossTaskContrast = new CrossTaskContrastOptions { Weight = 1, ProjectionWidth = 8, Negatives = 6 },
        };
        float[] Train(TrainingOptions o, int seed = 9)
        {
            manual_seed(seed);
            using var network = new MultiTaskNetwork(Net(new TaskSpecs(TinyData.SegDepth)));
            MultiTaskTrainingLoop.Fit(network, data, null, o);
            return network.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        }
        var contrasted = Train(options);
        CollectionAssert.AreEqual(contrasted, Train(options), "same seed, same weights");
        CollectionAssert.AreNotEqual(contrasted, Train(options with { CrossTaskContrast = null }), "the term changes training");

        // Stopped after epoch 1 (a one-epoch run's checkpoint would not match: Epochs is part of the setup), then resumed.
        string path = folder.File("contrast.safetensors");
        using (var cancel = new CancellationTokenSource())
        {
            manual_seed(9);
            using var network = new MultiTaskNetwork(Net(new TaskSpecs(TinyData.SegDepth)));
            Assert.ThrowsExactly<OperationCanceledException>(() => MultiTaskTrainingLoop.Fit(network, data, null, options with { CheckpointPath = path, ReportEverySteps = 1 },
                new CancelAt(2, cancel), cancellation: cancel.Token));
        }
        CollectionAssert.AreEqual(contrasted, Train(options with { CheckpointPath = path }, seed: 77), "resumed: memory banks, Z and negatives as uninterrupted");
    }

    [TestMethod]
    public void Without_DecayAllParameters_the_projections_biases_are_spared_as_the_networks_are()
    {
        manual_seed(4);
        using var network = new MultiTaskNetwork(Net(new TaskSpecs(TinyData.SegDepth)));
        using var loss = new Microsoft.ML.Kem.Tasks.MultiTaskLoss("loss", TinyData.SegDepth, Microsoft.ML.Kem.Tasks.LossWeighting.Fixed);
        using var contrast = new CrossTaskContrast("contrast", 2, 32, Samples, Settings);
        var decays = TrainingStep.DecaysWeights(network, loss, contrast);
        foreach (var (name, p) in contrast.named_parameters())
            Assert.AreEqual(!name.EndsWith("bias"), decays(p), name);
    }

    [TestMethod]
    public void Bad_settings_and_a_network_without_task_features_are_refused_by_name()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { CrossTaskContrast = new() { Negatives = 0 } }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { CrossTaskContrast = new() { Momentum = 1 } }.Validate());
        Assert.ThrowsExactly<ArgumentException>(() => new CrossTaskContrast("c", 1, Width, Samples, Settings));

        var data = TinyData.Make(TinyData.SegDepth, 4, 32, 32, seed: 6);
        manual_seed(2);
        using var network = new SequentialCrossAttentionNetwork(Net(new TaskSpecs(TinyData.SegDepth)) with
        {
            Architecture = NetworkArchitecture.SequentialCrossAttention, Backbone = BackboneKind.MultiScale,
        });
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => MultiTaskTrainingLoop.Fit(network, data, null, new TrainingOptions
        {
            Epochs = 1, BatchSize = 2, Device = ComputeDevice.Cpu, CrossTaskContrast = new(),
        }));
        StringAssert.Contains(error.Message, "SequentialCrossAttentionNetwork");
    }
}
