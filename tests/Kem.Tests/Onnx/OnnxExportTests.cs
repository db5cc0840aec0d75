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
/// The exported graph computes what the TorchSharp network computes: every interaction kind and sKEM mode, both
/// backbones, every task kind, scores within 1e-4 and identical labels, on onnxruntime's CPU provider.
/// </summary>
[TestClass]
public sealed class OnnxExportTests
{
    private const int H = 32, W = 32, Batch = 2;
    private const double Tolerance = 1e-4;

    private static readonly TaskSpec[] SegDepthNormals = { TaskSpec.Segmentation(5), TaskSpec.DepthTask(), TaskSpec.NormalsTask() };

    /// <summary>The tiny configurations under test, by name; each differs from the default in the option it names.</summary>
    internal static MultiTaskNetworkOptions Configuration(string name)
    {
        var kem = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 };
        var o = MultiTaskNetworkOptions.Tiny(SegDepthNormals) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2, EncoderDepth = 1, DecoderDepth = 1, Interaction = kem,
        };
        return name switch
        {
            "None" => o with { Interaction = kem with { Kind = InteractionKind.None }, EncoderDepth = 0 },
            "CrossAttention" => o with { Interaction = kem with { Kind = InteractionKind.CrossAttention, TaskEmbedding = true, Lambda = 0.5f } },
            "CrossAttentionUnscaled" => o with { Interaction = kem with { Kind = InteractionKind.CrossAttention, ScoreScale = ScoreScale.None } },
            // 4×4 token grid: windows of 3 pad it to 6×6 and the second block shifts; a window of 7 holds it whole (padded, never shifted)
            "MtformerWindow" => o with { Interaction = kem with { Kind = InteractionKind.CrossAttention, CrossAttentionForm = CrossAttentionForm.MtformerWindow, CrossAttentionWindow = 3 } },
            "MtformerWindowOneWindow" => o with { Interaction = kem with { Kind = InteractionKind.CrossAttention, CrossAttentionForm = CrossAttentionForm.MtformerWindow, TaskEmbedding = true, ScoreScale = ScoreScale.None } },
            "Kem" => o,
            "KemPerTask" => o with { Interaction = kem with { TopKScope = TopKScope.PerTask, TopK = 2 } },
            "KemRenormalized" => o with { Interaction = kem with { TopKMode = TopKMode.Renormalized, MemoryUpdate = MemoryUpdate.Replace, TaskEmbedding = true } },
            "KemUnscaledTopKAll" => o with { Interaction = kem with { ScoreScale = ScoreScale.None, TopK = 1000 } },
            "StableKemTaskVertices" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.TaskVertices } },
            "StableKemTaskVerticesNoProjection" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.TaskVertices, EtfInputProjection = false } },
            "StableKemSlotVertices" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.SlotVertices } },
            "StableKemSlotVerticesReplace" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.SlotVertices, MemoryUpdate = MemoryUpdate.Replace, EtfInputProjection = false, TopKMode = TopKMode.Renormalized } },
            "KemGated" => o with { Interaction = kem with { MemoryUpdate = MemoryUpdate.Gated } },
            "KemMemoryMlp" => o with { Interaction = kem with { MemoryMlp = true } },
            "KemReplaceMemoryMlp" => o with { Interaction = kem with { MemoryUpdate = MemoryUpdate.Replace, MemoryMlp = true, TopKMode = TopKMode.Renormalized } },
            "KemSlotAxis" => o with { Interaction = kem with { TopKAxis = TopKAxis.Slots, TopK = 2 } },
            "KemSlotAxisRenormalized" => o with { Interaction = kem with { TopKAxis = TopKAxis.Slots, TopK = 2, TopKMode = TopKMode.Renormalized } },
            "KemSlotAxisAllSlots" => o with { Interaction = kem with { TopKAxis = TopKAxis.Slots, TopK = 4 } },
            "KemBlocks2" => o with { Interaction = kem with { KemBlocks = 2, TaskEmbedding = true } },
            "StableKemSpan" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.Span } },
            "KemPerTaskWriteQuery" => o with { Interaction = kem with { PerTaskWriteQuery = true } },
            "StableKemSpanPerTaskWriteQuery" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.Span, PerTaskWriteQuery = true } },
            "StableKemTaskVerticesPerTaskWriteQuery" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.TaskVertices, PerTaskWriteQuery = true } },
            "StableKemBlocks2GatedSlotVertices" => o with { Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.SlotVertices, KemBlocks = 2, MemoryUpdate = MemoryUpdate.Gated } },
            "TinyViT" => o with { Backbone = BackboneKind.TinyViT, TokenStride = 8, Interaction = kem with { Kind = InteractionKind.StableKem } },
            "TinyVitStride4" => o with { Backbone = BackboneKind.TinyViT, TokenStride = 4, BackboneDepth = 0, ImageWidth = 48, Interaction = kem with { Kind = InteractionKind.StableKem, EtfMode = EtfMode.SlotVertices } },
            "AllTaskKinds" => o with
            {
                Tasks = new[] { TaskSpec.Segmentation(3), TaskSpec.PartsOf(4), TaskSpec.DepthTask(), TaskSpec.SaliencyTask(), TaskSpec.NormalsTask(), TaskSpec.BoundariesTask() },
                EncoderDepth = 0, DecoderDepth = 0,
            },
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown configuration"),
        };
    }

    /// <summary>A seeded network in eval mode whose BatchNorm running statistics are not the trivial 0/1.</summary>
    internal static MultiTaskNetwork Network(MultiTaskNetworkOptions o, int seed = 7)
    {
        torch.manual_seed(seed);
        var net = new MultiTaskNetwork(o);
        using (torch.no_grad())
            foreach (var (key, t) in net.state_dict())
            {
                if (key.EndsWith("running_mean")) t.normal_(0, 0.2);
                else if (key.EndsWith("running_var")) t.uniform_(0.5, 1.5);
                else if (key.EndsWith("num_batches_tracked")) t.fill_(12);
            }
        net.eval();
        return net;
    }

    /// <summary>Seeded raw pixels in 0..255, count×3×h×w.</summary>
    internal static float[] Pixels(int count, int h, int w, int seed = 3)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count * 3 * h * w).Select(_ => (float)rng.Next(256)).ToArray();
    }

    [TestMethod]
    [DataRow("None")]
    [DataRow("CrossAttention")]
    [DataRow("CrossAttentionUnscaled")]
    [DataRow("MtformerWindow")]
    [DataRow("MtformerWindowOneWindow")]
    [DataRow("Kem")]
    [DataRow("KemPerTask")]
    [DataRow("KemRenormalized")]
    [DataRow("KemUnscaledTopKAll")]
    [DataRow("StableKemTaskVertices")]
    [DataRow("StableKemTaskVerticesNoProjection")]
    [DataRow("StableKemSlotVertices")]
    [DataRow("StableKemSlotVerticesReplace")]
    [DataRow("KemGated")]
    [DataRow("KemMemoryMlp")]
    [DataRow("KemReplaceMemoryMlp")]
    [DataRow("KemSlotAxis")]
    [DataRow("KemSlotAxisRenormalized")]
    [DataRow("KemSlotAxisAllSlots")]
    [DataRow("KemBlocks2")]
    [DataRow("StableKemSpan")]
    [DataRow("StableKemBlocks2GatedSlotVertices")]
    [DataRow("KemPerTaskWriteQuery")]
    [DataRow("StableKemSpanPerTaskWriteQuery")]
    [DataRow("StableKemTaskVerticesPerTaskWriteQuery")]
    [DataRow("TinyViT")]
    [DataRow("TinyVitStride4")]
    [DataRow("AllTaskKinds")]
    public void Onnx_graph_matches_torchsharp_within_1e4(string configuration)
    {
        using var net = Network(Configuration(configuration));
        var worst = OnnxParity.AssertMatches(net, configuration, Batch, Tolerance);
        Console.WriteLine($"{configuration}: max |ORT − TorchSharp| = {worst:E2}");
    }

    [TestMethod]
    [DataRow("StableKemTaskVertices")]
    [DataRow("CrossAttention")]
    [DataRow("TinyViT")]
    [DataRow("KemGated")]
    [DataRow("KemMemoryMlp")]
    [DataRow("KemSlotAxis")]
    [DataRow("KemBlocks2")]
    [DataRow("StableKemSpan")]
    [DataRow("KemPerTaskWriteQuery")]
    [DataRow("StableKemSpanPerTaskWriteQuery")]
    public void Network_read_back_from_onnx_has_bit_identical_weights(string configuration)
    {
        var o = Configuration(configuration);
        using var net = Network(o);
        var bytes = KemOnnx.Export(net);
        using var rebuilt = KemOnnx.ReadNetwork(bytes, "test.onnx");

        Assert.AreEqual(o with { Tasks = rebuilt.Options.Tasks }, rebuilt.Options, "options round-trip through the metadata JSON");
        CollectionAssert.AreEqual(o.Tasks.ToArray(), rebuilt.Options.Tasks.ToArray(), "task specs round-trip");
        var original = net.state_dict();
        var restored = rebuilt.state_dict();
        CollectionAssert.AreEquivalent(original.Keys.ToArray(), restored.Keys.ToArray());
        foreach (var (key, t) in original)
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} differs after the round trip");

        var pixels = Pixels(1, o.ImageHeight, o.ImageWidth, seed: 9);
        var a = Inference.Predict(net, pixels, 1);
        var b = Inference.Predict(rebuilt, pixels, 1);
        for (int t = 0; t < a.Length; t++)
            Assert.IsTrue(a[t].Scores.SequenceEqual(b[t].Scores), "the rebuilt network computes the same bits");
    }

    [TestMethod]
    public void Files_with_the_earlier_unfused_kem_projections_still_load()
    {
        // Files written before KEM fused its token projections store tokenProjection ([Wk_r; Wv_r; Wq_w]) as
        // retrieveKeyValue ([Wk_r; Wv_r]) and writeQuery (Wq_w): rewrite an export that way and read it back.
        var o = Configuration("Kem");
        using var net = Network(o);
        var model = Microsoft.ML.Kem.Onnx.Proto.ModelProto.Parser.ParseFrom(KemOnnx.Export(net));
        var fused = model.Graph.Initializer.Where(t => t.Name.Contains(".tokenProjection.")).ToList();
        Assert.AreEqual(2, fused.Count, "the fused weight and bias");
        foreach (var t in fused)
        {
            model.Graph.Initializer.Remove(t);
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
            var rowLength = t.Dims.Count == 2 ? (int)t.Dims[1] : 1;
            var keyValueRows = (int)(t.Dims[0] / 3 * 2);
            model.Graph.Initializer.Add(Part(t, "retrieveKeyValue", values[..(keyValueRows * rowLength)], keyValueRows));
            model.Graph.Initializer.Add(Part(t, "writeQuery", values[(keyValueRows * rowLength)..], (int)t.Dims[0] - keyValueRows));
        }

        using var rebuilt = KemOnnx.ReadNetwork(Google.Protobuf.MessageExtensions.ToByteArray(model), "earlier.onnx");
        var restored = rebuilt.state_dict();
        foreach (var (key, t) in net.state_dict())
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} differs after reading the earlier layout");

        static Microsoft.ML.Kem.Onnx.Proto.TensorProto Part(Microsoft.ML.Kem.Onnx.Proto.TensorProto whole, string module, float[] values, int rows)
        {
            var part = new Microsoft.ML.Kem.Onnx.Proto.TensorProto { Name = whole.Name.Replace("tokenProjection", module), DataType = whole.DataType };
            part.Dims.Add(rows);
            if (whole.Dims.Count == 2) part.Dims.Add(whole.Dims[1]);
            part.FloatData.Add(values);
            return part;
        }
    }

    [TestMethod]
    public void Model_declares_opset_17_metadata_and_single_image_layout()
    {
        var o = Configuration("Kem");
        using var net = Network(o);
        var single = KemOnnx.Export(net, new OnnxExportOptions { Batched = false, InputName = "Pixels" });
        var description = KemOnnx.Describe(single, "single.onnx");
        Assert.IsFalse(description.Batched);
        Assert.AreEqual(17L, description.Opset);
        Assert.AreEqual("Pixels", description.InputName);
        Assert.AreEqual(InteractionKind.Kem, description.Network.Interaction.Kind);

        using var session = new InferenceSession(single);
        CollectionAssert.AreEqual(new[] { 3, H, W }, session.InputMetadata["Pixels"].Dimensions);
        CollectionAssert.AreEqual(new[] { 5, H, W }, session.OutputMetadata["SegmentationScore"].Dimensions);
        CollectionAssert.AreEqual(new[] { H, W }, session.OutputMetadata["SegmentationPredictedLabel"].Dimensions);
        Assert.AreEqual(typeof(int), session.OutputMetadata["SegmentationPredictedLabel"].ElementType);
        StringAssert.Contains(session.ModelMetadata.CustomMetadataMap[KemOnnx.NetworkKey], "\"Segmentation\"");

        var pixels = Pixels(1, H, W);
        var expected = Inference.Predict(net, pixels, 1);
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Pixels", new DenseTensor<float>(pixels, new[] { 3, H, W })) });
        var labels = results.First(r => r.Name == "SegmentationPredictedLabel").AsTensor<int>().ToArray();
        Assert.IsTrue(expected[0].Labels!.SequenceEqual(labels));
    }

    [TestMethod]
    public void Reading_a_foreign_or_truncated_file_names_it()
    {
        using var net = Network(Configuration("None"));
        var bytes = KemOnnx.Export(net);
        var truncated = bytes.AsSpan(0, bytes.Length / 2).ToArray();
        var e1 = Assert.ThrowsExactly<InvalidDataException>(() => KemOnnx.ReadNetwork(truncated, "half.onnx"));
        StringAssert.Contains(e1.Message, "'half.onnx'");
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => KemOnnx.ReadNetwork("hello, world"u8.ToArray(), "hello.txt"));
        StringAssert.Contains(e2.Message, "'hello.txt'");
        Assert.IsFalse(KemOnnx.IsKemModel(truncated));
        Assert.IsTrue(KemOnnx.IsKemModel(bytes));
    }
}
