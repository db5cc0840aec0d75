using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class ComputationSharingTests
{
    private const int H = 32, W = 32;
    private static readonly TaskSpec[] ThreeTasks = { TaskSpec.Segmentation(4), TaskSpec.DepthTask(), TaskSpec.NormalsTask() };

    internal static MultiTaskNetworkOptions Tiny(ComputationSharingOptions sharing, params TaskSpec[] tasks) => MultiTaskNetworkOptions.Tiny(tasks) with
    {
        Architecture = NetworkArchitecture.ComputationSharing, ImageHeight = H, ImageWidth = W, Width = 16, Heads = 2, MlpRatio = 2,
        BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1, ComputationSharing = sharing,
    };

    private static ComputationSharingNetwork Build(ComputationSharingOptions sharing, int seed, params TaskSpec[] tasks)
    {
        torch.manual_seed(seed);
        return (ComputationSharingNetwork)MultiTaskModel.Create(Tiny(sharing, tasks));
    }

    private static void RandomiseDeltas(ComputationSharingNetwork net, float scale)
    {
        using var _ = torch.no_grad();
        foreach (var (name, p) in net.named_parameters().Where(p => p.name.Contains(".deltas.")))
            p.copy_(torch.randn_like(p) * scale);
    }

    [TestMethod]
    public void Forward_gives_one_map_per_task_with_the_first_task_as_default_base()
    {
        using var net = Build(new ComputationSharingOptions(), 1, ThreeTasks);
        Assert.AreEqual("Segmentation", net.BaseTask.Name);
        CollectionAssert.AreEqual(new[] { "Depth", "Normals" }, net.SubTasks.Select(t => t.Name).ToArray());
        using var scope = torch.NewDisposeScope();
        var outputs = net.forward(torch.rand(2, 3, H, W) * 255);
        CollectionAssert.AreEqual(new long[] { 2, 4, H, W }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, H, W }, outputs[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, H, W }, outputs[2].shape);
        using var depthBase = Build(new ComputationSharingOptions { BaseTask = "Depth" }, 1, ThreeTasks);
        CollectionAssert.AreEqual(new[] { "Segmentation", "Normals" }, depthBase.SubTasks.Select(t => t.Name).ToArray());
    }

    [TestMethod]
    public void Base_path_of_a_delta_block_equals_the_plain_transformer_block()
    {
        torch.manual_seed(2);
        using var block = new DeltaTransformerBlock("b", 16, 2, 2, subTasks: 1);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(2, 5, 16);
        var y = block.ForwardBase(x, out _);
        Assert.IsLessThan(1e-5f, (y - block.Base.forward(x)).abs().max().item<float>());
    }

    [TestMethod]
    public void Sub_task_with_dense_deltas_and_no_threshold_equals_a_block_holding_base_plus_delta_weights()
    {
        torch.manual_seed(3);
        using var block = new DeltaTransformerBlock("b", 16, 2, 2, subTasks: 2);
        using var summed = new TransformerBlock("s", 16, 2, 2);
        using var scope = torch.NewDisposeScope();
        using (torch.no_grad())
        {
            foreach (var (_, p) in block.Delta(1).named_parameters()) p.copy_(torch.randn_like(p) * 0.2);
            var deltas = block.Delta(1).Sparse(1.0);
            var baseWeights = block.Base.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in summed.named_parameters()) p.copy_(baseWeights[name] + deltas[name]);
        }
        var xBase = torch.randn(2, 5, 16);
        var xSub = xBase + torch.randn(2, 5, 16) * 0.3;
        block.ForwardBase(xBase, out var trace);
        var y = block.ForwardSubTask(1, xSub, trace, density: 1.0, threshold: 0f);
        Assert.IsLessThan(1e-4f, (y - summed.forward(xSub)).abs().max().item<float>(),
            "y_base + W_base·δx + ΔW·x_sub + Δb is the sub-task's own block output");
    }

    [TestMethod]
    public void Sparse_deltas_keep_exactly_the_largest_magnitude_fraction_of_every_tensor()
    {
        torch.manual_seed(4);
        using var block = new DeltaTransformerBlock("b", 16, 2, 2, subTasks: 1);
        using var scope = torch.NewDisposeScope();
        using (torch.no_grad())
            foreach (var (_, p) in block.Delta(0).named_parameters()) p.copy_(torch.randn_like(p));
        var dense = block.Delta(0).Sparse(1.0);
        foreach (var (name, sparse) in block.Delta(0).Sparse(0.25))
        {
            long expected = (long)Math.Ceiling(0.25 * sparse.numel());
            Assert.AreEqual(expected, sparse.count_nonzero().item<long>(), name);
            var kept = sparse.ne(0);
            var magnitude = dense[name].abs();
            var smallestKept = magnitude.masked_fill(kept.logical_not(), float.PositiveInfinity).min().item<float>();
            var largestDropped = magnitude.masked_fill(kept, 0).max().item<float>();
            Assert.IsGreaterThanOrEqualTo(largestDropped, smallestKept, $"{name}: a dropped entry is larger than a kept one");
        }
        Assert.AreEqual(block.Delta(0).parameters().Sum(p => (long)Math.Ceiling(0.25 * p.numel())), block.Delta(0).NonZeros(0.25));
    }

    [TestMethod]
    public void Zero_deltas_share_every_activation_so_sub_tasks_cost_only_attention_and_heads()
    {
        using var net = Build(new ComputationSharingOptions { ActivationThreshold = 0f }, 5, ThreeTasks);
        using var scope = torch.NewDisposeScope();
        var images = torch.rand(2, 3, H, W) * 255;
        var cost = net.MeasureCost(images);
        var o = net.Options;
        long n = o.TokensPerTask, blocks = o.EncoderDepth + o.DecoderDepth;
        foreach (var sub in cost.SubTasks)
        {
            Assert.AreEqual(0L, sub.LinearMacs, sub.Task);
            Assert.AreEqual(0.0, sub.ActivationDensity, sub.Task);
            Assert.AreEqual(0L, sub.DeltaNonZeros, sub.Task);
            Assert.AreEqual(blocks * 2 * n * n * o.Width, sub.AttentionMacs, sub.Task);
        }
        long baseModel = ModelCost.Backbone(o) + blocks * ModelCost.TransformerBlock(n, o.Width, o.MlpRatio) + ModelCost.DenseHead(ThreeTasks[0], o.Width, 4, 4);
        Assert.AreEqual(baseModel + cost.SubTasks.Sum(s => s.AttentionMacs + s.HeadMacs), cost.SharedMacs);
    }

    [TestMethod]
    public void Parameter_and_mac_counts_against_separate_single_task_models()
    {
        var sparse = new ComputationSharingOptions { DeltaDensity = 0.1, ActivationThreshold = 0.02f };
        using var net = Build(sparse, 6, ThreeTasks);
        RandomiseDeltas(net, 0.05f);
        using var scope = torch.NewDisposeScope();
        var images = torch.rand(2, 3, H, W) * 255;
        var cost = net.MeasureCost(images);

        // the separate single-task models, built and counted on their own
        long separateParameters = 0, separateMacs = 0;
        foreach (var task in ThreeTasks)
        {
            using var single = Build(sparse, 7, task);
            separateParameters += single.parameters().Sum(p => p.numel());
            var own = single.MeasureCost(images);
            Assert.AreEqual(own.SeparateMacs, own.SharedMacs, "one task alone shares nothing");
            separateMacs += own.SharedMacs;
        }
        Assert.AreEqual(separateParameters, cost.SeparateParameters);
        Assert.AreEqual(separateMacs, cost.SeparateMacs);

        long deltaEntries = net.Blocks.Sum(b => b.Base.parameters().Sum(p => p.numel()));
        long keptPerSubTask = net.Blocks.Sum(b => b.Base.parameters().Sum(p => (long)Math.Ceiling(0.1 * p.numel())));
        long heads = net.named_parameters().Where(p => p.name.StartsWith("heads.")).Sum(p => p.parameter.numel());
        long backbone = net.named_parameters().Where(p => p.name.StartsWith("backbone.")).Sum(p => p.parameter.numel());
        Assert.AreEqual(backbone + deltaEntries + heads + 2 * keptPerSubTask, cost.StoredParameters);
        Assert.IsTrue(cost.SubTasks.All(s => s.DeltaEntries == deltaEntries && s.DeltaNonZeros == keptPerSubTask));
        Assert.IsGreaterThan(0.5, cost.ParameterSaving, cost.ToString());
        Assert.IsLessThan(cost.SeparateMacs, cost.SharedMacs);
        Assert.IsTrue(cost.SubTasks.All(s => s.ActivationDensity is > 0 and < 1), cost.ToString());

        // nothing sparse (dense deltas, no threshold): every sub-task recomputes its blocks, only the backbone is shared
        using var dense = Build(new ComputationSharingOptions { DeltaDensity = 1, ActivationThreshold = 0 }, 6, ThreeTasks);
        RandomiseDeltas(dense, 0.05f);
        var denseCost = dense.MeasureCost(images);
        Assert.AreEqual(cost.SeparateMacs - 2 * ModelCost.Backbone(dense.Options), denseCost.SharedMacs);
        Assert.AreEqual(cost.SeparateParameters - 2 * backbone, denseCost.StoredParameters);
    }

    [TestMethod]
    public void Gradients_reach_every_module_and_sub_task_losses_never_reach_the_base()
    {
        using var net = Build(new ComputationSharingOptions(), 8, TinyData.SegDepth);
        using var scope = torch.NewDisposeScope();
        var images = torch.rand(2, 3, H, W) * 255;
        var all = net.ForwardTraining(images);
        Assert.IsNotNull(all.Penalty, "ActivationPenalty > 0 gives a penalty");
        (all.Predictions.Select(o => o.square().mean()).Aggregate((a, b) => a + b) + all.Penalty).backward();
        var missing = net.named_parameters().Where(p => p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0)
            .Select(p => p.name).ToList();
        Assert.IsEmpty(missing, "parameters without gradient: " + string.Join(", ", missing));

        net.zero_grad();
        net.forward(images)[1].square().mean().backward();   // the depth sub-task's loss alone
        var reached = net.named_parameters()
            .Where(p => !p.name.Contains(".deltas.") && !p.name.StartsWith("heads.1.") && p.parameter.grad is { } g && g.abs().sum().item<float>() > 0)
            .Select(p => p.name).ToList();
        Assert.IsEmpty(reached, "the sub-task's loss moved base weights: " + string.Join(", ", reached));
    }

    [TestMethod]
    public void Unknown_base_task_and_bad_density_are_rejected_with_the_fix()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => MultiTaskModel.Create(Tiny(new ComputationSharingOptions { BaseTask = "Edges" }, TinyData.SegDepth)));
        StringAssert.Contains(e.Message, "'Edges' is not one of the tasks [Segmentation, Depth]");
        var d = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MultiTaskModel.Create(Tiny(new ComputationSharingOptions { DeltaDensity = 2 }, TinyData.SegDepth)));
        StringAssert.Contains(d.Message, "[0, 1]");
    }

    [TestMethod]
    public void Fit_on_tiny_data_beats_the_trivial_baseline_and_saves_parameters_and_macs()
    {
        var train = TinyData.Make(TinyData.SegDepth, 32, H, W, seed: 41);
        var test = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 42);
        using var net = Build(new ComputationSharingOptions(), 9, TinyData.SegDepth);
        TinyData.AssertFitBeatsBaseline(net, train, test, new TrainingOptions
        {
            Epochs = 10, BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 4, Device = ComputeDevice.Cpu, ReportEverySteps = 100,
        });
        using var scope = torch.NewDisposeScope();
        var cost = net.MeasureCost(torch.tensor(Enumerable.Range(0, 4).SelectMany(i => test.Image(i).ToArray()).ToArray(), new long[] { 4, 3, H, W }));
        Assert.IsGreaterThan(0.3, cost.ParameterSaving, cost.ToString());
        Assert.IsGreaterThan(0.1, cost.MacSaving, cost.ToString());
    }
}
