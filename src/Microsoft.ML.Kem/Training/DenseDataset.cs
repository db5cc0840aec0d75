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
    private readonly bool imagesAreBytes;                 // every value an integer 0..255: pinned batches travel as bytes
    private readonly bool[] labelsAreBytes;

    /// <summary>The tasks, in label order.</summary>
    public IReadOnlyList<TaskSpec> Tasks { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Image height.</summary>
    public int Height { get; }
    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>
    /// Wraps the arrays (no copy). <paramref name="source"/> names the data in error messages. The arrays are checked once,
    /// here: do not change them afterwards (the label checks, and the byte transfer of arrays that hold only integers
    /// 0..255 to a CUDA device, rely on what was checked).
    /// </summary>
    public DenseDataset(IReadOnlyList<TaskSpec> tasks, int height, int width, float[] images, IReadOnlyList<float[]> labels, string source = "the data")
    {
        if (labels.Count != tasks.Count) throw new ArgumentException($"{source}: {labels.Count} label arrays for {tasks.Count} tasks.");
        int pixels = height * width;
        if (images.Length == 0) throw new ArgumentException($"{source} is empty: training needs at least 2 images.");
        if (images.Length % (3 * pixels) != 0)
            throw new ArgumentException($"{source}: image array length {images.Length} is not a multiple of 3×{height}×{width}.");
        Count = images.Length / (3 * pixels);
        (Tasks, Height, Width, this.images, this.labels) = (tasks, height, width, images, labels.ToArray());
        imagesAreBytes = true;
        for (int i = 0; i < images.Length; i++)
        {
            if (!float.IsFinite(images[i]))
                throw new ArgumentException($"{source}: image {i / (3 * pixels)} has a non-finite pixel value ({images[i]}). Clean or drop that image.");
            imagesAreBytes &= IsByte(images[i]);
        }
        labelsAreBytes = tasks.Select((task, t) => CheckLabels(task, this.labels[t], source)).ToArray();
    }

    /// <summary>An integer 0..255: exact as a byte.</summary>
    private static bool IsByte(float v) => v >= 0 && v <= 255 && v == MathF.Floor(v);

    /// <summary>Checks one task's labels; returns whether every value is exact as a byte.</summary>
    private bool CheckLabels(TaskSpec task, float[] label, string source)
    {
        bool bytes = true;
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
            bytes &= IsByte(v);
        }
        return bytes;
    }

    /// <summary>Copies the rows <paramref name="indices"/> into tensors on <paramref name="device"/>: images B×3×H×W, labels B×P×H×W.</summary>
    public (Tensor Images, Tensor[] Labels) Batch(ReadOnlySpan<int> indices, Device device)
    {
        var (images, labels) = Gather(indices, pinned: false, bytesWhereExact: false);
        if (device.type == DeviceType.CPU) return (images, labels);
        using (images)
        {
            var onDevice = images.to(device);
            var labelsOnDevice = labels.Select(l => { using (l) return l.to(device); }).ToArray();
            return (onDevice, labelsOnDevice);
        }
    }

    /// <summary>
    /// The rows <paramref name="indices"/> gathered into host tensors for copying to a CUDA device (<see cref="BatchPrefetcher"/>):
    /// uint8 where every value of the array is an integer 0..255 (raw pixels, class labels: exact, a quarter of the bytes to
    /// copy), float32 otherwise; <see cref="ToFloat"/> restores float32 on the device. <paramref name="pinned"/>: page-locked,
    /// for asynchronous copies (CUDA builds only: the CPU libtorch has no pinned memory).
    /// </summary>
    internal (Tensor Images, Tensor[] Labels) HostBatch(ReadOnlySpan<int> indices, bool pinned) => Gather(indices, pinned, bytesWhereExact: true);

    /// <summary>A batch tensor of <see cref="HostBatch"/>, copied to the device, as float32.</summary>
    /// <remarks>Disposes <paramref name="onDevice"/> when it makes a float32 copy (the byte tensor is not needed after the cast).</remarks>
    internal static Tensor ToFloat(Tensor onDevice)
    {
        if (onDevice.dtype == ScalarType.Float32) return onDevice;
        using (onDevice) return onDevice.to(ScalarType.Float32);
    }

    /// <summary>
    /// Copies the rows into new CPU tensors (page-locked when <paramref name="pinned"/>, as bytes where exact and asked) with
    /// no managed array in between: a 448×576 batch of 8 is ~40 MB, and a managed copy of it per step made the training
    /// loop's garbage collector stop every thread, the one launching GPU work included, about twice a step.
    /// </summary>
    private (Tensor Images, Tensor[] Labels) Gather(ReadOnlySpan<int> indices, bool pinned, bool bytesWhereExact)
    {
        var made = new List<Tensor>(1 + Tasks.Count);   // disposed if a later gather fails (the prefetcher's thread has no dispose scope)
        try
        {
            made.Add(GatherRows(images, indices, 3, pinned, bytesWhereExact && imagesAreBytes));
            for (int t = 0; t < Tasks.Count; t++) made.Add(GatherRows(labels[t], indices, Tasks[t].LabelPlanes, pinned, bytesWhereExact && labelsAreBytes[t]));
            return (made[0], made.Skip(1).ToArray());
        }
        catch
        {
            foreach (var tensor in made) tensor.Dispose();
            throw;
        }
    }

    private Tensor GatherRows(float[] source, ReadOnlySpan<int> indices, int planes, bool pinned, bool asBytes)
    {
        int stride = planes * Height * Width;
        var rows = torch.empty(new long[] { indices.Length, planes, Height, Width }, asBytes ? ScalarType.Byte : ScalarType.Float32);   // CPU, contiguous
        if (pinned)
        {
            using var unpinned = rows;
            rows = unpinned.pin_memory();
        }
        if (asBytes)
        {
            var bytes = rows.bytes;
            for (int b = 0; b < indices.Length; b++)
            {
                var from = source.AsSpan(indices[b] * stride, stride);
                var to = bytes.Slice(b * stride, stride);
                for (int i = 0; i < from.Length; i++) to[i] = (byte)from[i];
            }
            return rows;
        }
        var target = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(rows.bytes);
        for (int b = 0; b < indices.Length; b++)
            source.AsSpan(indices[b] * stride, stride).CopyTo(target.Slice(b * stride, stride));
        return rows;
    }

    /// <summary>The raw label values of image <paramref name="index"/> for task <paramref name="task"/> (P×H×W).</summary>
    public ReadOnlySpan<float> Label(int task, int index)
    {
        int per = Tasks[task].LabelPlanes * Height * Width;
        return labels[task].AsSpan(index * per, per);
    }

    /// <summary>The raw pixels of image <paramref name="index"/> (3×H×W).</summary>
    public ReadOnlySpan<float> Image(int index) => images.AsSpan(index * 3 * Height * Width, 3 * Height * Width);
}
