using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Onnx;

/// <summary>
/// The exporter beyond the shared encoder with a single-scale backbone: the MultiScale backbone (every resize case onto
/// the token grid), the sequential cross-attention design (CTAM with and without pooled keys, CSAM over 3 and 4 scales)
/// and computation sharing (sparse, dense and empty weight deltas, activation thresholds, a non-first base task).
/// onnxruntime's scores are within 1e-4 of TorchSharp's, and the network read back from the file is bit-identical.
/// </summary>
[TestClass]
public sealed class OnnxArchitectureExportTests
{
    private const int Batch = 2;
    private const double Tolerance = 1e-4;

    public TestContext TestContext { get; set; } = null!;

    private static readonly TaskSpec[] SegDepthNormals = { TaskSpec.Segmentation(5), TaskSpec.DepthTask(), TaskSpec.NormalsTask() };
    private static readonly MultiScaleOptions ThreeScales = new() { FirstStride = 4, Scales = 3, FirstWidth = 8, BlocksPerScale = 1 };

    /// <summary>The tiny configurations under test, by name; each differs from the default in the option it names.</summary>
    internal static MultiTaskNetworkOptions Configuration(string name)
    {
        var o = MultiTaskNetworkOptions.Tiny(SegDepthNormals) with
        {
            ImageHeight = 32, ImageWidth = 32, Width = 16, Heads = 2, MlpRatio = 2, BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1,
            MultiScale = ThreeScales, Sequential = new SequentialAttentionOptions { HeadBlocks = 1 },
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        };
        var sequential = o with { Architecture = NetworkArchitecture.SequentialCrossAttention };
        var sharing = o with { Architecture = NetworkArchitecture.ComputationSharing };
        return name switch
        {
            // strides 4/8/16 onto the stride-8 grid: area down ×2, identity, bilinear up ×2
            "MultiScale" => o with { Backbone = BackboneKind.MultiScale },
            // strides 4/8/16 onto a stride-12 grid (48×48): area ×3, area 6→4 (fractional windows), bilinear 3→4
            "MultiScaleFractionalResize" => o with { Backbone = BackboneKind.MultiScale, TokenStride = 12, ImageHeight = 48, ImageWidth = 48, BackboneDepth = 0 },
            // strides 8/16/32 onto the stride-16 grid, StableKem on top
            "MultiScaleFirstStride8" => o with
            {
                Backbone = BackboneKind.MultiScale, TokenStride = 16, MultiScale = ThreeScales with { FirstStride = 8 },
                Interaction = o.Interaction with { Kind = InteractionKind.StableKem },
            },
            // three tasks (two CTAM sources each), keys pooled to stride 16 at strides 4 and 8
            "Sequential" => sequential,
            // four scales (CSAM with up to three coarser sources), keys at full resolution, no residual heads, two tasks
            "SequentialFourScalesNoPooling" => sequential with
            {
                Tasks = new[] { TaskSpec.Segmentation(3), TaskSpec.DepthTask() }, MultiScale = ThreeScales with { Scales = 4 },
                Sequential = new SequentialAttentionOptions { HeadBlocks = 0, KeyStride = 0, DeepSupervision = false },
            },
            // 48×80 over four scales: 12×20 → 6×10 → 3×5 → 2×3 (the last merge pads both sides); CSAM and the fusion head
            // resize the odd coarse grids by fractional factors; keys pooled to stride 16
            "SequentialOddGrids" => sequential with { ImageHeight = 48, ImageWidth = 80, MultiScale = ThreeScales with { Scales = 4 } },
            // MODEL-SPEC §5's backbone: TinySwin's four stages (strides 4/8/16/32, 64…512 channels, window blocks) through
            // Backbone = TinySwin; two tasks and no residual heads keep it small. 32×32: grids 8×8 → 4×4 → 2×2 → 1×1
            "SequentialTinySwin" => sequential with
            {
                Tasks = new[] { TaskSpec.Segmentation(3), TaskSpec.DepthTask() }, Backbone = BackboneKind.TinySwin,
                Sequential = new SequentialAttentionOptions { HeadBlocks = 0 },
            },
            // sparse weight deltas (10 %) and thresholded activation deltas, first task as base
            "ComputationSharing" => sharing with { ComputationSharing = new ComputationSharingOptions { DeltaDensity = 0.1, ActivationThreshold = 0.05f } },
            // dense deltas, no threshold, a later base task, on the MultiScale backbone
            "ComputationSharingDenseMultiScale" => sharing with
            {
                Backbone = BackboneKind.MultiScale,
                ComputationSharing = new ComputationSharingOptions { BaseTask = "Depth", DeltaDensity = 1, ActivationThreshold = 0 },
            },
            // no weight delta kept at all: sub-tasks compute the base's activations and differ only in their heads
            "ComputationSharingEmptyDeltas" => sharing with { ComputationSharing = new ComputationSharingOptions { DeltaDensity = 0 } },
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown configuration"),
        };
    }

    /// <summary>
    /// A seeded network in eval mode whose BatchNorm running statistics are not the trivial 0/1 and whose computation-sharing
    /// weight deltas are not the initial zeros.
    /// </summary>
    internal static MultiTaskModel Network(MultiTaskNetworkOptions o, int seed = 7)
    {
        torch.manual_seed(seed);
        var net = MultiTaskModel.Create(o);
        using (torch.no_grad())
            foreach (var (key, t) in net.state_dict())
            {
                if (key.EndsWith("running_mean")) t.normal_(0, 0.2);
                else if (key.EndsWith("running_var")) t.uniform_(0.5, 1.5);
                else if (key.EndsWith("num_batches_tracked")) t.fill_(12);
                else if (key.Contains(".deltas.")) t.normal_(0, 0.05);
            }
        net.eval();
        return net;
    }

    [TestMethod]
    [DataRow("MultiScale")]
    [DataRow("MultiScaleFractionalResize")]
    [DataRow("MultiScaleFirstStride8")]
    [DataRow("Sequential")]
    [DataRow("SequentialFourScalesNoPooling")]
    [DataRow("SequentialOddGrids")]
    [DataRow("SequentialTinySwin")]
    [DataRow("ComputationSharing")]
    [DataRow("ComputationSharingDenseMultiScale")]
    [DataRow("ComputationSharingEmptyDeltas")]
    public void Onnx_graph_matches_torchsharp_within_1e4(string configuration)
    {
        using var net = Network(Configuration(configuration));
        var worst = OnnxParity.AssertMatches(net, configuration, Batch, Tolerance);
        TestContext.WriteLine($"{configuration}: max |ORT − TorchSharp| = {worst:E2}");
    }

    [TestMethod]
    [DataRow("MultiScale")]
    [DataRow("Sequential")]
    [DataRow("SequentialOddGrids")]
    [DataRow("SequentialTinySwin")]
    [DataRow("ComputationSharing")]
    public void Network_read_back_from_onnx_is_the_same_architecture_with_bit_identical_weights(string configuration)
    {
        var o = Configuration(configuration);
        using var net = Network(o);
        using var rebuilt = KemOnnx.ReadNetwork(KemOnnx.Export(net), "test.onnx");

        Assert.AreEqual(net.GetType(), rebuilt.GetType(), "the stored options choose the architecture");
        Assert.AreEqual(o with { Tasks = rebuilt.Options.Tasks }, rebuilt.Options, "options round-trip through the metadata JSON");
        var original = net.state_dict();
        var restored = rebuilt.state_dict();
        CollectionAssert.AreEquivalent(original.Keys.ToArray(), restored.Keys.ToArray());
        foreach (var (key, t) in original)
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} differs after the round trip");

        var pixels = OnnxExportTests.Pixels(1, o.ImageHeight, o.ImageWidth, seed: 9);
        var a = Inference.Predict(net, pixels, 1);
        var b = Inference.Predict(rebuilt, pixels, 1);
        for (int t = 0; t < a.Length; t++)
            Assert.IsTrue(a[t].Scores.SequenceEqual(b[t].Scores), "the rebuilt network computes the same bits");
    }

    [TestMethod]
    public void Deep_supervision_heads_are_kept_out_of_the_graph_but_in_the_file()
    {
        using var net = Network(Configuration("Sequential"));
        var bytes = KemOnnx.Export(net);
        var model = Microsoft.ML.Kem.Onnx.Proto.ModelProto.Parser.ParseFrom(bytes);
        Assert.IsFalse(model.Graph.Initializer.Any(t => t.Name.Contains(".auxiliary.")), "eval forward does not run the auxiliary heads");
        Assert.IsTrue(model.Graph.Initializer.Any(t => t.Name.StartsWith("crossScale.") && t.Name.EndsWith(".fuse.weight")), "CSAM is in the graph");

        using var rebuilt = KemOnnx.ReadNetwork(bytes, "test.onnx");
        var key = "taskHeads.1.auxiliary.2.weight";
        Assert.IsTrue(net.state_dict()[key].bytes.SequenceEqual(rebuilt.state_dict()[key].bytes), "the auxiliary heads come back for fine-tuning");
    }
}
