using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class SequentialCrossAttentionNetworkTests
{
    private const int H = 32, W = 32;

    internal static MultiTaskNetworkOptions Tiny(params TaskSpec[] tasks) => MultiTaskNetworkOptions.Tiny(tasks) with
    {
        Architecture = NetworkArchitecture.SequentialCrossAttention, ImageHeight = H, ImageWidth = W, Width = 16, Heads = 2, MlpRatio = 2,
        MultiScale = new MultiScaleOptions { FirstStride = 4, Scales = 3, FirstWidth = 8, BlocksPerScale = 1 },
        Sequential = new SequentialAttentionOptions { KeyStride = 16, HeadBlocks = 1 },
    };

    [TestMethod]
    public void Forward_gives_one_map_per_task_and_training_adds_one_auxiliary_map_per_scale_and_task()
    {
        torch.manual_seed(1);
        using var net = MultiTaskModel.Create(Tiny(TaskSpec.Segmentation(5), TaskSpec.DepthTask(), TaskSpec.NormalsTask()));
        Assert.IsInstanceOfType<SequentialCrossAttentionNetwork>(net);
        using var scope = torch.NewDisposeScope();
        var images = torch.rand(2, 3, H, W) * 255;
        var outputs = net.forward(images);
        CollectionAssert.AreEqual(new long[] { 2, 5, H, W }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, H, W }, outputs[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, H, W }, outputs[2].shape);
        Assert.IsGreaterThanOrEqualTo(0f, outputs[1].min().item<float>(), "depth ends in ReLU");
        var training = net.ForwardTraining(images);
        Assert.HasCount(3, training.AuxiliaryPredictions, "one set per scale");
        foreach (var set in training.AuxiliaryPredictions)
        {
            Assert.HasCount(3, set);
            CollectionAssert.AreEqual(new long[] { 2, 5, H, W }, set[0].shape);
            CollectionAssert.AreEqual(new long[] { 2, 3, H, W }, set[2].shape);
        }
        var without = MultiTaskModel.Create(Tiny(TaskSpec.Segmentation(5), TaskSpec.DepthTask()) with { Sequential = new SequentialAttentionOptions { DeepSupervision = false } });
        Assert.IsEmpty(without.ForwardTraining(images).AuxiliaryPredictions);
    }

    [TestMethod]
    public void Gradient_reaches_every_parameter_backbone_heads_ctam_csam_and_fusion()
    {
        torch.manual_seed(2);
        using var net = MultiTaskModel.Create(Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask()));
        using var scope = torch.NewDisposeScope();
        var result = net.ForwardTraining(torch.rand(2, 3, H, W) * 255);
        result.Predictions.Concat(result.AuxiliaryPredictions.SelectMany(a => a))
            .Select(o => o.square().mean()).Aggregate((a, b) => a + b).backward();
        var missing = net.named_parameters().Where(p => p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0)
            .Select(p => p.name).ToList();
        Assert.IsEmpty(missing, "parameters without gradient: " + string.Join(", ", missing));
        foreach (var prefix in new[] { "backbone.stages.2.", "taskHeads.1.", "crossTask.0.", "crossTask.2.", "crossScale.0.targets.0.", "predictionHeads.1." })
            Assert.IsTrue(net.named_parameters().Any(p => p.name.StartsWith(prefix)), $"no parameters under {prefix}");
    }

    [TestMethod]
    public void One_task_or_a_size_the_key_stride_cannot_tile_is_rejected_with_the_fix()
    {
        var one = Assert.ThrowsExactly<ArgumentException>(() => MultiTaskModel.Create(Tiny(TaskSpec.DepthTask())));
        StringAssert.Contains(one.Message, "at least 2 tasks");
        var stride = Assert.ThrowsExactly<ArgumentException>(() => MultiTaskModel.Create(Tiny(TaskSpec.DepthTask(), TaskSpec.Segmentation(2)) with
        {
            Sequential = new SequentialAttentionOptions { KeyStride = 64 },
        }));
        StringAssert.Contains(stride.Message, "KeyStride = 0");
        Assert.ThrowsExactly<ArgumentException>(() => new MultiTaskNetwork(Tiny(TaskSpec.DepthTask(), TaskSpec.Segmentation(2))));
    }

    [TestMethod]
    public void Fit_on_tiny_data_beats_the_trivial_baseline()
    {
        var train = TinyData.Make(TinyData.SegDepth, 32, H, W, seed: 31);
        var test = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 32);
        torch.manual_seed(4);
        using var net = MultiTaskModel.Create(Tiny(TinyData.SegDepth));
        TinyData.AssertFitBeatsBaseline(net, train, test, new TrainingOptions
        {
            Epochs = 10, BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 4, Device = ComputeDevice.Cpu, ReportEverySteps = 100,
        });
    }
}
