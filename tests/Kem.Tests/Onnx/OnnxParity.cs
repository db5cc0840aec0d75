using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Kem.Tests.Onnx;

/// <summary>
/// The exported graph against the TorchSharp network on the same seeded pixels (onnxruntime's CPU provider): every
/// task's scores of shape B×C×H×W within <paramref name="tolerance"/> and not constant, ≥ 99.9 % of the labels equal,
/// and no label output for regression tasks.
/// </summary>
internal static class OnnxParity
{
    /// <summary>Asserts parity for <paramref name="net"/>; returns the largest |ORT − TorchSharp| over all scores.</summary>
    public static double AssertMatches(MultiTaskModel net, string configuration, int batch, double tolerance)
    {
        var o = net.Options;
        var pixels = OnnxExportTests.Pixels(batch, o.ImageHeight, o.ImageWidth);
        var expected = Inference.Predict(net, pixels, batch);

        using var session = new InferenceSession(KemOnnx.Export(net));
        var input = new DenseTensor<float>(pixels, new[] { batch, 3, o.ImageHeight, o.ImageWidth });
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Image", input) });
        var outputs = results.ToDictionary(r => r.Name);

        double worst = 0;
        foreach (var p in expected)
        {
            var scores = outputs[KemOnnx.ScoreOutput(p.Task)].AsTensor<float>();
            CollectionAssert.AreEqual(new[] { batch, p.Task.Channels, o.ImageHeight, o.ImageWidth }, scores.Dimensions.ToArray(), $"{configuration}/{p.Task.Name} score shape");
            double maxDiff = p.Scores.Zip(scores.ToArray(), (a, b) => (double)Math.Abs(a - b)).Max();
            worst = Math.Max(worst, maxDiff);
            Assert.IsTrue(maxDiff <= tolerance, $"{configuration}/{p.Task.Name}: max |score diff| = {maxDiff:E2} > {tolerance:E0}");
            Assert.IsTrue(p.Scores.Any(v => v != p.Scores[0]), $"{configuration}/{p.Task.Name}: the scores are not constant");
            if (p.Labels is { } labels)
            {
                var predicted = outputs[KemOnnx.PredictedLabelOutput(p.Task)].AsTensor<int>().ToArray();
                int same = labels.Zip(predicted, (a, b) => a == b ? 1 : 0).Sum();
                Assert.IsTrue(same >= 0.999 * labels.Length, $"{configuration}/{p.Task.Name}: {labels.Length - same} of {labels.Length} labels differ");
            }
            else Assert.IsFalse(outputs.ContainsKey(KemOnnx.PredictedLabelOutput(p.Task)), $"{configuration}/{p.Task.Name}: regression tasks have no label output");
        }
        return worst;
    }
}
