using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Training;

namespace Kem.Trainers;

/// <summary>Reads an IDataView's image and label columns into an in-memory <see cref="DenseDataset"/>, checking sizes row by row.</summary>
internal static class DenseDataReader
{
    /// <summary>H and W from the image column's dimensions [3, H, W] (ExtractPixels, planes not interleaved).</summary>
    public static (int Height, int Width) ImageSize(DataViewSchema schema, string imageColumn)
    {
        var column = schema.GetColumnOrNull(imageColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{imageColumn}' is missing.");
        var dims = column.Type is VectorDataViewType v ? v.Dimensions : default;
        if (dims.Length == 3 && dims[0] == 3) return (dims[1], dims[2]);
        if (dims.Length == 3 && dims[2] == 3)
            throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{imageColumn}' has interleaved pixels (H×W×3). Use ExtractPixels(..., interleavePixelColors: false).");
        throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{imageColumn}' is {column.Type}; expected a vector with dimensions [3, H, W] from ExtractPixels (three colour planes, no alpha).");
    }

    public static DenseDataset Read(IDataView data, string imageColumn, IReadOnlyList<TaskColumn> tasks, int height, int width, string what)
    {
        int pixels = height * width;
        var imageCol = data.Schema.GetColumnOrNull(imageColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(data), $"The {what} has no image column '{imageColumn}'.");
        var labelCols = tasks.Select(t => data.Schema.GetColumnOrNull(t.LabelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(data), $"The {what} has no label column '{t.LabelColumn}' (task '{t.Task.Name}').")).ToArray();
        for (int t = 0; t < tasks.Count; t++)
        {
            int expected = tasks[t].Task.LabelPlanes * pixels;
            if (labelCols[t].Type is not VectorDataViewType { ItemType: NumberDataViewType n } v || n != NumberDataViewType.Single || v.Size != expected)
                throw new ArgumentOutOfRangeException(nameof(data),
                    $"Label column '{tasks[t].LabelColumn}' of task '{tasks[t].Task.Name}' is {labelCols[t].Type}; expected a vector of {expected} Single ({tasks[t].Task.LabelPlanes}×{height}×{width}). Resize labels to the image size with nearest neighbour (LoadDenseLabels does).");
        }
        if (imageCol.Type is not VectorDataViewType { Size: var size } || size != 3 * pixels)
            throw new ArgumentOutOfRangeException(nameof(data), $"Image column '{imageColumn}' is {imageCol.Type}; expected a vector of {3 * pixels} Single (3×{height}×{width}).");

        var images = new List<float>();
        var labels = tasks.Select(_ => new List<float>()).ToArray();
        using var cursor = data.GetRowCursor(labelCols.Prepend(imageCol));
        var imageGetter = cursor.GetGetter<VBuffer<float>>(imageCol);
        var labelGetters = labelCols.Select(c => cursor.GetGetter<VBuffer<float>>(c)).ToArray();
        VBuffer<float> buffer = default;
        while (cursor.MoveNext())
        {
            imageGetter(ref buffer);
            AppendDense(images, buffer);
            for (int t = 0; t < tasks.Count; t++)
            {
                labelGetters[t](ref buffer);
                AppendDense(labels[t], buffer);
            }
        }
        if (images.Count == 0)
            throw new ArgumentException($"The {what} is empty: it has no rows. Check the file list or the filter that produced it.");
        return new DenseDataset(tasks.Select(t => t.Task).ToArray(), height, width, images.ToArray(), labels.Select(l => l.ToArray()).ToArray(), what);
    }

    private static void AppendDense(List<float> target, in VBuffer<float> value)
    {
        if (value.IsDense) { target.AddRange(value.GetValues()); return; }
        var dense = new float[value.Length];
        value.CopyTo(dense);
        target.AddRange(dense);
    }
}
