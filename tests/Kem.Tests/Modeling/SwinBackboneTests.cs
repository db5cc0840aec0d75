using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class SwinBackboneTests
{
    // The TinySwin layout (4 stages, depths 2, a6 from stage 2) at test widths: 8/16/32/64 channels, window 2.
    private static readonly MultiScaleOptions TestSwin = MultiScaleOptions.TinySwin with { FirstWidth = 8, Heads = [1, 2, 2, 4], Window = 2 };

    private static MultiTaskNetworkOptions Options(BackboneKind kind = BackboneKind.TinySwin) =>
        MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask()) with
        {
            Backbone = kind, Swin = TestSwin, Width = 16, Heads = 2, BackboneDepth = 2, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 2 },
        };

    [TestMethod]
    public void TinySwin_network_maps_64x64_images_to_full_size_task_maps()
    {
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(Options());
        using var scope = torch.NewDisposeScope();
        var outputs = net.forward(torch.rand(2, 3, 64, 64) * 255);
        CollectionAssert.AreEqual(new long[] { 2, 3, 64, 64 }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, 64, 64 }, outputs[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 2, 64, 16 }, net.EncodeTasks(torch.rand(2, 3, 64, 64)).shape);   // B×T×n×d, 8×8 grid
    }

    [TestMethod]
    public void Swin_parameters_follow_the_stage_block_layout()
    {
        torch.manual_seed(2);
        using var net = new MultiTaskNetwork(Options());
        var shapes = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        CollectionAssert.AreEqual(new long[] { 8, 3, 4, 4 }, shapes["backbone.stem.scales.patchEmbed.weight"]);             // a1: 4×4 stride 4
        CollectionAssert.AreEqual(new long[] { 9, 4 }, shapes["backbone.stem.scales.stages.3.blocks.1.relative_position_bias_table"]);
        CollectionAssert.AreEqual(new long[] { 16, 32 }, shapes["backbone.stem.scales.merges.0.reduction.weight"]);          // into stage 2
        CollectionAssert.AreEqual(new long[] { 16, 16 + 32 + 64, 1, 1 }, shapes["backbone.stem.fuse.weight"]);             // a7 from stages 2–4
        Assert.IsFalse(shapes.ContainsKey("backbone.stem.scales.outputNorms.3.weight"), "a6 normalises the three fused stages only");
        CollectionAssert.AreEqual(new long[] { 9, 2 }, shapes["backbone.blocks.1.relative_position_bias_table"]);            // neck a8: Window blocks
        Assert.AreEqual(2, net.named_parameters().Count(p => p.name.StartsWith("backbone.stem.scales.stages.2.blocks.") && p.name.EndsWith("bias_table")));
        Assert.IsFalse(net.named_buffers().Any(b => b.name.StartsWith("backbone.stem.scales.stages.") && b.name.EndsWith("positions")), "Swin stages have no absolute positions");
    }

    [TestMethod]
    public void Presets_are_the_spec_sizes()
    {
        var tiny = MultiScaleOptions.TinySwin;
        CollectionAssert.AreEqual(new[] { 64, 128, 256, 512 }, Enumerable.Range(0, 4).Select(tiny.WidthAt).ToArray());
        Assert.AreEqual(896, tiny.FusedScales.Sum(tiny.WidthAt));
        Assert.AreEqual(32, tiny.CoarsestStride);
        var swinT = MultiScaleOptions.SwinT;
        Assert.AreEqual(1344, swinT.FusedScales.Sum(swinT.WidthAt));
        CollectionAssert.AreEqual(new[] { 2, 2, 6, 2 }, Enumerable.Range(0, 4).Select(swinT.DepthAt).ToArray());
        CollectionAssert.AreEqual(new[] { 3, 6, 12, 24 }, Enumerable.Range(0, 4).Select(s => swinT.HeadsAt(s, 64)).ToArray());
        // The full TinySwin network builds with the preset (window 7, padding on the 2×2 coarsest grid).
        torch.manual_seed(3);
        using var net = new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(2), TaskSpec.DepthTask()) with { Backbone = BackboneKind.TinySwin });
        using var scope = torch.NewDisposeScope();
        CollectionAssert.AreEqual(new long[] { 1, 2, 64, 64 }, net.forward(torch.rand(1, 3, 64, 64))[0].shape);
    }

    [TestMethod]
    public void Window_block_cost_is_linear_in_the_tokens_and_counts_the_padding()
    {
        long d = 64, r = 4, w = 7;
        Assert.AreEqual(4 * ModelCost.WindowBlock(14, 14, d, r, w), ModelCost.WindowBlock(28, 28, d, r, w));      // global: ×16
        Assert.AreEqual(16 * 15 * d * d * (4 + 2 * r) + 2 * 21 * 21 * w * w * d, ModelCost.WindowBlock(16, 15, d, r, w)); // padded to 21×21
        Assert.IsLessThan(ModelCost.TransformerBlock(28 * 28, d, r), ModelCost.WindowBlock(28, 28, d, r, w));
        Assert.IsGreaterThan(0L, ModelCost.Backbone(Options()));
    }

    [TestMethod]
    public void Validation_says_what_to_change()
    {
        var stride = Assert.ThrowsExactly<ArgumentException>(() => (Options() with { TokenStride = 4 }).Validate());
        StringAssert.Contains(stride.Message, "TokenStride = 8 or 16");
        // Image sizes: only the patch embedding constrains them (SwinOddGridTests); merging pads odd grids.
        var heads = Assert.ThrowsExactly<ArgumentException>(() => (Options() with { Swin = TestSwin with { Heads = [3, 2, 2, 4] } }).Validate());
        StringAssert.Contains(heads.Message, "Swin.Heads[0] = 3");
    }

    [TestMethod]
    public void A_short_fit_lowers_the_loss_and_FreezeBackbone_keeps_a6_to_a8_trainable()
    {
        var data = TinyData.Make(TinyData.SegDepth, 8, 64, 64, seed: 4);
        torch.manual_seed(4);
        using var net = new MultiTaskNetwork(Options() with { Tasks = TinyData.SegDepth });
        var result = MultiTaskTrainingLoop.Fit(net, data, null, new TrainingOptions
        {
            Epochs = 4, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu,
        });
        Assert.IsLessThan(result.History[0].TrainLoss, result.History[^1].TrainLoss);

        torch.manual_seed(5);
        using var frozen = new MultiTaskNetwork(Options() with { FreezeBackbone = true });
        var trainable = frozen.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToArray();
        Assert.IsFalse(trainable.Any(n => n.StartsWith("backbone.stem.scales.stages.") || n.StartsWith("backbone.stem.scales.patchEmbed")), "a1–a5 frozen");
        Assert.IsTrue(trainable.Contains("backbone.stem.scales.outputNorms.0.weight"), "a6 trains");
        Assert.IsTrue(trainable.Contains("backbone.stem.fuse.weight"), "a7 trains");
        Assert.IsTrue(trainable.Contains("backbone.blocks.0.relative_position_bias_table"), "a8 trains");
    }
}
