// Scores a KemMl model zip without TorchSharp: a fresh process, a fresh MLContext, ML.NET's public API only.
// Usage: Kem.Scoring.Tests <model.zip> <pixels.f32> <count> <outDir> [imageColumn]
//   pixels.f32: count images of raw float32 pixels, 3×H×W each (H×W from the zip's input schema).
// Prints one line per output column ("column <name> <type>"), then "prediction-engine <column> agrees", then
// "torchsharp-loaded False"; writes each output column of all rows to <outDir>/<name>.bin (float32 or int32).
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;

if (args.Length < 4)
{
    Console.Error.WriteLine("Usage: Kem.Scoring.Tests <model.zip> <pixels.f32> <count> <outDir> [imageColumn]");
    return 2;
}
string zip = args[0], pixelsPath = args[1], outDir = args[3];
int count = int.Parse(args[2]);
string imageColumn = args.Length > 4 ? args[4] : "Image";

var ml = new MLContext(seed: 1);
var model = ml.Model.Load(zip, out var inputSchema);
var imageType = (VectorDataViewType)inputSchema[imageColumn].Type;
int size = imageType.Size;
var pixels = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(pixelsPath)).ToArray();
if (pixels.Length != count * size) throw new InvalidDataException($"{pixelsPath} holds {pixels.Length} values, expected {count} × {size}.");

var inputDefinition = SchemaDefinition.Create(typeof(ImageRow));
inputDefinition[0].ColumnName = imageColumn;
inputDefinition[0].ColumnType = imageType;
var rows = Enumerable.Range(0, count).Select(i => new ImageRow { Image = pixels.AsSpan(i * size, size).ToArray() }).ToList();
var scored = model.Transform(ml.Data.LoadFromEnumerable(rows, inputDefinition));

Directory.CreateDirectory(outDir);
var added = scored.Schema.Where(c => !c.IsHidden && c.Name != imageColumn).ToArray();
foreach (var column in added)
{
    Console.WriteLine($"column {column.Name} {column.Type}");
    using var file = File.Create(Path.Combine(outDir, column.Name + ".bin"));
    if (((VectorDataViewType)column.Type).ItemType == NumberDataViewType.Single)
        foreach (var v in scored.GetColumn<float[]>(column)) file.Write(MemoryMarshal.AsBytes(v.AsSpan()));
    else
        foreach (var v in scored.GetColumn<int[]>(column)) file.Write(MemoryMarshal.AsBytes(v.AsSpan()));
}

// PredictionEngine on the loaded model: the first score column of the first image, as Transform computed it.
var first = added.First(c => ((VectorDataViewType)c.Type).ItemType == NumberDataViewType.Single);
var outputDefinition = SchemaDefinition.Create(typeof(ScoreRow));
outputDefinition[0].ColumnName = first.Name;
outputDefinition[0].ColumnType = first.Type;
var engine = ml.Model.CreatePredictionEngine<ImageRow, ScoreRow>(model, inputSchemaDefinition: inputDefinition, outputSchemaDefinition: outputDefinition);
var single = engine.Predict(rows[0]);
var viaTransform = scored.GetColumn<float[]>(first).First();
Console.WriteLine($"prediction-engine {first.Name} {(single.Score.SequenceEqual(viaTransform) ? "agrees" : "DISAGREES")}");

// The point of this process: TorchSharp never came in.
bool torch = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name?.StartsWith("TorchSharp", StringComparison.Ordinal) == true)
             || Directory.EnumerateFiles(AppContext.BaseDirectory, "*torch*", SearchOption.AllDirectories).Any();
Console.WriteLine($"torchsharp-loaded {torch}");
return 0;

/// <summary>One image: raw pixels 3×H×W.</summary>
internal sealed class ImageRow
{
    public float[] Image { get; set; } = Array.Empty<float>();
}

/// <summary>One score column of one image.</summary>
internal sealed class ScoreRow
{
    public float[] Score { get; set; } = Array.Empty<float>();
}
