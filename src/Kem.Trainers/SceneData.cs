using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Tasks;

namespace Kem.Trainers;

/// <summary>
/// Generated indoor scenes as an IDataView (MODEL-SPEC §10 stand-in): columns Image (3×H×W, 0..255, as from
/// ExtractPixels), Segmentation, Depth, Normals (3×H×W), Saliency, Parts and Boundaries (1×H×W each), ready for
/// <see cref="MultiTaskKemTrainer"/>. Rows are generated lazily and deterministically from (seed, index).
/// </summary>
public static class SceneData
{
    /// <summary>The task specs that match the generated label columns, by column name.</summary>
    public static IReadOnlyDictionary<string, TaskSpec> Tasks { get; } = new Dictionary<string, TaskSpec>
    {
        ["Segmentation"] = TaskSpec.Segmentation(SceneGenerator.ClassCount),
        ["Depth"] = TaskSpec.DepthTask(),
        ["Normals"] = TaskSpec.NormalsTask(),
        ["Saliency"] = TaskSpec.SaliencyTask(),
        ["Parts"] = TaskSpec.PartsOf(SceneGenerator.PartClassCount),
        ["Boundaries"] = TaskSpec.BoundariesTask(),
    };

    /// <summary>One generated row.</summary>
    public sealed class Row
    {
        /// <summary>RGB planes 3×H×W, 0..255.</summary>
        public float[] Image { get; set; } = Array.Empty<float>();
        /// <summary>Class index per pixel.</summary>
        public float[] Segmentation { get; set; } = Array.Empty<float>();
        /// <summary>Metres.</summary>
        public float[] Depth { get; set; } = Array.Empty<float>();
        /// <summary>Unit normals, 3×H×W.</summary>
        public float[] Normals { get; set; } = Array.Empty<float>();
        /// <summary>0/1.</summary>
        public float[] Saliency { get; set; } = Array.Empty<float>();
        /// <summary>Part index per pixel.</summary>
        public float[] Parts { get; set; } = Array.Empty<float>();
        /// <summary>0/1.</summary>
        public float[] Boundaries { get; set; } = Array.Empty<float>();
    }

    /// <summary>
    /// <paramref name="count"/> scenes of <paramref name="height"/>×<paramref name="width"/> starting at image
    /// <paramref name="firstIndex"/> (use disjoint ranges for train and test).
    /// </summary>
    public static IDataView Generate(MLContext mlContext, int count, int height, int width, long seed = 1, int firstIndex = 0)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "Generate at least one scene.");
        var generator = new SceneGenerator(new SceneOptions { Width = width, Height = height, Seed = seed });
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Image)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3, height, width);
        foreach (var name in Tasks.Keys)
            schema[name].ColumnType = new VectorDataViewType(NumberDataViewType.Single, Tasks[name].LabelPlanes, height, width);
        return mlContext.Data.LoadFromEnumerable(Enumerable.Range(firstIndex, count).Select(i => ToRow(generator.Generate(i))), schema);
    }

    private static Row ToRow(SceneSample s)
    {
        int n = s.Width * s.Height;
        var image = new float[3 * n];
        for (int p = 0; p < n; p++)
            for (int c = 0; c < 3; c++) image[c * n + p] = s.Rgb[3 * p + c];
        return new Row
        {
            Image = image, Segmentation = s.Segmentation, Depth = s.Depth, Normals = s.Normals,
            Saliency = s.Saliency, Parts = s.Parts, Boundaries = s.Boundaries,
        };
    }
}
