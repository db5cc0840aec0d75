using Microsoft.ML.Kem.Data;

namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// MODEL-SPEC §9's option "resize predictions back to the original image size": one image's post-processed scores
/// (<see cref="TaskOutputs.Postprocess"/>, C_t×H×W) resized to another size and turned into what
/// <see cref="IDenseMetricAccumulator.Add"/> takes. Every channel is resized bilinearly on pixel centres (PyTorch's
/// <c>interpolate(mode="bilinear", align_corners=False)</c>, no antialiasing); segmentation and parts then take the argmax
/// over the resized class scores, as the public evaluations do with their logits; normals are scaled back to unit length.
/// Saliency and boundary probabilities are resized as probabilities (the public code resizes logits before the sigmoid:
/// the two differ only through the sigmoid's curvature between neighbouring pixels).
/// </summary>
public static class PredictionResize
{
    /// <summary>
    /// <paramref name="scores"/> (C_t×<paramref name="height"/>×<paramref name="width"/>) at
    /// <paramref name="outHeight"/>×<paramref name="outWidth"/>: the class index per pixel (as float) for segmentation
    /// and parts, metres for depth, probabilities for saliency and boundaries, 3 unit-vector planes for normals.
    /// </summary>
    public static float[] ToSize(TaskSpec task, ReadOnlySpan<float> scores, int height, int width, int outHeight, int outWidth)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (height < 1 || width < 1 || outHeight < 1 || outWidth < 1)
            throw new ArgumentOutOfRangeException(nameof(height), $"Sizes must be positive, got {height}×{width} → {outHeight}×{outWidth}.");
        int pixels = height * width, outPixels = outHeight * outWidth;
        if (scores.Length != (long)task.Channels * pixels)
            throw new ArgumentException($"Task '{task.Name}': expected {task.Channels}×{height}×{width} = {task.Channels * pixels} scores, got {scores.Length}.", nameof(scores));

        var resized = new float[task.Channels * outPixels];
        for (int c = 0; c < task.Channels; c++)
            ImageResize.Resample(scores.Slice(c * pixels, pixels), height, width, resized.AsSpan(c * outPixels, outPixels),
                outHeight, outWidth, ImageResampling.Bilinear, clampToBytes: false);
        if (task.IsClassification) return Argmax(resized, task.Channels, outPixels);
        if (task.Kind == TaskKind.Normals) UnitLength(resized, outPixels);
        return resized;
    }

    /// <summary>The first largest class per pixel (torch.argmax's tie rule).</summary>
    private static float[] Argmax(float[] planes, int classes, int pixels)
    {
        var labels = new float[pixels];
        for (int p = 0; p < pixels; p++)
        {
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (planes[c * pixels + p] > planes[best * pixels + p]) best = c;
            labels[p] = best;
        }
        return labels;
    }

    /// <summary>v / max(‖v‖, ε) per pixel, ε = <see cref="TaskOutputs.NormalsEps"/> (F.normalize).</summary>
    private static void UnitLength(float[] planes, int pixels)
    {
        for (int p = 0; p < pixels; p++)
        {
            double x = planes[p], y = planes[pixels + p], z = planes[2 * pixels + p];
            double norm = Math.Max(Math.Sqrt(x * x + y * y + z * z), TaskOutputs.NormalsEps);
            planes[p] = (float)(x / norm);
            planes[pixels + p] = (float)(y / norm);
            planes[2 * pixels + p] = (float)(z / norm);
        }
    }
}
