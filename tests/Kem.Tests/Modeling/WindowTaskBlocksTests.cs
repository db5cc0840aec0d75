using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

namespace Kem.Tests.Modeling;

/// <summary>
/// MultiTaskNetworkOptions.TaskBlocks = Window: the task encoders E_t (b) and decoders D_t (d1) are Swin blocks on the token grid
/// ("same block type as a8", MODEL-SPEC §1), odd ones shifted by ⌊w/2⌋, with the window of the neck (TokenWindow).
/// </summary>
[TestClass]
public sealed class WindowTaskBlocksTests
{
    // ConvStem 64×64 → 8×8 token grid; window 4 → 2×2 windows, odd blocks shifted by 2.
    private static MultiTaskNetworkOptions Options() =>
        MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            Width = 16, Heads = 2, MlpRatio = 2, BackboneDepth = 1, EncoderDepth = 2, DecoderDepth = 2,
            TaskBlocks = BlockAttention.Window, MultiScale = new MultiScaleOptions { Window = 4 },
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 2 },
        };

    [TestMethod]
    public void Window_task_blocks_are_swin_blocks_with_odd_ones_shifted()
    {
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(Options());
        var modules = net.named_modules().ToDictionary(m => m.name, m => m.module);
        foreach (var stack in new[] { "encoders.0", "encoders.1", "decoders.0", "decoders.1" })
        {
            Assert.IsInstanceOfType<SwinBlock>(modules[$"{stack}.0"], $"{stack}.0 is a window block");
            Assert.AreEqual(0, ((SwinBlock)modules[$"{stack}.0"]).Shift, $"{stack}.0 is not shifted");
            Assert.AreEqual(2, ((SwinBlock)modules[$"{stack}.1"]).Shift, $"{stack}.1 is shifted by ⌊4/2⌋");
        }
        var shapes = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        CollectionAssert.AreEqual(new long[] { 7 * 7, 2 }, shapes["encoders.1.1.relative_position_bias_table"]);   // (2w−1)²×h
        CollectionAssert.AreEqual(new long[] { 7 * 7, 2 }, shapes["decoders.0.0.relative_position_bias_table"]);
        Assert.AreEqual(8, shapes.Keys.Count(k => k.EndsWith("relative_position_bias_table")), "2 tasks × (2 encoder + 2 decoder) blocks; the ConvStem neck stays global");

        torch.manual_seed(1);
        using var global = new MultiTaskNetwork(Options() with { TaskBlocks = BlockAttention.Global });
        Assert.IsInstanceOfType<TransformerBlock>(global.named_modules().Single(m => m.name == "encoders.0.0").module, "Global (the default) keeps TransformerBlocks");
        Assert.IsFalse(global.named_parameters().Any(p => p.name.EndsWith("relative_position_bias_table")));
    }

    [TestMethod]
    public void Window_task_blocks_keep_the_token_and_map_shapes()
    {
        torch.manual_seed(2);
        using var net = new MultiTaskNetwork(Options());
        using var scope = torch.NewDisposeScope();
        var images = torch.rand(2, 3, 64, 64) * 255;
        var outputs = net.forward(images);
        CollectionAssert.AreEqual(new long[] { 2, TinyData.Classes, 64, 64 }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, 64, 64 }, outputs[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 2, 64, 16 }, net.EncodeTasks(images).shape);                   // B×T×n×d, 8×8 grid
        Assert.IsTrue(outputs.All(o => o.isfinite().all().item<bool>()));
    }

    [TestMethod]
    public void Window_task_blocks_pad_a_grid_that_is_not_a_multiple_of_the_window()
    {
        torch.manual_seed(3);
        // TinySwin at 64×64, stride 8: 8×8 token grid with the Swin window 3 → padded to 9×9, odd blocks shifted by 1.
        var o = Options() with
        {
            Backbone = BackboneKind.TinySwin, Swin = MultiScaleOptions.TinySwin with { FirstWidth = 8, Depths = [1, 1, 1, 1], Heads = [1, 2, 2, 4], Window = 3 },
        };
        Assert.AreEqual(3, o.TokenWindow, "the Swin backbones' window");
        using var net = new MultiTaskNetwork(o);
        Assert.AreEqual(1, ((SwinBlock)net.named_modules().Single(m => m.name == "decoders.1.1").module).Shift);
        using var scope = torch.NewDisposeScope();
        CollectionAssert.AreEqual(new long[] { 1, 1, 64, 64 }, net.forward(torch.rand(1, 3, 64, 64) * 255)[1].shape);
    }

    [TestMethod]
    public void A_short_fit_with_window_task_blocks_lowers_the_loss()
    {
        var data = TinyData.Make(TinyData.SegDepth, 8, 64, 64, seed: 4);
        torch.manual_seed(4);
        using var net = new MultiTaskNetwork(Options());
        var result = MultiTaskTrainingLoop.Fit(net, data, null, new TrainingOptions
        {
            Epochs = 4, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu,
        });
        Assert.IsLessThan(result.History[0].TrainLoss, result.History[^1].TrainLoss);
    }

    [TestMethod]
    public void Validation_says_what_to_change()
    {
        var architecture = Assert.ThrowsExactly<ArgumentException>(() => (Options() with
        {
            Architecture = NetworkArchitecture.ComputationSharing,
            ComputationSharing = new ComputationSharingOptions { BaseTask = TinyData.Depth.Name },
        }).Validate());
        StringAssert.Contains(architecture.Message, "SharedEncoder architecture only");
        StringAssert.Contains(architecture.Message, "TaskBlocks = Global");
        var window = Assert.ThrowsExactly<ArgumentException>(() => (Options() with { MultiScale = new MultiScaleOptions { Window = 0 } }).Validate());
        StringAssert.Contains(window.Message, "MultiScale.Window is 0");
        (Options() with { MultiScale = new MultiScaleOptions { Window = 0 }, TaskBlocks = BlockAttention.Global }).Validate();   // unused when Global
    }
}
