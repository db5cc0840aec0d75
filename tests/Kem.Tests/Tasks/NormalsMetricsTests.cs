using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class NormalsMetricsTests
{
    [TestMethod]
    public void Perpendicular_normals_are_90_degrees_and_invalid_pixels_are_skipped()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.NormalsTask());
        // 4 pixels, planes x | y | z. Pixel 0: pred (1,0,0) vs gt (0,1,0) → 90°. Pixel 1: pred (0,0,2) vs gt (0,0,1) → 0°.
        // Pixel 2: gt zero vector (invalid). Pixel 3: gt 255 (invalid).
        float[] prediction = [1, 0, 1, 1, /* y */ 0, 0, 1, 1, /* z */ 0, 2, 1, 1];
        float[] label = [0, 0, 0, 255, /* y */ 1, 0, 0, 255, /* z */ 0, 1, 0, 255];
        accumulator.Add(prediction, label, 2, 2);
        var metrics = (NormalsMetrics)accumulator.Compute();
        Assert.AreEqual(45.0, metrics.MeanAngle, 1e-9);
        Assert.AreEqual(45.0, metrics.MedianAngle, 1e-3);
        Assert.AreEqual(Math.Sqrt(90.0 * 90 / 2), metrics.RmseAngle, 1e-9);
        Assert.AreEqual(50.0, metrics.Within11_25, 1e-9);
        Assert.AreEqual(50.0, metrics.Within30, 1e-9);
        Assert.IsTrue(metrics.LowerIsBetter);
        Assert.AreEqual(metrics.MeanAngle, metrics.Primary);
    }

    [TestMethod]
    public void Median_and_threshold_shares_follow_the_angles()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.NormalsTask());
        // gt (0,0,1) everywhere; predictions at 0°, 20°, 90° from it
        float s = MathF.Sin(20 * MathF.PI / 180), c = MathF.Cos(20 * MathF.PI / 180);
        float[] prediction = [0, 0, 1, /* y */ 0, s, 0, /* z */ 1, c, 0];
        float[] label = [0, 0, 0, 0, 0, 0, 1, 1, 1];
        accumulator.Add(prediction, label, 1, 3);
        var metrics = (NormalsMetrics)accumulator.Compute();
        Assert.AreEqual(110.0 / 3, metrics.MeanAngle, 1e-4);
        Assert.AreEqual(20.0, metrics.MedianAngle, 1e-3);
        Assert.AreEqual(100.0 / 3, metrics.Within11_25, 1e-9);
        Assert.AreEqual(200.0 / 3, metrics.Within22_5, 1e-9);
        Assert.AreEqual(200.0 / 3, metrics.Within30, 1e-9);
    }
}
