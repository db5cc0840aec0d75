using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using Row = Kem.Tests.Trainers.TrainerPipelineTests.Row;

namespace Kem.Tests.Trainers;

[TestClass]
public sealed class TrainerArchitectureTests
{
    private const int H = 32, W = 32;

    [TestMethod]
    [DataRow(NetworkArchitecture.SequentialCrossAttention, typeof(SequentialCrossAttentionNetwork))]
    [DataRow(NetworkArchitecture.ComputationSharing, typeof(ComputationSharingNetwork))]
    public void Options_Architecture_selects_the_design_and_the_pipeline_scores_with_it(NetworkArchitecture architecture, Type expected)
    {
        var ml = new MLContext(seed: 1);
        var data = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 51);
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, data.Count).Select(i => new Row
        {
            Image = data.Image(i).ToArray(), Segmentation = data.Label(0, i).ToArray(), Depth = data.Label(1, i).ToArray(),
        }));
        var tasks = new[] { new TaskColumn(TinyData.Segmentation), new TaskColumn(TinyData.Depth) };
        var model = ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options
        {
            Tasks = tasks, Architecture = architecture, Backbone = BackboneKind.ConvStem, Width = 16, Heads = 2, BackboneDepth = 1,
            EncoderDepth = 1, DecoderDepth = 1,
            MultiScale = new MultiScaleOptions { FirstStride = 4, FirstWidth = 8, BlocksPerScale = 1 },
            Sequential = new SequentialAttentionOptions { HeadBlocks = 1 },
            ComputationSharing = new ComputationSharingOptions { BaseTask = "Depth" },
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
            Training = new TrainingOptions { Epochs = 1, BatchSize = 4, Device = ComputeDevice.Cpu },
        }).Fit(view);

        Assert.IsInstanceOfType(model.Network, expected);
        Assert.AreEqual(architecture, model.Network.Options.Architecture);
        var scored = model.Transform(view);
        CollectionAssert.AreEqual(new[] { TinyData.Classes, H, W }, ((VectorDataViewType)scored.Schema["SegmentationScore"].Type).Dimensions.ToArray());
        var metrics = ml.MultiTask().Evaluate(scored, tasks);
        Assert.IsTrue(double.IsFinite(((Microsoft.ML.Kem.Tasks.DepthMetrics)metrics["Depth"]).Rmse));
        if (model.Network is ComputationSharingNetwork sharing) Assert.AreEqual("Depth", sharing.BaseTask.Name);
    }
}
