using Kem.Tests.Data;
using Kem.Tests.Trainers;
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
/// Model zips of every architecture the trainer builds beyond the default: a fitted SequentialCrossAttention,
/// ComputationSharing, MultiScale- or TinySwin-backbone (also with Window task blocks) model saves, loads in a fresh MLContext as an OnnxTransformer with the same
/// columns and scores, and comes back through LoadKemTransformer as the same network type, bit for bit, ready to fine-tune.
/// </summary>
[TestClass]
public sealed class ArchitectureModelZipTests
{
    private const int H = 32, W = 32;
    private static readonly TaskColumn[] Tasks = { new(TinyData.Segmentation), new(TinyData.Depth) };

    private static MultiTaskKemTrainer.Options Options(NetworkArchitecture architecture, BackboneKind backbone, BlockAttention taskBlocks) => new()
    {
        Tasks = Tasks, Architecture = architecture, Backbone = backbone, Width = 16, Heads = 2, BackboneDepth = 1,
        EncoderDepth = 1, DecoderDepth = 1, TaskBlocks = taskBlocks,
        MultiScale = new MultiScaleOptions { FirstStride = 4, FirstWidth = 8, BlocksPerScale = 1 },
        Swin = MultiScaleOptions.TinySwin with { FirstWidth = 8, Depths = [2, 1, 2, 1], Heads = [1, 2, 2, 4], Window = 2 },
        Sequential = new SequentialAttentionOptions { HeadBlocks = 1 },
        ComputationSharing = new ComputationSharingOptions { BaseTask = "Depth", DeltaDensity = 0.5, ActivationThreshold = 0.01f },
        Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        Training = new TrainingOptions { Epochs = 1, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu },
    };

    [TestMethod]
    [DataRow(NetworkArchitecture.SequentialCrossAttention, BackboneKind.ConvStem, typeof(SequentialCrossAttentionNetwork))]
    [DataRow(NetworkArchitecture.ComputationSharing, BackboneKind.ConvStem, typeof(ComputationSharingNetwork))]
    [DataRow(NetworkArchitecture.SharedEncoder, BackboneKind.MultiScale, typeof(MultiTaskNetwork))]
    [DataRow(NetworkArchitecture.SharedEncoder, BackboneKind.TinySwin, typeof(MultiTaskNetwork))]
    [DataRow(NetworkArchitecture.SharedEncoder, BackboneKind.TinySwin, typeof(MultiTaskNetwork), BlockAttention.Window)]   // Window task blocks
    public void Fitted_model_saves_loads_with_the_same_scores_and_rebuilds_bit_for_bit(
        NetworkArchitecture architecture, BackboneKind backbone, Type expected, BlockAttention taskBlocks = BlockAttention.Global)
    {
        using var folder = new TempFolder();
        var ml = new MLContext(seed: 1);
        var data = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 61);
        var rows = Enumerable.Range(0, data.Count).Select(i => new Row
        {
            Image = data.Image(i).ToArray(), Segmentation = data.Label(0, i).ToArray(), Depth = data.Label(1, i).ToArray(),
        }).ToArray();
        var view = ml.Data.LoadFromEnumerable(rows);
        var model = ml.MultiTask().Trainers.Kem(Options(architecture, backbone, taskBlocks)).Fit(view);
        Assert.IsInstanceOfType(model.Network, expected);
        Assert.AreEqual(taskBlocks, model.Network.Options.TaskBlocks, "Options.TaskBlocks reaches the network");
        Assert.AreEqual(taskBlocks == BlockAttention.Window, model.Network.named_parameters().Any(p => p.name.StartsWith("decoders.0.0.") && p.name.EndsWith("relative_position_bias_table")));

        var zip = folder.File("model.zip");
        ml.MultiTask().Model.Save(model, view.Schema, zip);

        var fresh = new MLContext(seed: 5);
        var loaded = fresh.Model.Load(zip, out _);
        Assert.IsInstanceOfType<OnnxTransformer>(loaded, "the zip carries the network as an ONNX graph");
        var want = model.Transform(view);
        var got = loaded.Transform(fresh.Data.LoadFromEnumerable(rows));
        foreach (var column in new[] { "SegmentationScore", "DepthScore" })
        {
            Assert.AreEqual(want.Schema[column].Type, got.Schema[column].Type, $"{column}: same type and dimensions");
            var a = want.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
            var b = got.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
            Assert.HasCount(a.Length, b);
            double diff = a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();
            Assert.IsTrue(diff <= 1e-4, $"{column}: max |diff| {diff:E2} > 1e-4");
        }
        var labels = want.GetColumn<int[]>("SegmentationPredictedLabel").SelectMany(v => v).ToArray();
        var loadedLabels = got.GetColumn<int[]>("SegmentationPredictedLabel").SelectMany(v => v).ToArray();
        Assert.IsTrue(labels.Zip(loadedLabels, (x, y) => x == y ? 1 : 0).Sum() >= 0.999 * labels.Length, "labels agree");

        var rebuilt = ml.MultiTask().Model.LoadKemTransformer(zip);
        Assert.IsInstanceOfType(rebuilt.Network, expected);
        Assert.AreEqual(model.Network.Options with { Tasks = rebuilt.Network.Options.Tasks }, rebuilt.Network.Options);
        var original = model.Network.state_dict();
        var restored = rebuilt.Network.state_dict();
        CollectionAssert.AreEquivalent(original.Keys.ToArray(), restored.Keys.ToArray());
        foreach (var (key, t) in original)
            Assert.IsTrue(t.bytes.SequenceEqual(restored[key].bytes), $"{key} is not bit-identical");

        var tuned = ml.MultiTask().Trainers.Kem(Options(architecture, backbone, taskBlocks)).Fit(view, null, rebuilt);
        Assert.IsInstanceOfType(tuned.Network, expected);
        Assert.IsFalse(tuned.Network.state_dict().All(kv => kv.Value.bytes.SequenceEqual(restored[kv.Key].bytes)), "fine-tuning from the zip moved the weights");
    }
}
