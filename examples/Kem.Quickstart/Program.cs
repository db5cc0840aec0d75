// KemMl quickstart: generate indoor scenes, fit a multi-task sKEM network (segmentation + depth + normals) through an
// ML.NET pipeline, compare it with the trivial baseline, write PNG panels (input | ground truth | prediction), and save
// the model zip, reload it in a fresh MLContext and check that the reloaded model predicts the same.
// Usage: dotnet run -c Release --project examples/Kem.Quickstart -- [--train 480] [--val 96] [--size 128x128]
//        [--epochs 7] [--batch 8] [--device auto|cpu|cuda] [--interaction StableKem|Kem|CrossAttention|None]
//        [--architecture SharedEncoder|SequentialCrossAttention|ComputationSharing] [--width d (96; 128 sequential)]
//        [--backbone TinyViT|ConvStem|MultiScale|TinySwin|SwinT] [--out out/quickstart]
using System.Diagnostics;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Kem.Visualization;

var settings = QuickstartSettings.Parse(args);
var clock = Stopwatch.StartNew();
string outDir = Path.GetFullPath(settings.Out);
string dataRoot = Path.Combine(outDir, "data");
Directory.CreateDirectory(outDir);

// 1. Data: deterministic ray-cast scenes written in the NYUD-v2 multi-task folder layout.
Console.WriteLine($"Generating {settings.Train} + {settings.Val} scenes at {settings.Width}×{settings.Height} into {dataRoot} ...");
var generator = new SceneGenerator(new SceneOptions { Width = settings.Width, Height = settings.Height, Seed = settings.Seed });
var layout = NyudLayoutWriter.Write(dataRoot, generator, settings.Train, settings.Val);
Console.WriteLine($"  done in {clock.Elapsed.TotalSeconds:F1} s");

var ml = new MLContext(seed: settings.Seed);
ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && e.Source.StartsWith(nameof(MultiTaskKemTrainer))) Console.WriteLine("  " + e.RawMessage); };
IDataView Files(IEnumerable<string> ids) => ml.Data.LoadFromEnumerable(ids.Select(id => new SceneFiles
{
    ImagePath = Path.Combine(NyudLayout.ImagesFolder, id + ".png"),
    SegmentationPath = Path.Combine(NyudLayout.SegmentationFolder, id + ".png"),
    DepthPath = Path.Combine(NyudLayout.DepthFolder, id + ".npy"),
    NormalsPath = Path.Combine(NyudLayout.NormalsFolder, id + ".npy"),
}));

// 2. ML.NET pipeline: images through ImageAnalytics, dense labels through KemMl's own readers.
int h = settings.Height, w = settings.Width;
var tasks = new[]
{
    new TaskColumn(TaskSpec.Segmentation(SceneGenerator.ClassCount)),
    new TaskColumn(TaskSpec.DepthTask()),
    new TaskColumn(TaskSpec.NormalsTask()),
};
var prepare = ml.Transforms.LoadImages("ImageObject", dataRoot, nameof(SceneFiles.ImagePath))
    .Append(ml.Transforms.ResizeImages("ImageObject", w, h, "ImageObject"))
    .Append(ml.Transforms.ExtractPixels("Image", "ImageObject"))
    .Append(ml.MultiTask().Transforms.LoadDenseLabels("Segmentation", nameof(SceneFiles.SegmentationPath), h, w, folder: dataRoot, encoding: DenseLabelEncoding.NyudSegmentation))
    .Append(ml.MultiTask().Transforms.LoadDenseLabels("Depth", nameof(SceneFiles.DepthPath), h, w, folder: dataRoot))
    .Append(ml.MultiTask().Transforms.LoadDenseLabels("Normals", nameof(SceneFiles.NormalsPath), h, w, planes: 3, folder: dataRoot));
var trainFiles = Files(layout.TrainIds);
var valFiles = Files(layout.ValIds);
var prepared = prepare.Fit(trainFiles);
var train = prepared.Transform(trainFiles);
var val = prepared.Transform(valFiles);

// 3. Fit the multi-task network (validation each epoch, keep the best).
var trainer = ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options
{
    Tasks = tasks,
    Backbone = settings.Backbone, Width = settings.ModelWidth, Heads = 4, BackboneDepth = 3,
    Architecture = settings.Architecture,
    Interaction = new InteractionOptions { Kind = settings.Interaction, MemorySlots = 20, TopK = 3, EtfMode = EtfMode.TaskVertices },
    Training = new TrainingOptions
    {
        Epochs = settings.Epochs, BatchSize = settings.Batch, LearningRate = 1e-3, WarmupSteps = 100, Device = settings.Device,
        Seed = settings.Seed, ReportEverySteps = 25,
    },
});
Console.WriteLine($"Training {(settings.Architecture == NetworkArchitecture.SharedEncoder ? settings.Interaction.ToString() : settings.Architecture.ToString())} on {settings.Train} images ...");
var model = trainer.Fit(train, val);

// 4. Evaluate against the trivial baseline.
var scored = model.Transform(val);
var metrics = ml.MultiTask().Evaluate(scored, tasks);
var baseline = ml.MultiTask().EvaluateTrivialBaseline(train, val, tasks);
Console.WriteLine();
Console.WriteLine($"Validation metrics ({settings.Val} images, {w}×{h}, {model.TrainingResult!.Device}, {model.TrainingResult.Steps} steps):");
Console.WriteLine($"  {"task",-14}{"metric",-22}{"model",10}{"baseline",10}");
bool beats = true;
foreach (var (m, b) in metrics.Tasks.Zip(baseline.Tasks))
{
    foreach (var (name, mv, bv, lower) in Rows(m, b))
        Console.WriteLine($"  {m.TaskName,-14}{name,-22}{mv,10:F3}{bv,10:F3}");
    // "Clearly beat": at least 10% better on the Δm metric.
    double gain = (m.LowerIsBetter ? -1 : 1) * (m.Primary - b.Primary) / Math.Abs(b.Primary);
    beats &= gain > 0.10;
}
double deltaM = DeltaM.Compute(metrics.Tasks, baseline.Tasks);
Console.WriteLine($"  Δm vs trivial baseline: {deltaM:+0.0;-0.0} %  → {(beats ? "the model clearly beats the baseline on every task" : "the model does NOT clearly beat the baseline")}");

// 5. Panels for the first validation images.
string panels = Path.Combine(outDir, "panels");
Directory.CreateDirectory(panels);
int written = PanelWriter.Write(scored, tasks, h, w, panels, count: 6);
Console.WriteLine($"Wrote {written} panels (input | ground truth | prediction, one row per task) to {panels}");

// 6. The model zip: the network travels as an ONNX graph inside an ML.NET zip (atomic save), and a fresh MLContext
//    loads and scores it through ONNX Runtime, without TorchSharp (every architecture).
string zipPath = Path.Combine(outDir, "model.zip");
ml.MultiTask().Model.Save(model, train.Schema, zipPath);
var fresh = new MLContext(seed: settings.Seed);
var reloaded = fresh.MultiTask().Model.Load(zipPath, out _);
var (maxDiff, labelAgreement) = Compare(scored, reloaded.Transform(val), tasks);
bool matches = maxDiff <= 1e-4 && labelAgreement >= 0.999;
Console.WriteLine($"Saved the model zip to {zipPath} ({new FileInfo(zipPath).Length / 1e6:F1} MB).");
string onnxPath = Path.Combine(outDir, "model.onnx");
model.ExportOnnx(onnxPath);
Console.WriteLine($"Exported the standalone ONNX graph to {onnxPath} (batched: Image N×3×H×W raw pixels).");
Console.WriteLine($"Reloaded it in a fresh MLContext: scores within {maxDiff:E1} (max |diff|), labels agree on {labelAgreement:P2} of pixels " +
                  $"→ {(matches ? "the reloaded model's predictions match" : "the reloaded model's predictions DO NOT match")}.");
Console.WriteLine($"Total time {clock.Elapsed.TotalSeconds:F0} s.");
return beats && matches ? 0 : 1;

// Largest score difference and label agreement between two scored views of the same rows.
static (double MaxDiff, double LabelAgreement) Compare(IDataView expected, IDataView actual, IEnumerable<TaskColumn> tasks)
{
    double maxDiff = 0;
    long same = 0, total = 0;
    foreach (var t in tasks)
    {
        var a = expected.GetColumn<float[]>(t.ScoreColumn).SelectMany(v => v);
        var b = actual.GetColumn<float[]>(t.ScoreColumn).SelectMany(v => v);
        maxDiff = Math.Max(maxDiff, a.Zip(b, (x, y) => (double)Math.Abs(x - y)).DefaultIfEmpty(0).Max());
        if (!t.Task.IsClassification) continue;
        var la = expected.GetColumn<int[]>(t.PredictedLabelColumn).SelectMany(v => v).ToArray();
        var lb = actual.GetColumn<int[]>(t.PredictedLabelColumn).SelectMany(v => v).ToArray();
        same += la.Zip(lb, (x, y) => x == y ? 1 : 0).Sum();
        total += la.Length;
    }
    return (maxDiff, total == 0 ? 1 : (double)same / total);
}

static IEnumerable<(string Name, double Model, double Baseline, bool Lower)> Rows(TaskMetrics m, TaskMetrics b) => (m, b) switch
{
    (SegmentationMetrics s, SegmentationMetrics t) => new[] { ("mIoU %", s.MeanIoU, t.MeanIoU, false), ("pixel accuracy %", s.PixelAccuracy, t.PixelAccuracy, false) },
    (DepthMetrics s, DepthMetrics t) => new[] { ("RMSE m", s.Rmse, t.Rmse, true), ("abs-rel", s.AbsRel, t.AbsRel, true), ("δ<1.25 %", s.Delta1, t.Delta1, false) },
    (NormalsMetrics s, NormalsMetrics t) => new[] { ("mean angle °", s.MeanAngle, t.MeanAngle, true), ("within 11.25° %", s.Within11_25, t.Within11_25, false) },
    _ => new[] { ("primary", m.Primary, b.Primary, m.LowerIsBetter) },
};

/// <summary>One scene's files, relative to the data root.</summary>
internal sealed class SceneFiles
{
    public string ImagePath { get; set; } = "";
    public string SegmentationPath { get; set; } = "";
    public string DepthPath { get; set; } = "";
    public string NormalsPath { get; set; } = "";
}

/// <summary>Reads image, labels and predictions of scored rows and renders them with <see cref="PanelRenderer"/>.</summary>
internal static class PanelWriter
{
    public static int Write(IDataView scored, IReadOnlyList<TaskColumn> tasks, int height, int width, string folder, int count)
    {
        var s = scored.Schema;
        var columns = new List<DataViewSchema.Column> { s["Image"] };
        foreach (var t in tasks)
        {
            columns.Add(s[t.LabelColumn]);
            columns.Add(s[t.Task.IsClassification ? t.PredictedLabelColumn : t.ScoreColumn]);
        }
        using var cursor = scored.GetRowCursor(columns);
        var image = cursor.GetGetter<VBuffer<float>>(s["Image"]);
        int written = 0;
        while (written < count && cursor.MoveNext())
        {
            var rows = tasks.Select(t => new PanelRenderer.Row(t.Task,
                Read(cursor, s[t.LabelColumn]),
                t.Task.IsClassification ? ReadInt(cursor, s[t.PredictedLabelColumn]) : Read(cursor, s[t.ScoreColumn]))).ToList();
            VBuffer<float> pixels = default;
            image(ref pixels);
            PanelRenderer.Write(Path.Combine(folder, $"val_{written:D2}.png"), pixels.DenseValues().ToArray(), height, width, rows);
            written++;
        }
        return written;
    }

    private static float[] Read(DataViewRowCursor c, DataViewSchema.Column column)
    {
        VBuffer<float> v = default;
        c.GetGetter<VBuffer<float>>(column)(ref v);
        return v.DenseValues().ToArray();
    }

    private static float[] ReadInt(DataViewRowCursor c, DataViewSchema.Column column)
    {
        VBuffer<int> v = default;
        c.GetGetter<VBuffer<int>>(column)(ref v);
        return v.DenseValues().Select(x => (float)x).ToArray();
    }
}

/// <summary>Command-line settings with the CPU defaults (≤ 5 minutes on 2 cores).</summary>
internal sealed record QuickstartSettings
{
    public int Train { get; init; } = 480;
    public int Val { get; init; } = 96;
    public int Height { get; init; } = 128;
    public int Width { get; init; } = 128;
    public int Epochs { get; init; } = 7;
    public int Batch { get; init; } = 8;
    /// <summary>Token width d; unset: 96, or 128 for the sequential design (its scale widths 32·2^σ need d/h to divide them).</summary>
    public int? ModelWidthOption { get; init; }
    public int ModelWidth => ModelWidthOption ?? (Architecture == NetworkArchitecture.SequentialCrossAttention ? 128 : 96);
    public int Seed { get; init; } = 1;
    public ComputeDevice Device { get; init; } = ComputeDevice.Auto;
    public InteractionKind Interaction { get; init; } = InteractionKind.StableKem;
    public NetworkArchitecture Architecture { get; init; } = NetworkArchitecture.SharedEncoder;
    public BackboneKind Backbone { get; init; } = BackboneKind.TinyViT;
    public string Out { get; init; } = Path.Combine("out", "quickstart");

    public static QuickstartSettings Parse(string[] args)
    {
        var s = new QuickstartSettings();
        for (int i = 0; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"Option {args[i]} needs a value.");
            s = args[i] switch
            {
                "--train" => s with { Train = int.Parse(value) },
                "--val" => s with { Val = int.Parse(value) },
                "--size" => value.Split('x') is [var hh, var ww] ? s with { Height = int.Parse(hh), Width = int.Parse(ww) } : throw new ArgumentException("--size takes HxW, e.g. 128x128."),
                "--epochs" => s with { Epochs = int.Parse(value) },
                "--batch" => s with { Batch = int.Parse(value) },
                "--width" => s with { ModelWidthOption = int.Parse(value) },
                "--seed" => s with { Seed = int.Parse(value) },
                "--device" => s with { Device = Enum.Parse<ComputeDevice>(value, ignoreCase: true) },
                "--interaction" => s with { Interaction = Enum.Parse<InteractionKind>(value, ignoreCase: true) },
                "--architecture" => s with { Architecture = Enum.Parse<NetworkArchitecture>(value, ignoreCase: true) },
                "--backbone" => s with { Backbone = Enum.Parse<BackboneKind>(value, ignoreCase: true) },
                "--out" => s with { Out = value },
                _ => throw new ArgumentException($"Unknown option {args[i]}. Options: --train --val --size HxW --epochs --batch --width --seed --device --interaction --architecture --backbone --out."),
            };
            i++;
        }
        return s;
    }
}
