using Kem.Tests.Data;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Transforms.Onnx;
using Row = Kem.Tests.Trainers.TrainerPipelineTests.Row;

namespace Kem.Tests.Onnx;

/// <summary>
/// The KEM options beyond the spec's defaults through the ML.NET trainer: a fitted model saves as a zip, scores the same
/// from ONNX Runtime in a fresh MLContext, and LoadKemTransformer rebuilds the network from the stored options, bit for bit.
/// </summary>
[TestClass]
public sealed class KemOptionsModelZipTests
{
    private const int H = 32, W = 32;
    private static readonly TaskColumn[] Tasks = { new(TinyData.Segmentation), new(TinyData.Depth) };

    private static InteractionOptions Interaction(string name) => name switch
    {
        "GatedSlotAxisTwoRounds" => new InteractionOptions
        {
            Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 2, MemoryUpdate = MemoryUpdate.Gated, TopKAxis = TopKAxis.Slots, KemBlocks = 2,
        },
        "SpanMemoryMlp" => new InteractionOptions { Kind = InteractionKind.StableKem, EtfMode = EtfMode.Span, MemorySlots = 4, TopK = 3, MemoryMlp = true },
        "IdentityMemoryInit" => new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 2, MemoryInit = MemoryInit.Identity },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown configuration"),
    };

    [TestMethod]
    [DataRow("GatedSlotAxisTwoRounds")]
    [DataRow("SpanMemoryMlp")]
    [DataRow("IdentityMemoryInit")]
    public void Fitted_model_with_the_option_saves_loads_and_rebuilds_bit_for_bit(string name)
    {
        using var folder = new TempFolder();
        var ml = new MLContext(seed: 1);
        var data = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 71);
        var rows = Enumerable.Range(0, data.Count).Select(i => new Row
        {
            Image = data.Image(i).ToArray(), Segmentation = data.Label(0, i).ToArray(), Depth = data.Label(1, i).ToArray(),
        }).ToArray();
        var view = ml.Data.LoadFromEnumerable(rows);
        var options = new MultiTaskKemTrainer.Options
        {
            Tasks = Tasks, Backbone = BackboneKind.ConvStem, Width = 16, Heads = 2, BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = Interaction(name),
            Training = new TrainingOptions { Epochs = 1, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu },
        };
        var model = ml.MultiTask().Trainers.Kem(options).Fit(view);
        Assert.AreEqual(options.Interaction, model.Network.Options.Interaction, "the trainer's Interaction options reach the network");
        var zip = folder.File("model.zip");
        ml.MultiTask().Model.Save(model, view.Schema, zip);

        var fresh = new MLContext(seed: 5);
        var loaded = fresh.Model.Load(zip, out _);
        Assert.IsInstanceOfType<OnnxTransformer>(loaded, "the zip carries the network as an ONNX graph");
        var want = model.Transform(view);
        var got = loaded.Transform(fresh.Data.LoadFromEnumerable(rows));
        foreach (var column in new[] { "SegmentationScore", "DepthScore" })
        {
            var a = want.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
            var b = got.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
            Assert.HasCount(a.Length, b);
            double diff = a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();
            Assert.IsTrue(diff <= 1e-4, $"{column}: max |diff| {diff:E2} > 1e-4");
        }

        var rebuilt = ml.MultiTask().Model.LoadKemTransformer(zip);
        Assert.AreEqual(model.Network.Options with { Tasks = rebuilt.Network.Options.Tasks }, rebuilt.Network.Options, "options round-trip");
        var original = model.Network.state_dict();
        var restored = rebuilt.Network.state_dict();
        CollectionAssert.AreEquivalent(original.Keys.ToArray(), restored.Keys.ToArray());
        foreach (var (key, t) in original)
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} is not bit-identical");
        var rounds = options.Interaction.KemBlocks;
        Assert.AreEqual(rounds > 1, original.ContainsKey("interaction.rounds.1.memorySlots"), "rounds live under interaction.rounds.r");
        Assert.AreEqual(rounds == 1, original.ContainsKey("interaction.memorySlots"), "one round keeps interaction.memorySlots");
    }
}
