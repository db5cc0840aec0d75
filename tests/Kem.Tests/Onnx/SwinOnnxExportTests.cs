using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;

namespace Kem.Tests.Onnx;

/// <summary>
/// The exporter on the Swin backbones (MODEL-SPEC §1 `Window` blocks): window partition, roll, padding and crop, the relative
/// position bias and the shift mask in the stages and the neck, and the zero padding of odd grids before patch merging.
/// onnxruntime's scores are within 1e-4 of TorchSharp's.
/// </summary>
[TestClass]
public sealed class SwinOnnxExportTests
{
    private const int Batch = 2;
    private const double Tolerance = 1e-4;

    public TestContext TestContext { get; set; } = null!;

    private static MultiTaskNetworkOptions Configuration(string name)
    {
        var o = MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask()) with
        {
            Backbone = BackboneKind.TinySwin, Swin = MultiScaleOptions.TinySwin with { FirstWidth = 8, Heads = [1, 2, 2, 4], Window = 2 },
            Width = 16, Heads = 2, MlpRatio = 2, BackboneDepth = 2, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        };
        return name switch
        {
            // 64×64, window 2: grids 16/8/4/2 without padding, every odd block shifted; neck on the 8×8 grid
            "TinySwin" => o,
            // 96×96, window 5, stride-16 grid: grids 24/12/6/3 padded to 25/15/10/5, the 3×3 stage one unshifted window; neck 6×6 → 10×10
            "SwinPaddedStride16" => o with
            {
                Backbone = BackboneKind.SwinT, ImageHeight = 96, ImageWidth = 96, TokenStride = 16,
                Swin = MultiScaleOptions.SwinT with { FirstWidth = 8, Depths = [2, 1, 2, 1], Heads = [1, 2, 2, 4], Window = 5 },
            },
            // 40×56 (the Dev layout in small): grids 10×14 → 5×7 → 3×4 → 2×2, the merges into stages 3 and 4 pad (Pad);
            // token grid 5×7: stage 3 (3×4) and stage 4 (2×2) resized up by fractional factors
            "SwinOddGrids" => o with { ImageHeight = 40, ImageWidth = 56 },
            // 48×80, stride-16 grid 3×5: grids 12×20 → 6×10 → 3×5 → 2×3 (the last merge pads both sides); area ×2, identity, bilinear 2×3 → 3×5
            "SwinOddGridsStride16" => o with { ImageHeight = 48, ImageWidth = 80, TokenStride = 16 },
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
        };
    }

    internal static MultiTaskModel Network(MultiTaskNetworkOptions o)
    {
        var net = OnnxArchitectureExportTests.Network(o);
        using (torch.no_grad())
            foreach (var (name, p) in net.named_parameters())
                if (name.EndsWith("relative_position_bias_table")) p.normal_(0, 0.5);   // large enough that a wrong index would show
        return net;
    }

    [TestMethod]
    [DataRow("TinySwin")]
    [DataRow("SwinPaddedStride16")]
    [DataRow("SwinOddGrids")]
    [DataRow("SwinOddGridsStride16")]
    public void Swin_onnx_graph_matches_torchsharp_within_1e4(string configuration)
    {
        using var net = Network(Configuration(configuration));
        var worst = OnnxParity.AssertMatches(net, configuration, Batch, Tolerance);
        TestContext.WriteLine($"{configuration}: max |ORT − TorchSharp| = {worst:E2}");
    }

    [TestMethod]
    public void Patch_merging_exports_a_Pad_exactly_where_a_grid_is_odd()
    {
        // Window 1 everywhere, so the window blocks never pad and every Pad node is a patch merging's.
        int Pads(int height, int width)
        {
            var o = Configuration("TinySwin") with { ImageHeight = height, ImageWidth = width, Swin = Configuration("TinySwin").Swin! with { Window = 1 } };
            using var net = Network(o);
            var model = Microsoft.ML.Kem.Onnx.Proto.ModelProto.Parser.ParseFrom(KemOnnx.Export(net));
            return model.Graph.Node.Count(n => n.OpType == "Pad");
        }
        Assert.AreEqual(0, Pads(64, 64), "16 → 8 → 4 → 2: all even");
        Assert.AreEqual(2, Pads(40, 56), "10×14 → 5×7 (pad) → 3×4 (pad) → 2×2");
        Assert.AreEqual(1, Pads(32, 48), "8×12 → 4×6 → 2×3 (pad) → 1×2");
    }

    [TestMethod]
    [DataRow("SwinPaddedStride16")]
    [DataRow("SwinOddGrids")]
    public void Swin_network_read_back_from_onnx_has_the_same_options_and_weights(string configuration)
    {
        var o = Configuration(configuration);
        using var net = Network(o);
        using var rebuilt = KemOnnx.ReadNetwork(KemOnnx.Export(net), "swin.onnx");
        Assert.AreEqual(o with { Tasks = rebuilt.Options.Tasks }, rebuilt.Options, "options (with the Swin sizes) round-trip through the metadata JSON");
        var restored = rebuilt.state_dict();
        foreach (var (key, t) in net.state_dict())
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} differs after the round trip");
        var pixels = OnnxExportTests.Pixels(1, o.ImageHeight, o.ImageWidth, seed: 9);
        var before = Inference.Predict(net, pixels, 1);
        var after = Inference.Predict(rebuilt, pixels, 1);
        for (int t = 0; t < before.Length; t++)
            Assert.IsTrue(before[t].Scores.SequenceEqual(after[t].Scores), "the rebuilt network computes the same bits");
    }
}
