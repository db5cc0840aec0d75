using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Runtime.InteropServices;
using Kem.Tests.Data;
using Kem.Tests.Trainers;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Transforms.Onnx;

namespace Kem.Tests.Onnx;

/// <summary>
/// Model zips through ML.NET's public API (issue #3): a fitted trainer's zip loads in a fresh MLContext and in a process
/// without TorchSharp with the same columns and scores; the TorchSharp network comes back bit for bit and fine-tunes;
/// saves are atomic and bad files give errors that name them. One tiny model is trained once for the whole class.
/// </summary>
[TestClass]
public sealed class ModelZipTests
{
    private const int H = 32, W = 32, TestImages = 3;
    private static readonly TaskColumn[] Tasks = { new(TinyData.Segmentation), new(TinyData.Depth) };

    private static TempFolder folder = null!;
    private static MLContext ml = null!;
    private static MultiTaskKemTransformer model = null!;
    private static IDataView trainView = null!, testView = null!;
    private static TrainerPipelineTests.Row[] testRows = null!;
    private static string zip = null!;

    private static MultiTaskKemTrainer.Options Options(int epochs) => new()
    {
        Tasks = Tasks, Backbone = BackboneKind.ConvStem, Width = 32, Heads = 2, BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1,
        Interaction = new InteractionOptions { Kind = InteractionKind.StableKem, EtfMode = EtfMode.SlotVertices, MemorySlots = 4, TopK = 3 },
        Training = new TrainingOptions { Epochs = epochs, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu },
    };

    private static IEnumerable<TrainerPipelineTests.Row> Rows(DenseDataset d) => Enumerable.Range(0, d.Count).Select(i => new TrainerPipelineTests.Row
    {
        Image = d.Image(i).ToArray(), Segmentation = d.Label(0, i).ToArray(), Depth = d.Label(1, i).ToArray(),
    });

    [ClassInitialize]
    public static void FitAndSave(TestContext _)
    {
        folder = new TempFolder();
        ml = new MLContext(seed: 1);
        trainView = ml.Data.LoadFromEnumerable(Rows(TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 31)).ToArray());
        testRows = Rows(TinyData.Make(TinyData.SegDepth, TestImages, H, W, seed: 32)).ToArray();
        testView = ml.Data.LoadFromEnumerable(testRows);
        model = ml.MultiTask().Trainers.Kem(Options(epochs: 2)).Fit(trainView);
        zip = folder.File("model.zip");
        ml.MultiTask().Model.Save(model, trainView.Schema, zip);
    }

    [ClassCleanup]
    public static void Cleanup() => folder?.Dispose();

    [TestMethod]
    public void Zip_loaded_in_a_fresh_context_gives_the_same_columns_and_scores()
    {
        var fresh = new MLContext(seed: 5);
        var loaded = fresh.Model.Load(zip, out var inputSchema);
        Assert.AreEqual(trainView.Schema["Image"].Type, inputSchema["Image"].Type, "the zip keeps the input schema");

        var expected = model.Transform(testView);
        var actual = loaded.Transform(fresh.Data.LoadFromEnumerable(testRows));
        foreach (var column in new[] { "SegmentationScore", "SegmentationPredictedLabel", "DepthScore" })
        {
            Assert.AreEqual(expected.Schema[column].Type, actual.Schema[column].Type, $"{column}: same type and dimensions");
            if (expected.Schema[column].Type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Int32)
            {
                var a = expected.GetColumn<int[]>(column).SelectMany(v => v).ToArray();
                var b = actual.GetColumn<int[]>(column).SelectMany(v => v).ToArray();
                int same = a.Zip(b, (x, y) => x == y ? 1 : 0).Sum();
                Assert.IsTrue(same >= 0.999 * a.Length, $"{column}: {a.Length - same} of {a.Length} labels differ");
            }
            else
            {
                var a = expected.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
                var b = actual.GetColumn<float[]>(column).SelectMany(v => v).ToArray();
                Assert.HasCount(a.Length, b);
                double diff = a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();
                Assert.IsTrue(diff <= 1e-4, $"{column}: max |diff| {diff:E2} > 1e-4");
            }
        }

        var engine = fresh.Model.CreatePredictionEngine<TrainerPipelineTests.Row, TrainerPipelineTests.Prediction>(loaded);
        var one = engine.Predict(testRows[0]);
        var reference = ml.Model.CreatePredictionEngine<TrainerPipelineTests.Row, TrainerPipelineTests.Prediction>(model).Predict(testRows[0]);
        Assert.HasCount(H * W, one.SegmentationPredictedLabel);
        Assert.IsTrue(one.DepthScore.Zip(reference.DepthScore, (x, y) => Math.Abs(x - y)).Max() <= 1e-4, "PredictionEngine on the loaded model");
    }

    [TestMethod]
    public void Zip_scores_in_a_process_without_torchsharp()
    {
        var scorer = typeof(ModelZipTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "KemScorerPath").Value!;
        Assert.IsTrue(File.Exists(scorer), $"the scorer is built with the tests: {scorer}");
        Assert.IsFalse(Directory.EnumerateFiles(Path.GetDirectoryName(scorer)!, "*orch*", SearchOption.AllDirectories).Any(), "no TorchSharp or libtorch beside the scorer");

        var pixels = testRows.SelectMany(r => r.Image).ToArray();
        var pixelFile = folder.File("pixels.f32");
        File.WriteAllBytes(pixelFile, MemoryMarshal.AsBytes(pixels.AsSpan()).ToArray());
        var outDir = folder.File("scored");
        var (exit, output) = Run(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", scorer, zip, pixelFile, TestImages.ToString(), outDir);
        Assert.AreEqual(0, exit, output);

        StringAssert.Contains(output, $"column SegmentationScore Vector<Single, {TinyData.Classes}, {H}, {W}>");
        StringAssert.Contains(output, $"column SegmentationPredictedLabel Vector<Int32, {H}, {W}>");
        StringAssert.Contains(output, $"column DepthScore Vector<Single, 1, {H}, {W}>");
        StringAssert.Contains(output, "prediction-engine SegmentationScore agrees");
        StringAssert.Contains(output, "torchsharp-loaded False");

        var expected = Inference.Predict(model.Network, pixels, TestImages);
        foreach (var p in expected)
        {
            var scores = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(outDir, p.Task.Name + "Score.bin"))).ToArray();
            Assert.HasCount(p.Scores.Length, scores);
            Assert.IsTrue(p.Scores.Zip(scores, (x, y) => Math.Abs(x - y)).Max() <= 1e-4, $"{p.Task.Name} scores of the libtorch-free process");
        }
        var labels = MemoryMarshal.Cast<byte, int>(File.ReadAllBytes(Path.Combine(outDir, "SegmentationPredictedLabel.bin"))).ToArray();
        Assert.IsTrue(expected[0].Labels!.Zip(labels, (x, y) => x == y ? 1 : 0).Sum() >= 0.999 * labels.Length, "labels of the libtorch-free process");
    }

    [TestMethod]
    public void Network_rebuilt_from_the_zip_is_bit_identical_and_fine_tunes()
    {
        var loaded = ml.MultiTask().Model.LoadKemTransformer(zip);
        Assert.IsNull(loaded.TrainingResult, "a loaded transformer was not trained here");
        Assert.AreEqual("Image", loaded.ImageColumnName);
        var original = model.Network.state_dict();
        foreach (var (key, t) in loaded.Network.state_dict())
            Assert.IsTrue(original[key].bytes.SequenceEqual(t.bytes), $"{key} is not bit-identical");
        var pixels = testRows[0].Image;
        Assert.IsTrue(Inference.Predict(model.Network, pixels, 1)[1].Scores.SequenceEqual(Inference.Predict(loaded.Network, pixels, 1)[1].Scores));

        var before = loaded.Network.state_dict()["heads.1.afterUpsample.conv3.weight"].bytes.ToArray();
        var tuned = ml.MultiTask().Trainers.Kem(Options(epochs: 1)).Fit(trainView, null, loaded);
        Assert.AreEqual(1, tuned.TrainingResult!.BestEpoch);
        Assert.IsTrue(before.SequenceEqual(loaded.Network.state_dict()["heads.1.afterUpsample.conv3.weight"].bytes.ToArray()), "the initial model is left unchanged");
        Assert.IsFalse(before.SequenceEqual(tuned.Network.state_dict()["heads.1.afterUpsample.conv3.weight"].bytes.ToArray()), "fine-tuning moved the weights");

        var swapped = Options(1);
        swapped.Tasks = new[] { Tasks[1], Tasks[0] };
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.MultiTask().Trainers.Kem(swapped).Fit(trainView, null, loaded));
        StringAssert.Contains(e.Message, "same tasks in the same order");
    }

    [TestMethod]
    public void Plain_mlnet_save_and_standalone_export_carry_the_same_network()
    {
        var plain = folder.File("plain.zip");
        ml.Model.Save(model, trainView.Schema, plain);
        var loaded = new MLContext().Model.Load(plain, out _);
        Assert.IsInstanceOfType<OnnxTransformer>(loaded, "mlContext.Model.Save writes the transformer's ONNX twin");
        var column = loaded.Transform(testView).Schema["SegmentationScore"];
        Assert.AreEqual(model.Transform(testView).Schema["SegmentationScore"].Type, column.Type);
        Assert.IsTrue(MultiTaskModelOperations.ReadOnnx(zip).SequenceEqual(MultiTaskModelOperations.ReadOnnx(plain)), "both saves carry the same graph");

        var onnx = folder.File("model.onnx");
        model.ExportOnnx(onnx);
        var description = KemOnnx.Describe(File.ReadAllBytes(onnx), onnx);
        Assert.IsTrue(description.Batched, "standalone files take N×3×H×W");
        Assert.AreEqual(model.Network.Options with { Tasks = description.Network.Tasks }, description.Network);
        var fromOnnx = ml.MultiTask().Model.LoadKemTransformer(onnx);
        Assert.IsTrue(model.Network.state_dict()["interaction.etfVertices"].bytes.SequenceEqual(fromOnnx.Network.state_dict()["interaction.etfVertices"].bytes));
    }

    [TestMethod]
    public void Interrupted_save_leaves_the_previous_file_untouched()
    {
        using var local = new TempFolder();
        var target = local.File("model.zip");
        File.WriteAllText(target, "the previous model");
        var chain = new TransformerChain<ITransformer>(model, new FailingSave());
        var e = Assert.Throws<Exception>(() => ml.MultiTask().Model.Save(chain, trainView.Schema, target));
        StringAssert.Contains(e.ToString(), "simulated failure");
        Assert.AreEqual("the previous model", File.ReadAllText(target), "the target is untouched");
        CollectionAssert.AreEqual(new[] { target }, Directory.GetFiles(local.Path), "no temporary file is left behind");
    }

    [TestMethod]
    public void Truncated_or_foreign_files_give_errors_that_name_them()
    {
        var truncated = folder.File("truncated.zip");
        var bytes = File.ReadAllBytes(zip);
        File.WriteAllBytes(truncated, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var e1 = Assert.ThrowsExactly<InvalidDataException>(() => ml.MultiTask().Model.Load(truncated, out _));
        StringAssert.Contains(e1.Message, truncated);
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => ml.MultiTask().Model.LoadKemTransformer(truncated));
        StringAssert.Contains(e2.Message, truncated);

        var foreign = folder.File("foreign.zip");
        using (var archive = ZipFile.Open(foreign, ZipArchiveMode.Create))
        using (var writer = new StreamWriter(archive.CreateEntry("notes.txt").Open()))
            writer.Write("not a model");
        var e3 = Assert.ThrowsExactly<InvalidDataException>(() => ml.MultiTask().Model.Load(foreign, out _));
        StringAssert.Contains(e3.Message, foreign);
        var e4 = Assert.ThrowsExactly<InvalidDataException>(() => ml.MultiTask().Model.LoadKemTransformer(foreign));
        StringAssert.Contains(e4.Message, foreign);
        StringAssert.Contains(e4.Message, "holds no KemMl network");

        var missing = folder.File("missing.zip");
        var e5 = Assert.ThrowsExactly<FileNotFoundException>(() => ml.MultiTask().Model.Load(missing, out _));
        StringAssert.Contains(e5.Message, missing);
    }

    private static (int Exit, string Output) Run(string fileName, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000)) { process.Kill(entireProcessTree: true); Assert.Fail("the scorer did not finish in 120 s"); }
        return (process.ExitCode, stdout + stderr.Result);
    }

    /// <summary>A transformer whose save fails half-way through writing the zip.</summary>
    private sealed class FailingSave : ITransformer
    {
        public bool IsRowToRowMapper => false;
        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;
        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException();
        public IDataView Transform(IDataView input) => input;
        public void Save(ModelSaveContext ctx) => throw new IOException("simulated failure: the disk filled up mid-save");
    }
}
