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
        var device = network.parameters().First().device;
        network.eval();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var input = torch.tensor(images.ToArray(), new long[] { count, 3, o.ImageHeight, o.ImageWidth }).to(device);
        var outputs = network.forward(input);
        var result = new TaskPrediction[outputs.Length];
        for (int t = 0; t < outputs.Length; t++)
        {
            var task = o.Tasks[t];
            var raw = outputs[t].to(ScalarType.Float32);
            var scores = TaskOutputs.Postprocess(task, raw).cpu().contiguous().data<float>().ToArray();
            int[]? labels = task.IsClassification
                ? TaskOutputs.PredictedLabel(task, raw).to(ScalarType.Int32).cpu().contiguous().data<int>().ToArray()
                : null;
            result[t] = new TaskPrediction(task, scores, labels);
        }
        return result;
    }
}
