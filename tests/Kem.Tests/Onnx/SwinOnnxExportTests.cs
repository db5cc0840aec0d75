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
/// position bias and the shift mask in the stages and the neck. onnxruntime's scores are within 1e-4 of TorchSharp's.
/// </summary>
[TestClass]
public sealed class SwinOnnxExportTests
{
    private const int Batch = 2;
    private const double Tolerance = 1e-4;

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
    public void Swin_onnx_graph_matches_torchsharp_within_1e4(string configuration)
    {
        using var net = Network(Configuration(configuration));
        OnnxParity.AssertMatches(net, configuration, Batch, Tolerance);
    }

    [TestMethod]
    public void Swin_network_read_back_from_onnx_has_the_same_options_and_weights()
    {
        var o = Configuration("SwinPaddedStride16");
        using var net = Network(o);
        using var rebuilt = KemOnnx.ReadNetwork(KemOnnx.Export(net), "swin.onnx");
        Assert.AreEqual(o with { Tasks = rebuilt.Options.Tasks }, rebuilt.Options, "options (with the Swin sizes) round-trip through the metadata JSON");
        var restored = rebuilt.state_dict();
        foreach (var (key, t) in net.state_dict())
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} differs after the round trip");
    }
}
