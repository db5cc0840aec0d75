using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// One task's predictions for a batch, on the host: <see cref="Scores"/> is the post-processed head output
/// (logits for segmentation/parts, metres for depth, probabilities for saliency/boundaries, unit normals),
/// B×C_t×H×W; <see cref="Labels"/> is the argmax class per pixel (B×H×W) for classification tasks, else null.
/// </summary>
public sealed record TaskPrediction(TaskSpec Task, float[] Scores, int[]? Labels);

/// <summary>Batched inference of a trained network (eval mode, no gradients, fp32).</summary>
public static class Inference
{
    /// <summary>
    /// Runs <paramref name="network"/> on <paramref name="count"/> images laid out as count×3×H×W raw pixels,
    /// on the device the network's parameters live on.
    /// </summary>
    public static TaskPrediction[] Predict(MultiTaskModel network, ReadOnlySpan<float> images, int count)
    {
        var o = network.Options;
        long expected = (long)count * 3 * o.ImageHeight * o.ImageWidth;
        if (images.Length != expected)
            throw new ArgumentException($"Expected {count}×3×{o.ImageHeight}×{o.ImageWidth} = {expected} pixel values, got {images.Length}.");
        // The host arrays first, outside the lease: outputs can be large (count×C_t×H×W), and the lease's no-GC budget
        // is for TorchSharp's own small objects.
        int pixels = o.ImageHeight * o.ImageWidth;
        var input = images.ToArray();
        var result = o.Tasks.Select(task => new TaskPrediction(task, new float[count * task.Channels * pixels],
            task.IsClassification ? new int[count * pixels] : null)).ToArray();

        using var lease = NativeCallGuard.Enter();   // no collection while the native calls below run (see NativeCallGuard)
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        network.eval();
        var device = network.parameters().First().device;
        try
        {
            var outputs = network.forward(torch.tensor(input, new long[] { count, 3, o.ImageHeight, o.ImageWidth }).to(device));
            for (int t = 0; t < outputs.Length; t++)
            {
                var raw = outputs[t].to(ScalarType.Float32);
                CopyOut(TaskOutputs.Postprocess(o.Tasks[t], raw), result[t].Scores);
                if (result[t].Labels is { } labels)
                    CopyOut(TaskOutputs.PredictedLabel(o.Tasks[t], raw).to(ScalarType.Int32), labels);
            }
        }
        catch (Exception e) when (DeviceMemory.IsExhausted(e))
        {
            throw DeviceMemory.Exhausted(e, device, $"predicting {count} image(s) of {o.ImageHeight}×{o.ImageWidth}",
                "Predict fewer images per call (Evaluation.Evaluate's batchSize), use a smaller image size or network, or score on the CPU.");
        }
        return result;
    }

    /// <summary>Copies <paramref name="output"/> (any device) into <paramref name="into"/>, which must hold exactly its elements.</summary>
    private static void CopyOut<T>(Tensor output, T[] into) where T : unmanaged
    {
        var host = output.cpu().contiguous();
        if (host.numel() != into.LongLength)
            throw new InvalidOperationException($"The network returned {host.numel()} values where {into.LongLength} were expected.");
        host.data<T>().CopyTo(into);
    }
}
