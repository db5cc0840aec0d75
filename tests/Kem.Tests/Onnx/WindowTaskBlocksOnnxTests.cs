using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Onnx.Proto;
using TorchSharp;

namespace Kem.Tests.Onnx;

/// <summary>
/// The exporter on Window task encoders and decoders (MultiTaskNetworkOptions.TaskBlocks, MODEL-SPEC §1 b, d1): they go through
/// SwinGraph's window blocks, onnxruntime's scores are within 1e-4 of TorchSharp's, and ReadNetwork rebuilds them.
/// </summary>
[TestClass]
public sealed class WindowTaskBlocksOnnxTests
{
    private const int Batch = 2;
    private const double Tolerance = 1e-4;

    private static MultiTaskNetworkOptions Configuration(string name)
    {
        var o = MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            Width = 16, Heads = 2, MlpRatio = 2, BackboneDepth = 1, EncoderDepth = 2, DecoderDepth = 2, TaskBlocks = BlockAttention.Window,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        };
        return name switch
        {
            // ConvStem 64×64: 8×8 token grid, window 4 (MultiScale.Window), 2×2 windows, odd blocks shifted by 2
            "ConvStemWindow4" => o with { MultiScale = new MultiScaleOptions { Window = 4 } },
            // TinySwin 64×64, stride 8: 8×8 token grid with the Swin window 3 → padded to 9×9, odd blocks shifted by 1 (stages and neck too)
            "TinySwinPaddedWindow3" => o with
            {
                Backbone = BackboneKind.TinySwin, BackboneDepth = 2,
                Swin = MultiScaleOptions.TinySwin with { FirstWidth = 8, Depths = [1, 1, 1, 1], Heads = [1, 2, 2, 4], Window = 3 },
            },
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
        };
    }

    [TestMethod]
    [DataRow("ConvStemWindow4")]
    [DataRow("TinySwinPaddedWindow3")]
    public void Window_task_blocks_onnx_graph_matches_torchsharp_within_1e4(string configuration)
    {
        using var net = SwinOnnxExportTests.Network(Configuration(configuration));   // relative position bias tables ~ N(0, 0.5)
        OnnxParity.AssertMatches(net, configuration, Batch, Tolerance);
    }

    [TestMethod]
    public void The_graph_runs_the_task_blocks_as_window_blocks_not_global_ones()
    {
        using var net = SwinOnnxExportTests.Network(Configuration("ConvStemWindow4"));
        var model = ModelProto.Parser.ParseFrom(KemOnnx.Export(net));
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        foreach (var stack in new[] { "encoders.0", "encoders.1", "decoders.0", "decoders.1" })
            foreach (var block in new[] { 0, 1 })
            {
                // A global export would leave these unread (stored in the metadata, not used by the graph).
                Assert.Contains($"{stack}.{block}.relative_position_bias_table", initializers, $"{stack}.{block}: the graph gathers its relative position bias");
                Assert.Contains($"{stack}.{block}.relative_position_index", initializers);
            }
        Assert.Contains("encoders.0.1.attention_mask", initializers, "the shifted block applies its shift mask");

        // And the window blocks compute something a global block with the same weights does not: parity at 1e-4 tells them apart.
        torch.manual_seed(11);
        using var global = MultiTaskModel.Create(net.Options with { TaskBlocks = BlockAttention.Global });
        global.load_state_dict(net.state_dict(), strict: false);
        global.eval();
        var pixels = OnnxExportTests.Pixels(1, 64, 64);
        var window = Inference.Predict(net, pixels, 1);
        var asGlobal = Inference.Predict(global, pixels, 1);
        double diff = window[0].Scores.Zip(asGlobal[0].Scores, (a, b) => (double)Math.Abs(a - b)).Max();
        Assert.IsGreaterThan(100 * Tolerance, diff, $"window vs global task blocks differ by only {diff:E2}");
    }

    [TestMethod]
    public void Network_read_back_from_onnx_keeps_window_task_blocks_and_weights()
    {
        var o = Configuration("TinySwinPaddedWindow3");
        using var net = SwinOnnxExportTests.Network(o);
        using var rebuilt = KemOnnx.ReadNetwork(KemOnnx.Export(net), "taskwin.onnx");
        Assert.AreEqual(BlockAttention.Window, rebuilt.Options.TaskBlocks, "TaskBlocks round-trips through the metadata JSON");
        Assert.AreEqual(o with { Tasks = rebuilt.Options.Tasks }, rebuilt.Options);
        Assert.IsInstanceOfType<SwinBlock>(rebuilt.named_modules().Single(m => m.name == "decoders.1.1").module);
        var restored = rebuilt.state_dict();
        CollectionAssert.AreEquivalent(net.state_dict().Keys.ToArray(), restored.Keys.ToArray());
        foreach (var (key, t) in net.state_dict())
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} differs after the round trip");
    }
}
