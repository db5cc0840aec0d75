using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// An in-memory split for training or evaluation: N images (N×3×H×W, raw pixel values) and, per task, N label maps
/// (N×P×H×W; P = 3 for normals, else 1). Labels are checked once here, so bad data fails before training starts.
/// </summary>
public sealed class DenseDataset
{
    private readonly float[] images;
    private readonly float[][] labels;

    /// <summary>The tasks, in label order.</summary>
    public IReadOnlyList<TaskSpec> Tasks { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Image height.</summary>
    public int Height { get; }
    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>Wraps the arrays (no copy). <paramref name="source"/> names the data in error messages.</summary>
    public DenseDataset(IReadOnlyList<TaskSpec> tasks, int height, int width, float[] images, IReadOnlyList<float[]> labels, string source = "the data")
    {
        if (labels.Count != tasks.Count) throw new ArgumentException($"{source}: {labels.Count} label arrays for {tasks.Count} tasks.");
        int pixels = height * width;
        if (images.Length == 0) throw new ArgumentException($"{source} is empty: training needs at least 2 images.");
        if (images.Length % (3 * pixels) != 0)
            throw new ArgumentException($"{source}: image array length {images.Length} is not a multiple of 3×{height}×{width}.");
        Count = images.Length / (3 * pixels);
        (Tasks, Height, Width, this.images, this.labels) = (tasks, height, width, images, labels.ToArray());
        for (int i = 0; i < images.Length; i++)
            if (!float.IsFinite(images[i]))
                throw new ArgumentException($"{source}: image {i / (3 * pixels)} has a non-finite pixel value ({images[i]}). Clean or drop that image.");
        for (int t = 0; t < tasks.Count; t++) CheckLabels(tasks[t], this.labels[t], source);
    }

    private void CheckLabels(TaskSpec task, float[] label, string source)
    {
        int per = task.LabelPlanes * Height * Width;
        if (label.Length != Count * per)
            throw new ArgumentException($"{source}: task '{task.Name}' has {label.Length} label values; expected {Count}×{task.LabelPlanes}×{Height}×{Width} = {Count * per}.");
        for (int i = 0; i < label.Length; i++)
        {
            float v = label[i];
            bool ok = task.IsClassification
                ? v == TaskSpec.IgnoreLabel || (v >= 0 && v < task.Classes && v == MathF.Floor(v))
                : !float.IsNaN(v) && !float.IsInfinity(v);
            if (!ok)
                throw new ArgumentOutOfRangeException(nameof(labels), v,
                    task.IsClassification
                        ? $"{source}: task '{task.Name}', image {i / per}: label {v} is out of range; labels must be integers 0..{task.Classes - 1} or 255 (ignore). Check the class count or the label files."
                        : $"{source}: task '{task.Name}', image {i / per}: label value {v} is not finite; mark invalid pixels with 0 (depth) or 255 instead.");
        }
    }

    /// <summary>Copies the rows <paramref name="indices"/> into tensors on <paramref name="device"/>: images B×3×H×W, labels B×P×H×W.</summary>
    public (Tensor Images, Tensor[] Labels) Batch(ReadOnlySpan<int> indices, Device device)
    {
        int pixels = Height * Width;
        var img = Gather(images, indices, 3 * pixels);
        var imageTensor = torch.tensor(img, new long[] { indices.Length, 3, Height, Width }).to(device);
        var labelTensors = new Tensor[Tasks.Count];
        for (int t = 0; t < Tasks.Count; t++)
        {
            int planes = Tasks[t].LabelPlanes;
            labelTensors[t] = torch.tensor(Gather(labels[t], indices, planes * pixels), new long[] { indices.Length, planes, Height, Width }).to(device);
        }
        return (imageTensor, labelTensors);
    }

    /// <summary>The raw label values of image <paramref name="index"/> for task <paramref name="task"/> (P×H×W).</summary>
    public ReadOnlySpan<float> Label(int task, int index)
    {
        int per = Tasks[task].LabelPlanes * Height * Width;
        return labels[task].AsSpan(index * per, per);
    }

    /// <summary>The raw pixels of image <paramref name="index"/> (3×H×W).</summary>
    public ReadOnlySpan<float> Image(int index) => images.AsSpan(index * 3 * Height * Width, 3 * Height * Width);

    private static float[] Gather(float[] source, ReadOnlySpan<int> indices, int stride)
    {
        var result = new float[indices.Length * stride];
        for (int b = 0; b < indices.Length; b++)
            Array.Copy(source, (long)indices[b] * stride, result, (long)b * stride, stride);
        return result;
    }
}
