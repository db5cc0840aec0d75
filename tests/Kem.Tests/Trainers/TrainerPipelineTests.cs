using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;

namespace Kem.Tests.Trainers;

[TestClass]
public sealed class TrainerPipelineTests
{
    private const int H = 32, W = 32;

    public sealed class Row
    {
        [VectorType(3, H, W)] public float[] Image { get; set; } = Array.Empty<float>();
        [VectorType(1, H, W)] public float[] Segmentation { get; set; } = Array.Empty<float>();
        [VectorType(1, H, W)] public float[] Depth { get; set; } = Array.Empty<float>();
    }

    public sealed class Prediction
    {
        [VectorType(TinyData.Classes, H, W)] public float[] SegmentationScore { get; set; } = Array.Empty<float>();
        [VectorType(H, W)] public int[] SegmentationPredictedLabel { get; set; } = Array.Empty<int>();
        [VectorType(1, H, W)] public float[] DepthScore { get; set; } = Array.Empty<float>();
    }

    private static readonly TaskColumn[] Tasks = { new(TinyData.Segmentation), new(TinyData.Depth) };

    private static IEnumerable<Row> Rows(DenseDataset d) => Enumerable.Range(0, d.Count).Select(i => new Row
    {
        Image = d.Image(i).ToArray(), Segmentation = d.Label(0, i).ToArray(), Depth = d.Label(1, i).ToArray(),
    });

    private static MultiTaskKemTrainer.Options Options(int epochs) => new()
    {
        Tasks = Tasks, Backbone = BackboneKind.ConvStem, Width = 32, Heads = 2, BackboneDepth = 1,
        Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        Training = new TrainingOptions { Epochs = epochs, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 4, Device = ComputeDevice.Cpu },
    };

    [TestMethod]
    public void Fit_transform_evaluate_and_prediction_engine_work_end_to_end()
    {
        var ml = new MLContext(seed: 1);
        var train = TinyData.Make(TinyData.SegDepth, 32, H, W, seed: 21);
        var test = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 22);
        var trainView = ml.Data.LoadFromEnumerable(Rows(train));
        var testView = ml.Data.LoadFromEnumerable(Rows(test));
        var log = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("img/s")) lock (log) log.Add(e.Message); };

        var model = ml.MultiTask().Trainers.Kem(Options(epochs: 8)).Fit(trainView, testView);
        Assert.IsNotEmpty(log, "progress goes to ML.NET's log channel");

        var scored = model.Transform(testView);
        var score = scored.Schema["SegmentationScore"].Type as VectorDataViewType;
        Assert.IsNotNull(score);
        CollectionAssert.AreEqual(new[] { TinyData.Classes, H, W }, score.Dimensions.ToArray());
        Assert.AreEqual(NumberDataViewType.Int32, ((VectorDataViewType)scored.Schema["SegmentationPredictedLabel"].Type).ItemType);
        Assert.IsNull(scored.Schema.GetColumnOrNull("DepthPredictedLabel"), "regression tasks have no predicted-label column");

        var metrics = ml.MultiTask().Evaluate(scored, Tasks, TrivialBaseline.Evaluate(train, test));
        var baseline = TrivialBaseline.Evaluate(train, test);
        Assert.IsGreaterThan(((SegmentationMetrics)baseline[0]).MeanIoU, ((SegmentationMetrics)metrics["Segmentation"]).MeanIoU);
        Assert.IsLessThan(((DepthMetrics)baseline[1]).Rmse, ((DepthMetrics)metrics["Depth"]).Rmse);
        Assert.IsGreaterThan(0.0, metrics.DeltaM!.Value, "Δm against the trivial baseline is positive");

        var engineMetrics = Evaluation.Evaluate(model.Network, test);
        Assert.AreEqual(((SegmentationMetrics)engineMetrics[0]).MeanIoU, ((SegmentationMetrics)metrics["Segmentation"]).MeanIoU, 1e-9,
            "ML.NET Transform and the engine's batched inference agree");

        var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
        var one = engine.Predict(Rows(test).First());
        Assert.HasCount(H * W, one.SegmentationPredictedLabel);
        Assert.HasCount(TinyData.Classes * H * W, one.SegmentationScore);
        int argmax0 = Enumerable.Range(0, TinyData.Classes).MaxBy(c => one.SegmentationScore[c * H * W]);
        Assert.AreEqual(argmax0, one.SegmentationPredictedLabel[0], "predicted label is the argmax of the scores");
        Assert.IsTrue(one.DepthScore.All(v => v >= 0));
    }

    [TestMethod]
    public void The_trainer_checkpoints_and_a_second_fit_resumes_from_the_finished_checkpoint()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows(TinyData.Make(TinyData.SegDepth, 16, H, W, seed: 23)));
        var folder = Path.Combine(Path.GetTempPath(), "kem-trainer-checkpoint-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = Options(epochs: 2);
            options.Training = options.Training with { CheckpointPath = Path.Combine(folder, "fit.safetensors") };
            float[] Scores(MultiTaskKemTransformer model) => ml.Data.CreateEnumerable<Prediction>(model.Transform(data), reuseRowObject: false)
                .SelectMany(p => p.DepthScore).ToArray();

            var first = ml.MultiTask().Trainers.Kem(options).Fit(data);
            Assert.AreEqual(0, first.TrainingResult!.ResumedAfterEpoch);
            Assert.IsTrue(File.Exists(options.Training.CheckpointPath));
            var second = ml.MultiTask().Trainers.Kem(options).Fit(data);
            Assert.AreEqual(2, second.TrainingResult!.ResumedAfterEpoch, "the finished run's checkpoint is taken up");
            CollectionAssert.AreEqual(Scores(first), Scores(second), "the same weights");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void Schema_errors_name_the_column_and_the_fix()
    {
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(Rows(TinyData.Make(TinyData.SegDepth, 2, H, W, seed: 1)));
        var shape = SchemaShapeColumns.FromSchema(view.Schema);

        var noImage = ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options { Tasks = Tasks, ImageColumnName = "Pixels" });
        var e1 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => noImage.GetOutputSchema(shape));
        StringAssert.Contains(e1.Message, "Image column 'Pixels' is missing");
        StringAssert.Contains(e1.Message, "ExtractPixels");

        var noLabel = ml.MultiTask().Trainers.Kem(new[] { new TaskColumn(TaskSpec.NormalsTask()) });
        var e2 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => noLabel.GetOutputSchema(shape));
        StringAssert.Contains(e2.Message, "Label column 'Normals'");
        StringAssert.Contains(e2.Message, "LoadDenseLabels");

        var wrongSize = ml.MultiTask().Trainers.Kem(new[] { new TaskColumn(TinyData.Segmentation), new TaskColumn(TaskSpec.NormalsTask(), "Depth") });
        var e3 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => wrongSize.Fit(view));
        StringAssert.Contains(e3.Message, "'Depth'");
        StringAssert.Contains(e3.Message, "3×32×32");

        var empty = ml.Data.LoadFromEnumerable(Array.Empty<Row>());
        var e4 = Assert.ThrowsExactly<ArgumentException>(() => ml.MultiTask().Trainers.Kem(Options(1)).Fit(empty));
        StringAssert.Contains(e4.Message, "empty");
    }

    [TestMethod]
    public void Output_schema_declares_the_new_columns_through_the_internal_constructor()
    {
        // Pins the one UnsafeAccessor (SchemaShape.Column's internal constructor): fails loudly if ML.NET changes it.
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(Rows(TinyData.Make(TinyData.SegDepth, 2, H, W, seed: 1)));
        var output = ml.MultiTask().Trainers.Kem(Options(1)).GetOutputSchema(SchemaShapeColumns.FromSchema(view.Schema));
        Assert.IsTrue(output.TryFind("SegmentationScore", out var score));
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, score.Kind);
        Assert.AreEqual(NumberDataViewType.Single, score.ItemType);
        Assert.IsTrue(output.TryFind("SegmentationPredictedLabel", out var label));
        Assert.AreEqual(NumberDataViewType.Int32, label.ItemType);
        Assert.IsFalse(label.IsKey);
        Assert.IsTrue(output.TryFind("Image", out _), "input columns pass through");
    }
}
